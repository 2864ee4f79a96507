"""Members and their stored balances (kept equal to the ledger's sums in every transaction)."""

from datetime import date, datetime
from enum import StrEnum

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Date,
    ForeignKey,
    Index,
    String,
    false,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column

from loyalty.db import Base, BigIntPK, UTCDateTime, utcnow


class MemberStatus(StrEnum):
    ACTIVE = "ACTIVE"
    SUSPENDED = "SUSPENDED"
    CLOSED = "CLOSED"
    ERASED = "ERASED"
    """Personal data removed on request (``eraseMember``); the books stay."""


class Channel(StrEnum):
    IN_STORE = "IN_STORE"
    ONLINE = "ONLINE"
    MOBILE_APP = "MOBILE_APP"


class Member(Base):
    __tablename__ = "members"
    __table_args__ = (
        CheckConstraint("points_available >= 0", name="available_non_negative"),
        CheckConstraint("points_pending >= 0", name="pending_non_negative"),
        CheckConstraint("lifetime_earned >= 0", name="lifetime_earned_non_negative"),
        CheckConstraint("points_redeemed >= 0", name="redeemed_non_negative"),
        CheckConstraint("points_expired >= 0", name="expired_non_negative"),
        Index("ix_members_email", "email"),
        Index("ix_members_phone", "phone"),
        Index("ix_members_referral_code", "referral_code", unique=True),
        Index(
            "ix_members_closed_at",
            "closed_at",
            postgresql_where=text("status = 'CLOSED'"),
            sqlite_where=text("status = 'CLOSED'"),
        ),
    )

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    external_id: Mapped[str] = mapped_column(String(128), unique=True)
    email: Mapped[str | None] = mapped_column(String(254))
    phone: Mapped[str | None] = mapped_column(String(32))
    first_name: Mapped[str | None] = mapped_column(String(100))
    last_name: Mapped[str | None] = mapped_column(String(100))
    status: Mapped[str] = mapped_column(String(16), default=MemberStatus.ACTIVE)
    enrollment_channel: Mapped[str | None] = mapped_column(String(16))
    enrolled_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    tier_id: Mapped[int | None] = mapped_column(ForeignKey("tiers.id"), index=True)
    tier_since: Mapped[datetime | None] = mapped_column(UTCDateTime)
    tier_retained_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    """Set while qualifying points are below the tier's threshold: the tier is kept until then."""
    points_available: Mapped[int] = mapped_column(BigInteger, default=0)
    points_pending: Mapped[int] = mapped_column(BigInteger, default=0)
    lifetime_earned: Mapped[int] = mapped_column(BigInteger, default=0)
    points_redeemed: Mapped[int] = mapped_column(BigInteger, default=0)
    points_expired: Mapped[int] = mapped_column(BigInteger, default=0)
    date_of_birth: Mapped[date | None] = mapped_column(Date)
    referral_code: Mapped[str | None] = mapped_column(String(16))
    """The code the member shares; a friend enrolling with it becomes their referee."""
    referral_pending: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    """Enrolled with a referral code and not yet rewarded: the purchase path reads this flag
    from the row it locks anyway, so members who were not referred cost nothing extra."""
    closed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    """When the member was last CLOSED (None while not closed): ``closedMemberRetentionDays``
    counts from here."""
    marketing_email: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    """The member agreed to marketing by email (consents are opt-in: false until given)."""
    marketing_sms: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    marketing_push: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    consents_updated_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    """When a consent was last set (None: never asked)."""
