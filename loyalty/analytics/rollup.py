"""``loyalty jobs run stats-rollup``: seals the history of purchases and points so that
programStats over whole days or months reads a few summary rows (docs/analytics.md).

The rollup holds exactly the purchases and ledger transactions booked (``created_at``) before
its ``cutoff``; programStats adds what was booked since, live, so every figure stays exact
whatever arrives later with a backdated ``occurredAt``. The cutoff lags the clock by
``SEAL_MARGIN`` (and, on PostgreSQL, starts no later than the oldest open transaction), so a
row still being written when the job runs is booked after it and counted live."""

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import case, delete, func, insert, literal, select, text, union_all
from sqlalchemy.ext.asyncio import AsyncSession

from loyalty.analytics.models import (
    NO_MONTH_AFTER,
    NO_MONTH_BEFORE,
    StatsDay,
    StatsMemberMonth,
    StatsMonth,
    StatsRollup,
)
from loyalty.analytics.sql import (
    local_day_key,
    local_month_key,
    member_postings,
    points_measures,
)
from loyalty.db import Database, UTCDateTime
from loyalty.ledger.models import LedgerEntry, LedgerTransaction
from loyalty.program.service import get_program
from loyalty.purchases.models import Purchase

SEAL_MARGIN = timedelta(minutes=10)
ROLLUP_ID = 1


@dataclass(frozen=True)
class RollupReport:
    cutoff: datetime
    member_months: int
    days: int

    def __str__(self) -> str:
        return (
            f"sealed up to {self.cutoff.isoformat()}: {self.member_months} member-months, "
            f"{self.days} days"
        )


async def stats_rollup(db: Database, *, now: datetime) -> RollupReport:
    """The job: rebuilds the rollup in one transaction (readers see the old or the new)."""
    async with db.transaction() as session:
        return await refresh(session, now=now, margin=SEAL_MARGIN)


async def _cutoff(session: AsyncSession, now: datetime, margin: timedelta) -> datetime:
    cutoff = min(now, datetime.now(UTC)) - margin
    if session.get_bind().dialect.name == "postgresql":
        oldest = await session.scalar(
            text(
                "SELECT min(xact_start) FROM pg_stat_activity "
                "WHERE datname = current_database() AND pid <> pg_backend_pid()"
            )
        )
        if oldest is not None:
            cutoff = min(cutoff, oldest.astimezone(UTC) - margin)
    return cutoff


async def refresh(session: AsyncSession, *, now: datetime, margin: timedelta) -> RollupReport:
    """Replaces the rollup by the rows booked before ``min(now, the clock) - margin``."""
    program = await get_program(session)
    zone = ZoneInfo(program.time_zone)
    cutoff = await _cutoff(session, now, margin)
    for table in (StatsMemberMonth, StatsMonth, StatsDay):
        await session.execute(delete(table))
    sealed = literal(cutoff, UTCDateTime())
    bounds = (
        await session.execute(
            select(
                select(func.min(Purchase.occurred_at))
                .where(Purchase.created_at < sealed)
                .scalar_subquery(),
                select(func.max(Purchase.occurred_at))
                .where(Purchase.created_at < sealed)
                .scalar_subquery(),
                select(func.min(LedgerTransaction.occurred_at))
                .where(LedgerTransaction.created_at < sealed)
                .scalar_subquery(),
                select(func.max(LedgerTransaction.occurred_at))
                .where(LedgerTransaction.created_at < sealed)
                .scalar_subquery(),
                select(func.min(LedgerTransaction.created_at))
                .where(LedgerTransaction.created_at < sealed)
                .scalar_subquery(),
            )
        )
    ).one()
    instants = [moment for moment in bounds if moment is not None]
    if instants:
        await _fill(session, zone, sealed, min(instants), max([*instants, cutoff]))
    if session.get_bind().dialect.name == "postgresql":
        # A programStats request reads the cutoff first, then the summaries, each statement
        # with a fresh snapshot: the lock lets the requests under way finish on the old rollup
        # and makes the next ones wait for the commit, so none mixes the two.
        await session.execute(text("LOCK TABLE stats_rollup IN ACCESS EXCLUSIVE MODE"))
    await session.execute(delete(StatsRollup))
    session.add(
        StatsRollup(
            id=ROLLUP_ID, time_zone=program.time_zone, cutoff=cutoff, refreshed_at=datetime.now(UTC)
        )
    )
    await session.flush()
    member_months = await session.scalar(select(func.count()).select_from(StatsMemberMonth))
    days = await session.scalar(select(func.count()).select_from(StatsDay))
    return RollupReport(cutoff=cutoff, member_months=member_months or 0, days=days or 0)


