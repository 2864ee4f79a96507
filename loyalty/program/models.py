"""The program: one per deployment, holding the earning policy every service reads."""

from datetime import datetime, timedelta
from decimal import Decimal

from sqlalchemy import CheckConstraint, Integer, Numeric, String
from sqlalchemy.orm import Mapped, mapped_column

from loyalty.db import Base, UTCDateTime, utcnow

PROGRAM_ID = 1


class Program(Base):
    __tablename__ = "program"
    __table_args__ = (
        CheckConstraint("id = 1", name="single_row"),
        CheckConstraint("points_per_unit >= 0", name="points_per_unit_non_negative"),
        CheckConstraint("pending_days >= 0", name="pending_days_non_negative"),
        CheckConstraint("tier_window_days > 0", name="tier_window_days_positive"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, default=PROGRAM_ID)
    name: Mapped[str] = mapped_column(String(200))
    currency: Mapped[str] = mapped_column(String(3))
    points_per_unit: Mapped[Decimal] = mapped_column(Numeric(12, 4))
    pending_days: Mapped[int] = mapped_column(Integer, default=0)
    points_expire_after_days: Mapped[int | None] = mapped_column(Integer, nullable=True)
    tier_window_days: Mapped[int] = mapped_column(Integer, default=365)
    time_zone: Mapped[str] = mapped_column(String(64), default="UTC", server_default="UTC")
    """Where the program's days, weeks and hours are counted (rules, caps, birthdays)."""
    max_backdate_days: Mapped[int] = mapped_column(Integer, default=30, server_default="30")
    """How far back a purchase's occurredAt may lie (an offline till replaying its queue)."""
    rules_token: Mapped[str | None] = mapped_column(String(36))
    """Changes with every earning-rule change: the key processes cache the rules under."""
    referrer_points: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    referee_points: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    referral_limit: Mapped[int | None] = mapped_column(Integer)
    """How many referrals one referrer is rewarded for (None: no limit)."""
    idempotency_retention_days: Mapped[int] = mapped_column(
        Integer, default=30, server_default="30"
    )
    """How long idempotency keys are kept (the retention job deletes older ones)."""
    expiry_warning_days: Mapped[int] = mapped_column(Integer, default=30, server_default="30")
    """How long before they expire lots are announced by ``points.expiring`` (0: never)."""
    closed_member_retention_days: Mapped[int | None] = mapped_column(Integer)
    """How long a CLOSED member's personal data is kept before the retention job erases it
    (None: kept until eraseMember)."""
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    def expires_at(self, earned_at: datetime) -> datetime | None:
        """When points earned at ``earned_at`` expire under the current policy (None: never)."""
        days = self.points_expire_after_days
        return None if days is None else earned_at + timedelta(days=days)
