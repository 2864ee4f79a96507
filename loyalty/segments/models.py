"""Segments (saved member filters) and the RFM scores some filters read."""

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, CheckConstraint, ForeignKey, SmallInteger, String
from sqlalchemy.orm import Mapped, mapped_column

from loyalty.db import Base, BigIntPK, UTCDateTime, utcnow


class Segment(Base):
    """A named filter over members; who is in it is computed by SQL whenever it is asked."""

    __tablename__ = "segments"

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    description: Mapped[str | None] = mapped_column(String(2000))
    filter: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    """The normalised filter (``SegmentFilter.stored``): only the conditions that are set."""
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class MemberRfm(Base):
    """A member's recency, frequency and monetary quintiles, as of the last ``rfm`` job.

    Only members with a purchase in the 365 days before the job's ``now`` have a row.
    """

    __tablename__ = "member_rfm"
    __table_args__ = (
        CheckConstraint("recency BETWEEN 1 AND 5", name="recency_1_to_5"),
        CheckConstraint("frequency BETWEEN 1 AND 5", name="frequency_1_to_5"),
        CheckConstraint("monetary BETWEEN 1 AND 5", name="monetary_1_to_5"),
    )

    member_id: Mapped[int] = mapped_column(ForeignKey("members.id"), primary_key=True)
    recency: Mapped[int] = mapped_column(SmallInteger)
    frequency: Mapped[int] = mapped_column(SmallInteger)
    monetary: Mapped[int] = mapped_column(SmallInteger)
    computed_at: Mapped[datetime] = mapped_column(UTCDateTime)
