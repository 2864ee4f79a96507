"""Feedback rows: one score of one kind, about a purchase or about the member's day."""

from datetime import date, datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import CheckConstraint, Date, ForeignKey, Index, Integer, String, text
from sqlalchemy.orm import Mapped, mapped_column

from loyalty.db import Base, BigIntPK, UTCDateTime, utcnow


class FeedbackKind(StrEnum):
    NPS = "NPS"
    CSAT = "CSAT"


SCORE_RANGES = {FeedbackKind.NPS: (0, 10), FeedbackKind.CSAT: (1, 5)}


def _where(condition: str) -> dict[str, Any]:
    return {"postgresql_where": text(condition), "sqlite_where": text(condition)}


class Feedback(Base):
    __tablename__ = "feedback"
    __table_args__ = (
        CheckConstraint("score >= 0 AND score <= 10", name="score_in_range"),
        Index("ix_feedback_member_id_id", "member_id", "id"),
        Index("ix_feedback_created_at", "created_at"),
        # At most one of a kind per purchase, and per program-local day when no purchase is
        # named: enforced by the database, so concurrent submissions cannot both land.
        Index(
            "uq_feedback_member_kind_purchase",
            "member_id",
            "kind",
            "purchase_id",
            unique=True,
            **_where("purchase_id IS NOT NULL"),
        ),
        Index(
            "uq_feedback_member_kind_day",
            "member_id",
            "kind",
            "local_day",
            unique=True,
            **_where("purchase_id IS NULL"),
        ),
    )

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    member_id: Mapped[int] = mapped_column(ForeignKey("members.id"))
    kind: Mapped[str] = mapped_column(String(8))
    score: Mapped[int] = mapped_column(Integer)
    comment: Mapped[str | None] = mapped_column(String(2000))
    purchase_id: Mapped[int | None] = mapped_column(ForeignKey("purchases.id"))
    local_day: Mapped[date] = mapped_column(Date)
    """The day it was given in the program's time zone (one per kind and day without a purchase)."""
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
