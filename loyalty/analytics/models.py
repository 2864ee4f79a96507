"""The programStats rollup: sealed history summed once by a job, so a request over whole days
or months reads a few rows instead of every purchase and posting (docs/analytics.md).

Keys are local to the program's time zone at the refresh: ``day`` is the local date's
ordinal (``date.toordinal()``), ``month`` is ``year * 12 + month - 1``."""

from datetime import datetime
from decimal import Decimal

from sqlalchemy import BigInteger, Integer, Numeric, String
from sqlalchemy.orm import Mapped, mapped_column

from loyalty.db import Base, UTCDateTime

NO_MONTH_BEFORE = -1
NO_MONTH_AFTER = 10**9
"""``prev_month`` / ``next_month`` of a member's first / last month with a purchase."""


class StatsRollup(Base):
    """The one row saying what the rollup holds: the rows booked (``created_at``) before
    ``cutoff``, keyed in ``time_zone``."""

    __tablename__ = "stats_rollup"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    time_zone: Mapped[str] = mapped_column(String(64))
    cutoff: Mapped[datetime] = mapped_column(UTCDateTime)
    refreshed_at: Mapped[datetime] = mapped_column(UTCDateTime)


class StatsMemberMonth(Base):
    """A member's sealed purchases in one local month (``occurred_at``)."""

    __tablename__ = "stats_member_months"

    member_id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    month: Mapped[int] = mapped_column(Integer, primary_key=True)
    purchases: Mapped[int] = mapped_column(Integer)
    revenue: Mapped[Decimal] = mapped_column(Numeric(18, 4))


class StatsMonth(Base):
    """Member-months grouped by the member's previous and next month with a purchase: enough
    to count the distinct members, and those with exactly one purchase, of any run of whole
    months without reading one row per member."""

    __tablename__ = "stats_months"

    month: Mapped[int] = mapped_column(Integer, primary_key=True)
    prev_month: Mapped[int] = mapped_column(Integer, primary_key=True)
    next_month: Mapped[int] = mapped_column(Integer, primary_key=True)
    members: Mapped[int] = mapped_column(BigInteger)
    singles: Mapped[int] = mapped_column(BigInteger)
    """Of those members, the ones with exactly one purchase in the month."""
    purchases: Mapped[int] = mapped_column(BigInteger)
    revenue: Mapped[Decimal] = mapped_column(Numeric(20, 4))


class StatsDay(Base):
    """Sealed sums of one local day: purchases and points by ``occurred_at``, and ``booked``,
    the member postings booked in ``(midnight, next midnight]`` (liability is inclusive)."""

    __tablename__ = "stats_days"

    day: Mapped[int] = mapped_column(Integer, primary_key=True)
    purchases: Mapped[int] = mapped_column(BigInteger, default=0)
    revenue: Mapped[Decimal] = mapped_column(Numeric(20, 4), default=0)
    issued: Mapped[int] = mapped_column(BigInteger, default=0)
    redeemed: Mapped[int] = mapped_column(BigInteger, default=0)
    expired: Mapped[int] = mapped_column(BigInteger, default=0)
    booked: Mapped[int] = mapped_column(BigInteger, default=0)
