"""``release-pending`` and ``expire-points``: set-based jobs over every member's lots.

Each job walks the members in id ranges, one transaction per batch. In a batch the member
rows are locked (on PostgreSQL; SQLite's write lock does the same), the due points are summed
per member into a temporary table, and then a handful of ``INSERT ... SELECT`` and
``UPDATE ... FROM`` statements write one balanced ledger transaction per member, its
postings (``balance_after`` from the locked balances), the new balances and the lots. No
Python loop over members or lots; a second run with the same ``--now`` finds nothing due.
Their outbox events are written the same way, one ``INSERT ... SELECT`` per batch.
On PostgreSQL a batch per CPU runs at once (``batch_workers``): batches lock disjoint members.
"""

import asyncio
import os
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import (
    BigInteger,
    Column,
    MetaData,
    String,
    Table,
    and_,
    delete,
    func,
    insert,
    literal,
    select,
    text,
    union_all,
    update,
)
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql.elements import ColumnElement

from loyalty.db import Database, UTCDateTime, utcnow
from loyalty.ledger.chain import hash_sql, postings_sql, stamp
from loyalty.ledger.models import (
    Account,
    EntryKind,
    LedgerEntry,
    LedgerTransaction,
    LotState,
    PointLot,
)
from loyalty.members.models import Member
from loyalty.outbox import service as outbox

BATCH_SIZE = 25_000
"""Members per batch: 25,000 costs the same CPU as 50,000 (bench/lifecycle_jobs.py at 1M) and
holds each batch's member locks half as long."""
BATCH_WORK_MEM = "64MB"

_scratch = MetaData()
lot_job = Table(
    "lot_job",
    _scratch,
    Column("member_id", BigInteger, primary_key=True),
    Column("amount", BigInteger),
    Column("transaction_id", BigInteger),
    Column("head", String(64)),
    prefixes=["TEMPORARY"],
)
due_members = Table(
    "due_members",
    _scratch,
    Column("member_id", BigInteger, primary_key=True),
    prefixes=["TEMPORARY"],
)


@dataclass(frozen=True)
class JobReport:
    members: int
    points: int

    def __str__(self) -> str:
        return f"{self.points} points of {self.members} members"


async def release_pending(
    db: Database, *, now: datetime, batch_size: int = BATCH_SIZE, workers: int | None = None
) -> JobReport:
    """Pending points whose purchase has settled (``releases_at <= now``) become available."""

    def due(low: int, high: int) -> ColumnElement[bool]:
        return and_(
            PointLot.member_id >= low,
            PointLot.member_id < high,
            PointLot.state == LotState.PENDING,
            PointLot.remaining > 0,
            PointLot.releases_at <= literal(now, UTCDateTime()),
        )

    async def apply(session: AsyncSession, low: int, high: int) -> None:
        await post_per_member(
            session,
            kind=EntryKind.RELEASE,
            now=now,
            reason="Pending points released",
            postings=[
                (Account.MEMBER_PENDING, -1, Member.points_pending),
                (Account.MEMBER_AVAILABLE, 1, Member.points_available),
            ],
        )
        await session.execute(
            update(Member)
            .where(Member.id == lot_job.c.member_id, Member.id >= low, Member.id < high)
            .values(
                points_pending=Member.points_pending - lot_job.c.amount,
                points_available=Member.points_available + lot_job.c.amount,
            )
            .execution_options(synchronize_session=False)
        )
        await session.execute(
            update(PointLot)
            .where(due(low, high), PointLot.member_id.in_(select(lot_job.c.member_id)))
            .values(state=LotState.AVAILABLE)
            .execution_options(synchronize_session=False)
        )
        await emit_job_events(
            session,
            kind=EntryKind.RELEASE,
            now=now,
            reason="Pending points released",
            account=Account.MEMBER_AVAILABLE,
            sign=1,
        )

    return await _run(db, due=due, apply=apply, batch_size=batch_size, workers=workers)


async def expire_points(
    db: Database, *, now: datetime, batch_size: int = BATCH_SIZE, workers: int | None = None
) -> JobReport:
    """What is left of lots whose ``expires_at <= now`` expires, oldest policy first."""

    def due(low: int, high: int) -> ColumnElement[bool]:
        return and_(
            PointLot.member_id >= low,
            PointLot.member_id < high,
            PointLot.state == LotState.AVAILABLE,
            PointLot.remaining > 0,
            PointLot.expires_at <= literal(now, UTCDateTime()),
        )

    async def apply(session: AsyncSession, low: int, high: int) -> None:
        await post_per_member(
            session,
            kind=EntryKind.EXPIRE,
            now=now,
            reason="Points expired",
            postings=[
                (Account.MEMBER_AVAILABLE, -1, Member.points_available),
                (Account.PROGRAM_EXPIRY, 1, None),
            ],
        )
        await session.execute(
            update(Member)
            .where(Member.id == lot_job.c.member_id, Member.id >= low, Member.id < high)
            .values(
                points_available=Member.points_available - lot_job.c.amount,
                points_expired=Member.points_expired + lot_job.c.amount,
            )
            .execution_options(synchronize_session=False)
        )
        await session.execute(
            update(PointLot)
            .where(due(low, high), PointLot.member_id.in_(select(lot_job.c.member_id)))
            .values(expired=PointLot.expired + PointLot.remaining, remaining=0)
            .execution_options(synchronize_session=False)
        )
        await emit_job_events(
            session,
            kind=EntryKind.EXPIRE,
            now=now,
            reason="Points expired",
            account=Account.MEMBER_AVAILABLE,
            sign=-1,
        )

    return await _run(db, due=due, apply=apply, batch_size=batch_size, workers=workers)


