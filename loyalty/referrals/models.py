"""Referrals: which member brought which, and whether the referral has been rewarded."""

from datetime import datetime

from sqlalchemy import BigInteger, ForeignKey, Index
from sqlalchemy.orm import Mapped, mapped_column

from loyalty.db import Base, BigIntPK, UTCDateTime, utcnow


class Referral(Base):
    __tablename__ = "referrals"
    __table_args__ = (Index("ix_referrals_referrer_id_id", "referrer_id", "id"),)

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    referrer_id: Mapped[int] = mapped_column(ForeignKey("members.id"))
    referee_id: Mapped[int] = mapped_column(ForeignKey("members.id"), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    rewarded_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    """Set by the referee's first purchase that earned points; never cleared (no re-reward)."""
    purchase_id: Mapped[int | None] = mapped_column(ForeignKey("purchases.id"))
    referrer_points: Mapped[int] = mapped_column(BigInteger, default=0)
    referee_points: Mapped[int] = mapped_column(BigInteger, default=0)
