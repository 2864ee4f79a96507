"""Tiers (status levels with an earning multiplier) and the history of members' tier changes."""

from datetime import datetime
from decimal import Decimal
from enum import StrEnum

from sqlalchemy import (
    JSON,
    BigInteger,
    CheckConstraint,
    ForeignKey,
    Index,
    Integer,
    Numeric,
    String,
)
from sqlalchemy.orm import Mapped, mapped_column

from loyalty.db import Base, BigIntPK, UTCDateTime, utcnow


class TierChangeReason(StrEnum):
    QUALIFIED = "QUALIFIED"
    """Qualifying points reached the tier's threshold."""
    EXPIRED = "EXPIRED"
    """The member stayed below the tier's threshold for its retention period."""
    ADMIN = "ADMIN"
    """An admin set the tier (setMemberTier)."""
    RULE_CHANGE = "RULE_CHANGE"
    """The tier was deleted and its members moved."""


class Tier(Base):
    __tablename__ = "tiers"
    __table_args__ = (
        CheckConstraint("threshold >= 0", name="threshold_non_negative"),
        CheckConstraint("multiplier >= 1", name="multiplier_at_least_one"),
        CheckConstraint("retention_days >= 0", name="retention_non_negative"),
    )

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    name: Mapped[str] = mapped_column(String(100))
    rank: Mapped[int] = mapped_column(Integer, unique=True)
    threshold: Mapped[int] = mapped_column(Integer, default=0)
    multiplier: Mapped[Decimal] = mapped_column(Numeric(8, 4), default=Decimal(1))
    benefits: Mapped[list[str]] = mapped_column(JSON, default=list)
    retention_days: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    """How long a member keeps the tier after falling below its threshold."""
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class TierChange(Base):
    __tablename__ = "tier_changes"
    __table_args__ = (Index("ix_tier_changes_member_id_id", "member_id", "id"),)

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    member_id: Mapped[int] = mapped_column(ForeignKey("members.id"))
    from_tier_id: Mapped[int | None] = mapped_column(ForeignKey("tiers.id", ondelete="SET NULL"))
    to_tier_id: Mapped[int | None] = mapped_column(ForeignKey("tiers.id", ondelete="SET NULL"))
    from_name: Mapped[str | None] = mapped_column(String(100))
    to_name: Mapped[str | None] = mapped_column(String(100))
    reason: Mapped[str] = mapped_column(String(16))
    qualifying_points: Mapped[int | None] = mapped_column(BigInteger)
    note: Mapped[str | None] = mapped_column(String(500))
    at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