Due = Callable[[int, int], ColumnElement[bool]]


def batch_workers(db: Database) -> int:
    """Batches in flight at once: one per CPU on PostgreSQL (each batch is one backend's
    work, and batches lock disjoint members), one on SQLite (a single writer)."""
    return 1 if db.dialect == "sqlite" else max(1, os.cpu_count() or 1)


async def _run(
    db: Database,
    *,
    due: Due,
    apply: Callable[[AsyncSession, int, int], object],
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
        for start in starts:  # shared by the workers: each batch is taken once
            async with db.transaction() as session:
                await tune_batch(session)
                count, points = await _collect(session, due=due, low=start, high=start + batch_size)
                if count:
                    await apply(session, start, start + batch_size)
            totals[0] += count
            totals[1] += points

    tasks = [asyncio.create_task(work()) for _ in range(workers or batch_workers(db))]
    try:
        await asyncio.gather(*tasks)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    return JobReport(members=totals[0], points=totals[1])


async def tune_batch(session: AsyncSession) -> None:
    """PostgreSQL settings for one batch's transaction. JIT off: the hashed ``INSERT ... SELECT``
    plans cost enough to be JIT-compiled, which took 0.6-1 s per batch and saved nothing on
    row-at-a-time work. A larger ``work_mem`` keeps the batch's sorts and hashes in memory."""
    if session.get_bind().dialect.name == "postgresql":
        await session.execute(text("SET LOCAL jit = off"))
        await session.execute(text(f"SET LOCAL work_mem = '{BATCH_WORK_MEM}'"))


async def _collect(session: AsyncSession, *, due: Due, low: int, high: int) -> tuple[int, int]:
    """Fill ``lot_job`` with the batch's members that have due points, what is due, the ids
    of their transactions and their chain heads.

    Only those members are locked (``FOR UPDATE`` on PostgreSQL), and the amounts are summed
    after the lock, so a debit or a purchase committed meanwhile cannot skew them. Each
    ``lot_job`` row is written once, complete (on PostgreSQL), by the statement that sums. A
    batch with nothing due costs one index scan and writes nothing.
    """
    connection = await session.connection()
    for table in (due_members, lot_job):
        await connection.run_sync(lambda sync, table=table: table.create(sync, checkfirst=True))
        await session.execute(delete(table))
    await session.execute(
        insert(due_members).from_select(
            ["member_id"], select(PointLot.member_id).where(due(low, high)).distinct()
        )
    )
    if not await session.scalar(select(func.count()).select_from(due_members)):
        return 0, 0
    await lock_job_members(session, due_members)
    postgresql = session.get_bind().dialect.name == "postgresql"
    amount = func.sum(PointLot.remaining)
    columns = [PointLot.member_id, amount]
    if postgresql:
        columns += [func.nextval("ledger_transactions_id_seq"), chain_head(PointLot.member_id)]
    await session.execute(
        insert(lot_job).from_select(
            ["member_id", "amount", "transaction_id", "head"][: len(columns)],
            select(*columns)
            .where(due(low, high), PointLot.member_id.in_(select(due_members.c.member_id)))
            .group_by(PointLot.member_id)
            .having(amount > 0),
        )
    )
    if postgresql:
        await session.execute(text("ANALYZE lot_job"))
    else:
        await number_transactions(session)
    count, total = (
        await session.execute(select(func.count(), func.coalesce(func.sum(lot_job.c.amount), 0)))
    ).one()
    return count, int(total)


async def lock_job_members(session: AsyncSession, table: Table = lot_job) -> None:
    """Lock the members in ``table`` (``FOR UPDATE`` on PostgreSQL), newest first: wherever
    several members are locked together, the higher id goes first (a referee's first purchase
    locks the referee, then the referrer who enrolled before), so no two can deadlock."""
    await session.execute(
        select(func.count()).select_from(
            select(Member.id)
            .join(table, table.c.member_id == Member.id)
            .where(within(table))
            .order_by(Member.id.desc())
            .with_for_update(of=Member)
            .subquery()
        )
    )


def within(table: Table) -> ColumnElement[bool]:
    """Members between the lowest and highest id of ``table``: joined to a batch, the members
    are then read by primary-key range, not by a scan of the whole table for every batch."""
    ids = table.c.member_id
    return Member.id.between(
        select(func.min(ids)).scalar_subquery(), select(func.max(ids)).scalar_subquery()
    )


async def number_transactions(session: AsyncSession) -> None:
    """Give each row of ``lot_job`` the id of the ledger transaction about to be written and
    the member's chain head (the hash of its latest transaction; the members are locked), read
    once here because the insert uses it twice (``prev_hash`` and inside ``hash``)."""
    if session.get_bind().dialect.name == "postgresql":
        next_id: ColumnElement[int] = func.nextval("ledger_transactions_id_seq")
    else:
        # SQLite: this transaction holds the write lock, so max(id) cannot move under it.
        later = lot_job.alias("later")
        next_id = (
            select(func.coalesce(func.max(LedgerTransaction.id), 0)).scalar_subquery()
            + select(func.count()).where(later.c.member_id <= lot_job.c.member_id).scalar_subquery()
        )
    head = chain_head(lot_job.c.member_id)
    await session.execute(update(lot_job).values(transaction_id=next_id, head=head))


def chain_head(member_id: ColumnElement[int]) -> ColumnElement[str | None]:
    """The hash of the member's latest transaction (None before its first)."""
    transactions = LedgerTransaction.__table__
    return (
        select(transactions.c.hash)
        .where(transactions.c.member_id == member_id)
        .order_by(transactions.c.id.desc())
        .limit(1)
        .scalar_subquery()
    )


async def post_per_member(
    session: AsyncSession,
    *,
    kind: EntryKind,
    now: datetime,
    reason: str,
    postings: list[tuple[Account, int, ColumnElement[int] | None]],
) -> None:
    """One transaction per ``lot_job`` row, with a posting per (account, sign, balance),
    chained to the member's previous transaction (the members are locked)."""
    created_at = utcnow()
    amount = lot_job.c.amount
    digest = hash_sql(
        {
            "id": lot_job.c.transaction_id,
            "kind": literal(kind.value),
            "member_id": lot_job.c.member_id,
            "occurred_at": literal(stamp(now)),
            "created_at": literal(stamp(created_at)),
            "reason": literal(reason),
            "purchase_id": literal(None, BigInteger()),
            "redemption_id": literal(None, BigInteger()),
            "qualifying_points": literal(0, BigInteger()),
            "qualifying_at": literal(None, String()),
            "postings": postings_sql([(a.value, sign, amount) for a, sign, _ in postings]),
            "prev_hash": lot_job.c.head,
        }
    )
    await session.execute(
        insert(LedgerTransaction).from_select(
            ["id", "kind", "member_id", "occurred_at", "created_at", "reason", "prev_hash", "hash"],
            select(
                lot_job.c.transaction_id,
                literal(kind.value),
                lot_job.c.member_id,
                literal(now, UTCDateTime()),
                literal(created_at, UTCDateTime()),
                literal(reason),
                lot_job.c.head,
                digest,
            )
            .select_from(lot_job)
            .order_by(lot_job.c.transaction_id),
        )
    )
    with_member = lot_job.join(Member, and_(Member.id == lot_job.c.member_id, within(lot_job)))
    selects = [
        select(
            lot_job.c.transaction_id,
            literal(account.value),
            lot_job.c.member_id if balance is not None else literal(None, BigInteger()),
            lot_job.c.amount * sign,
            (balance + lot_job.c.amount * sign)
            if balance is not None
            else literal(None, BigInteger()),
        ).select_from(lot_job if balance is None else with_member)
        for account, sign, balance in postings
    ]
    await session.execute(
        insert(LedgerEntry).from_select(
            ["transaction_id", "account", "member_id", "points", "balance_after"],
            union_all(*selects),
        )
    )


async def emit_job_events(
    session: AsyncSession,
    *,
    kind: EntryKind,
    now: datetime,
    reason: str,
    account: Account,
    sign: int,
) -> None:
    """The ``points.*`` event of each ``lot_job`` row's transaction (written, and the balances
    updated, before): ``entry`` is the transaction's posting to ``account``."""
    json = outbox.json_sql
    data = json(
        session,
        {
            "points": lot_job.c.amount * sign,
            "entry": json(
                session,
                {
                    "id": outbox.global_id_sql("LedgerEntry", LedgerEntry.id),
                    "kind": literal(kind.value),
                    "points": LedgerEntry.points,
                    "balanceAfter": LedgerEntry.balance_after,
                    "occurredAt": literal(outbox.iso(now)),
                    "reason": literal(reason),
                },
            ),
            "purchase": literal(None, String()),
            "redemption": literal(None, String()),
            "member": json(
                session,
                {
                    "id": outbox.global_id_sql("Member", Member.id),
                    "points": outbox.points_sql(session),
                },
            ),
        },
    )
    await outbox.emit_select(
        session,
        outbox.POINTS_EVENTS[kind],
        occurred_at=now,
        rows=select(lot_job.c.member_id, data.label("data"))
        .select_from(lot_job)
        .join(Member, Member.id == lot_job.c.member_id)
        .join(
            LedgerEntry,
            and_(
                LedgerEntry.transaction_id == lot_job.c.transaction_id,
                LedgerEntry.account == account.value,
            ),
        ),
    )
