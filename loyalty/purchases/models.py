"""Purchases: the receipts points are earned on."""

from datetime import datetime
from decimal import Decimal
from enum import StrEnum
from typing import Any

from sqlalchemy import JSON, BigInteger, ForeignKey, Index, Numeric, String
from sqlalchemy.orm import Mapped, mapped_column

from loyalty.db import Base, BigIntPK, UTCDateTime, utcnow


class PurchaseStatus(StrEnum):
    COMPLETED = "COMPLETED"
    PARTIALLY_REFUNDED = "PARTIALLY_REFUNDED"
    REFUNDED = "REFUNDED"


class Purchase(Base):
    __tablename__ = "purchases"
    __table_args__ = (
        Index("ix_purchases_member_id_id", "member_id", "id"),
        # Segments read a member's purchases from the index alone (PostgreSQL's INCLUDE).
        Index(
            "ix_purchases_member_id_segments",
            "member_id",
            postgresql_include=[
                "occurred_at",
                "status",
                "total_amount",
                "refunded_amount",
                "channel",
            ],
        ),
        # What was booked since the stats rollup's cutoff (BRIN: nearly free per insert).
        Index("ix_purchases_created_at", "created_at", postgresql_using="brin"),
    )

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    order_id: Mapped[str] = mapped_column(String(128), unique=True)
    member_id: Mapped[int] = mapped_column(ForeignKey("members.id"))
    channel: Mapped[str] = mapped_column(String(16))
    store_id: Mapped[str | None] = mapped_column(String(64))
    total_amount: Mapped[Decimal] = mapped_column(Numeric(18, 4))
    currency: Mapped[str] = mapped_column(String(3))
    lines: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    occurred_at: Mapped[datetime] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    points_awarded: Mapped[int] = mapped_column(BigInteger)
    points_refunded: Mapped[int] = mapped_column(BigInteger, default=0)
    """Points the refunds took back, including any that could not be recovered."""
    points_unrecovered: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    """Clawback the member no longer had the points for (available never goes below zero)."""
    refunded_amount: Mapped[Decimal] = mapped_column(Numeric(18, 4), default=0, server_default="0")
    status: Mapped[str] = mapped_column(String(24), default=PurchaseStatus.COMPLETED)
    points_breakdown: Mapped[list[dict[str, Any]] | None] = mapped_column(JSON)
    """Base points and each rule's points as awarded (None: recorded before earning rules)."""


class PurchaseRefund(Base):
    """One refund as recorded: programStats sums them by when they were recorded."""

    __tablename__ = "purchase_refunds"
    __table_args__ = (Index("ix_purchase_refunds_created_at", "created_at"),)

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    purchase_id: Mapped[int] = mapped_column(ForeignKey("purchases.id"), index=True)
    amount: Mapped[Decimal] = mapped_column(Numeric(18, 4))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
