"""``release-pending`` and ``expire-points``: set-based jobs over every member's lots.

Each job walks the members in id ranges, one transaction per batch. In a batch the members
with due lots are locked (on PostgreSQL; SQLite's write lock does the same), the due points
are summed per member after the lock, and ``ledger.batch.post_batch`` writes one balanced
ledger transaction per member, its postings, the new balances, the lots and the outbox
events in a handful of ``INSERT ... SELECT`` and ``UPDATE ... FROM`` statements. No Python
loop over members or lots; a second run with the same ``--now`` finds nothing due.
On PostgreSQL a batch per CPU runs at once (``batch_workers``): batches lock disjoint members.
"""

import asyncio
import os
from collections.abc import Callable
from datetime import datetime

from sqlalchemy import and_, func, insert, literal, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import InstrumentedAttribute
from sqlalchemy.sql.elements import ColumnElement

from loyalty.db import Database, UTCDateTime
from loyalty.ledger.batch import (
    BatchMovement,
    ExpireLots,
    JobReport,
    LotChange,
    ReleaseLots,
    batch_members,
    lock_members,
    post_batch,
    start,
    tune,
)
from loyalty.ledger.models import Account, EntryKind, LotState, PointLot
from loyalty.members.models import Member

__all__ = ["BATCH_SIZE", "JobReport", "batch_workers", "expire_points", "release_pending"]

BATCH_SIZE = 25_000
"""Members per batch: 25,000 costs the same CPU as 50,000 (bench/lifecycle_jobs.py at 1M) and
holds each batch's member locks half as long."""

Due = Callable[[int, int], ColumnElement[bool]]


async def release_pending(
    db: Database, *, now: datetime, batch_size: int = BATCH_SIZE, workers: int | None = None
) -> JobReport:
    """Pending points whose purchase has settled (``releases_at <= now``) become available."""
    due = _lots_due(LotState.PENDING, PointLot.releases_at, now)

    def movement(lots: LotChange) -> BatchMovement:
        return BatchMovement(
            kind=EntryKind.RELEASE,
            occurred_at=now,
            reason="Pending points released",
            lots=lots,
            pending=-1,
            available=1,
        )

    return await _run(
        db, due=due, movement=movement, lots=ReleaseLots, batch_size=batch_size, workers=workers
    )


async def expire_points(
    db: Database, *, now: datetime, batch_size: int = BATCH_SIZE, workers: int | None = None
) -> JobReport:
    """What is left of lots whose ``expires_at <= now`` expires, oldest policy first."""
    due = _lots_due(LotState.AVAILABLE, PointLot.expires_at, now)

    def movement(lots: LotChange) -> BatchMovement:
        return BatchMovement(
            kind=EntryKind.EXPIRE,
            occurred_at=now,
            reason="Points expired",
            lots=lots,
            counter_account=Account.PROGRAM_EXPIRY,
            available=-1,
            expired=1,
        )

    return await _run(
        db, due=due, movement=movement, lots=ExpireLots, batch_size=batch_size, workers=workers
    )


def _lots_due(
    state: LotState, deadline: InstrumentedAttribute[datetime | None], now: datetime
) -> Due:
    """Lots of the member range in ``state`` with points left whose ``deadline`` has come."""

    def due(low: int, high: int) -> ColumnElement[bool]:
        return and_(
            PointLot.member_id >= low,
            PointLot.member_id < high,
            PointLot.state == state,
            PointLot.remaining > 0,
            deadline <= literal(now, UTCDateTime()),
        )

    return due


def batch_workers(db: Database) -> int:
    """Batches in flight at once: one per CPU on PostgreSQL (each batch is one backend's
    work, and batches lock disjoint members), one on SQLite (a single writer)."""
    return 1 if db.dialect == "sqlite" else max(1, os.cpu_count() or 1)


async def _run(
    db: Database,
    *,
    due: Due,
    movement: Callable[[LotChange], BatchMovement],
    lots: Callable[[ColumnElement[bool]], LotChange],
    batch_size: int = BATCH_SIZE,
    workers: int | None = None,
) -> JobReport:
    async with db.transaction() as session:
        low, top = (await session.execute(select(func.min(Member.id), func.max(Member.id)))).one()
    if low is None:
        return JobReport(members=0, points=0)
    starts = iter(range(low, top + 1, batch_size))
    totals = [0, 0]

    async def work() -> None:
        for first in starts:  # shared by the workers: each batch is taken once
            in_batch = due(first, first + batch_size)
            async with db.transaction() as session:
                report = await _post_due(session, due=in_batch, movement=movement(lots(in_batch)))
            totals[0] += report.members
            totals[1] += report.points

    tasks = [asyncio.create_task(work()) for _ in range(workers or batch_workers(db))]
    try:
        await asyncio.gather(*tasks)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    return JobReport(members=totals[0], points=totals[1])


async def _post_due(
    session: AsyncSession, *, due: ColumnElement[bool], movement: BatchMovement
) -> JobReport:
    """Post the due points of the batch's members. Only members with due lots are locked,
    and the amounts are summed after the lock, so a debit or a purchase committed meanwhile
    cannot skew them. A batch with nothing due costs one index scan and writes nothing."""
    await tune(session)
    await start(session)
    await session.execute(
        insert(batch_members).from_select(
            ["member_id"], select(PointLot.member_id).where(due).distinct()
        )
    )
    if not await session.scalar(select(func.count()).select_from(batch_members)):
        return JobReport(members=0, points=0)
    await lock_members(session)
    amount = func.sum(PointLot.remaining)
    return await post_batch(
        session,
        movement,
        amounts=select(PointLot.member_id, amount.label("amount"))
        .where(due, PointLot.member_id.in_(select(batch_members.c.member_id)))
        .group_by(PointLot.member_id)
        .having(amount > 0),
    )
