"""Custom member events (app installed, review written, birthday): what event rules match."""

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, ForeignKey, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from loyalty.db import Base, BigIntPK, UTCDateTime, utcnow


class MemberEvent(Base):
    __tablename__ = "member_events"
    __table_args__ = (Index("ix_member_events_member_id_id", "member_id", "id"),)

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    member_id: Mapped[int] = mapped_column(ForeignKey("members.id"))
    type: Mapped[str] = mapped_column(String(64))
    occurred_at: Mapped[datetime] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    attributes: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    points_awarded: Mapped[int] = mapped_column(BigInteger, default=0)
    once_key: Mapped[str | None] = mapped_column(String(64), unique=True)
    """Set for events that happen once per period (``birthday:<member>:<year>``)."""