async def _fill(
    session: AsyncSession, zone: ZoneInfo, sealed: object, low: datetime, high: datetime
) -> None:
    """Three set-based INSERT ... SELECTs: member-months, their grouping, and the days."""
    await _fill_member_months(session, zone, sealed, low, high)
    await _fill_months(session)
    await _fill_days(session, zone, sealed, low, high)


async def _fill_member_months(
    session: AsyncSession, zone: ZoneInfo, sealed: object, low: datetime, high: datetime
) -> None:
    """Each member's purchases and revenue in each local month."""
    month = local_month_key(Purchase.occurred_at, low, high, zone)
    purchases = (
        select(Purchase.member_id, month.label("month"), Purchase.total_amount.label("total"))
        .where(Purchase.created_at < sealed)
        .subquery()
    )
    await session.execute(
        insert(StatsMemberMonth).from_select(
            ["member_id", "month", "purchases", "revenue"],
            select(
                purchases.c.member_id,
                purchases.c.month,
                func.count(),
                func.sum(purchases.c.total),
            ).group_by(purchases.c.member_id, purchases.c.month),
        )
    )


async def _fill_months(session: AsyncSession) -> None:
    """The member-months grouped by month and by each member's previous and next month with
    purchases, so that distinct members over a range of months can be counted from them."""
    order: dict[str, Any] = {
        "partition_by": StatsMemberMonth.member_id,
        "order_by": StatsMemberMonth.month,
    }
    neighbours = select(
        StatsMemberMonth.month,
        func.coalesce(func.lag(StatsMemberMonth.month).over(**order), NO_MONTH_BEFORE).label(
            "prev_month"
        ),
        func.coalesce(func.lead(StatsMemberMonth.month).over(**order), NO_MONTH_AFTER).label(
            "next_month"
        ),
        StatsMemberMonth.purchases,
        StatsMemberMonth.revenue,
    ).subquery()
    await session.execute(
        insert(StatsMonth).from_select(
            ["month", "prev_month", "next_month", "members", "singles", "purchases", "revenue"],
            select(
                neighbours.c.month,
                neighbours.c.prev_month,
                neighbours.c.next_month,
                func.count(),
                func.sum(case((neighbours.c.purchases == 1, 1), else_=0)),
                func.sum(neighbours.c.purchases),
                func.sum(neighbours.c.revenue),
            ).group_by(neighbours.c.month, neighbours.c.prev_month, neighbours.c.next_month),
        )
    )


async def _fill_days(
    session: AsyncSession, zone: ZoneInfo, sealed: object, low: datetime, high: datetime
) -> None:
    """Per local day: purchases and revenue, points issued, redeemed and expired (by when
    they happened) and member postings booked (by when they were booked)."""
    issued, redeemed, expired = points_measures()
    zero = literal(0)
    rows = union_all(
        select(
            local_day_key(Purchase.occurred_at, low, high, zone).label("day"),
            literal(1).label("purchases"),
            Purchase.total_amount.label("revenue"),
            zero.label("issued"),
            zero.label("redeemed"),
            zero.label("expired"),
            zero.label("booked"),
        ).where(Purchase.created_at < sealed),
        member_postings()
        .add_columns(
            local_day_key(LedgerTransaction.occurred_at, low, high, zone).label("day"),
            zero.label("purchases"),
            zero.label("revenue"),
            issued.label("issued"),
            redeemed.label("redeemed"),
            expired.label("expired"),
            zero.label("booked"),
        )
        .where(LedgerTransaction.created_at < sealed),
        member_postings()
        .add_columns(
            local_day_key(LedgerTransaction.created_at, low, high, zone, inclusive=True).label(
                "day"
            ),
            zero.label("purchases"),
            zero.label("revenue"),
            zero.label("issued"),
            zero.label("redeemed"),
            zero.label("expired"),
            LedgerEntry.points.label("booked"),
        )
        .where(LedgerTransaction.created_at < sealed),
    ).subquery()
    measures = ("purchases", "revenue", "issued", "redeemed", "expired", "booked")
    await session.execute(
        insert(StatsDay).from_select(
            ["day", *measures],
            select(rows.c.day, *(func.sum(rows.c[name]) for name in measures)).group_by(rows.c.day),
        )
    )


async def current(session: AsyncSession, time_zone: str) -> StatsRollup | None:
    """The rollup, when there is one keyed in the program's time zone of now."""
    rollup = await session.get(StatsRollup, ROLLUP_ID)
    return rollup if rollup is not None and rollup.time_zone == time_zone else None
