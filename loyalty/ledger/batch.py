"""Posting one movement to a batch of members at once: the set-based half of the ledger's API.

``ledger.service`` posts one member's movement; this module posts the same kind of movement to
every member of a batch (the jobs ``release-pending`` and ``expire-points``, the birthday
bonus) in a fixed number of statements, whatever the batch's size. Between them they are the
only code that writes ledger transactions, postings, lots and the members' balances, so
whatever must happen on every movement (hash chain, ``balance_after``, outbox event) happens
here once.

A caller fills ``batch_members`` with candidate members, locks them (``lock_members``), and
calls ``post_batch`` with a ``SELECT`` of each locked member's amount. ``post_batch`` numbers
one transaction per member (chained to the member's previous one), writes its postings with
``balance_after`` read from the locked balances, updates the balances, changes the lots and
emits the ``points.*`` events, each as one ``INSERT ... SELECT`` or ``UPDATE ... FROM``.
The batch's rows stay in ``batch`` until the next batch, for the caller to join.
"""

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Column,
    MetaData,
    Select,
    SQLColumnExpression,
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

from loyalty.db import UTCDateTime, utcnow
from loyalty.ledger.chain import Same, hash_sql, postings_sql
from loyalty.ledger.models import (
    Account,
    EntryKind,
    LedgerEntry,
    LedgerTransaction,
    LotConsumption,
    LotState,
    PointLot,
)
from loyalty.members.models import Member
from loyalty.outbox import service as outbox

BATCH_WORK_MEM = "64MB"

_scratch = MetaData()
batch_members = Table(
    "batch_members",
    _scratch,
    Column("member_id", BigInteger, primary_key=True),
    prefixes=["TEMPORARY"],
)
"""The members a caller means to post to, before they are locked."""
batch = Table(
    "batch_postings",
    _scratch,
    Column("member_id", BigInteger, primary_key=True),
    Column("amount", BigInteger),
    Column("transaction_id", BigInteger),
    Column("head", String(64)),
    prefixes=["TEMPORARY"],
)
"""The batch being posted: each member's amount, transaction id and chain head."""


@dataclass(frozen=True)
class JobReport:
    members: int
    points: int

    def __str__(self) -> str:
        return f"{self.points} points of {self.members} members"


@dataclass(frozen=True)
class OpenLots:
    """The credit opens one lot per member (as ``ledger.service.earn`` does)."""

    expires_at: datetime | None


@dataclass(frozen=True)
class ReleaseLots:
    """The members' lots matching ``due`` become available (the amounts are their sums)."""

    due: ColumnElement[bool]


@dataclass(frozen=True)
class ExpireLots:
    """What is left of the members' lots matching ``due`` expires."""

    due: ColumnElement[bool]


@dataclass(frozen=True)
class ConsumeLots:
    """What is left of the members' lots matching ``due`` is spent by the movement (recorded
    as lot consumptions, as a debit of one member records them): a forfeit."""

    due: ColumnElement[bool]


LotChange = OpenLots | ReleaseLots | ExpireLots | ConsumeLots


@dataclass(frozen=True)
class BatchMovement:
    """One movement per member of the batch, of that member's ``amount`` times each sign
    (-1, 0 or 1): ``ledger.service.Movement`` with signs where it has deltas."""

    kind: EntryKind
    occurred_at: datetime
    reason: str
    lots: LotChange
    counter_account: Account | None = None
    """The program account that balances the member postings (None when they balance)."""
    available: int = 0
    pending: int = 0
    lifetime_earned: int = 0
    expired: int = 0


async def start(session: AsyncSession) -> None:
    """Create (once per connection) and empty the batch tables. On PostgreSQL by ``TRUNCATE``:
    autovacuum never visits temporary tables, so rows deleted by every batch of a connection
    would stay in them, and each scan of the batch would read all of its predecessors."""
    connection = await session.connection()
    postgres = session.get_bind().dialect.name == "postgresql"
    for table in (batch_members, batch):
        await connection.run_sync(table.create, checkfirst=True)
        if postgres:
            await session.execute(text(f"TRUNCATE {table.name}"))
        else:
            await session.execute(delete(table))


async def tune(session: AsyncSession) -> None:
    """PostgreSQL settings for one batch's transaction. JIT off: the hashed ``INSERT ... SELECT``
    plans cost enough to be JIT-compiled, which took 0.6-1 s per batch and saved nothing on
    row-at-a-time work. A larger ``work_mem`` keeps the batch's sorts and hashes in memory."""
    if session.get_bind().dialect.name == "postgresql":
        await session.execute(text("SET LOCAL jit = off"))
        await session.execute(text(f"SET LOCAL work_mem = '{BATCH_WORK_MEM}'"))


async def lock_members(session: AsyncSession, table: Table = batch_members) -> None:
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


async def post_batch(
    session: AsyncSession, movement: BatchMovement, *, amounts: Select[*tuple[Any, ...]]
) -> JobReport:
    """Post ``movement`` to each member ``amounts`` selects (``member_id``, ``amount`` > 0);
    those members must be locked. Nothing is written when it selects none."""
    numbered = await _number(session, amounts)
    if not numbered.members:
        return JobReport(members=0, points=0)
    # The batch's id range as constants: the planner reads the members by primary-key range.
    in_range = Member.id.between(numbered.low, numbered.high)
    await _write_transactions(session, movement, in_range)
    await _update_balances(session, movement, in_range)
    await _change_lots(session, movement)
    await _emit_events(session, movement, in_range)
    return JobReport(members=numbered.members, points=numbered.points)


@dataclass(frozen=True)
class _Numbered:
    members: int
    points: int
    low: int | None
    high: int | None


async def _number(session: AsyncSession, amounts: Select[*tuple[Any, ...]]) -> _Numbered:
    """Fill ``batch`` from ``amounts`` with each member's transaction id and chain head (the
    hash of its latest transaction, read once: the insert uses it twice). On PostgreSQL each
    row is written once, complete, by the statement that selects it."""
    chosen = amounts.subquery()
    if session.get_bind().dialect.name == "postgresql":
        await session.execute(
            insert(batch).from_select(
                ["member_id", "amount", "transaction_id", "head"],
                select(
                    chosen.c.member_id,
                    chosen.c.amount,
                    func.nextval("ledger_transactions_id_seq"),
                    _chain_head(chosen.c.member_id),
                ),
            )
        )
        await session.execute(text(f"ANALYZE {batch.name}"))
    else:
        await session.execute(
            insert(batch).from_select(
                ["member_id", "amount"], select(chosen.c.member_id, chosen.c.amount)
            )
        )
        # SQLite: this transaction holds the write lock, so max(id) cannot move under it.
        later = batch.alias("later")
        next_id = (
            select(func.coalesce(func.max(LedgerTransaction.id), 0)).scalar_subquery()
            + select(func.count()).where(later.c.member_id <= batch.c.member_id).scalar_subquery()
        )
        await session.execute(
            update(batch).values(transaction_id=next_id, head=_chain_head(batch.c.member_id))
        )
    ids = batch.c.member_id
    count, total, low, high = (
        await session.execute(
            select(
                func.count(),
                func.coalesce(func.sum(batch.c.amount), 0),
                func.min(ids),
                func.max(ids),
            )
        )
    ).one()
    return _Numbered(members=int(count), points=int(total), low=low, high=high)


def _chain_head(member_id: ColumnElement[int]) -> ColumnElement[str | None]:
    """The hash of the member's latest transaction (None before its first)."""
    transactions = LedgerTransaction.__table__
    return (
        select(transactions.c.hash)
        .where(transactions.c.member_id == member_id)
        .order_by(transactions.c.id.desc())
        .limit(1)
        .scalar_subquery()
    )


Leg = tuple[Account, int, SQLColumnExpression[int] | None]
"""A posting of the movement: account, sign, and the member balance it moves (None: none)."""


def _legs(movement: BatchMovement) -> list[Leg]:
    """Member postings, debits first, then the counter posting."""
    member: list[Leg] = [
        (Account.MEMBER_AVAILABLE, movement.available, Member.points_available),
        (Account.MEMBER_PENDING, movement.pending, Member.points_pending),
    ]
    legs = sorted((leg for leg in member if leg[1]), key=lambda leg: leg[1])
    counter = -(movement.available + movement.pending)
    if counter:
        if movement.counter_account is None:
            raise ValueError(f"{movement} does not balance without a counter account")
        legs.append((movement.counter_account, counter, None))
    return legs


async def _write_transactions(
    session: AsyncSession, movement: BatchMovement, in_range: ColumnElement[bool]
) -> None:
    """One transaction per ``batch`` row with a posting per leg, chained to the member's
    previous transaction; ``balance_after`` from the balances before the update."""
    created_at = utcnow()
    legs = _legs(movement)
    digest = hash_sql(
        {
            "id": batch.c.transaction_id,
            "kind": Same(movement.kind.value),
            "member_id": batch.c.member_id,
            "occurred_at": Same(movement.occurred_at),
            "created_at": Same(created_at),
            "reason": Same(movement.reason),
            "purchase_id": Same(None),
            "redemption_id": Same(None),
            "qualifying_points": Same(0),
            "qualifying_at": Same(None),
            "postings": postings_sql([(a.value, sign, batch.c.amount) for a, sign, _ in legs]),
            "prev_hash": batch.c.head,
        }
    )
    await session.execute(
        insert(LedgerTransaction).from_select(
            ["id", "kind", "member_id", "occurred_at", "created_at", "reason", "prev_hash", "hash"],
            select(
                batch.c.transaction_id,
                literal(movement.kind.value),
                batch.c.member_id,
                literal(movement.occurred_at, UTCDateTime()),
                literal(created_at, UTCDateTime()),
                literal(movement.reason),
                batch.c.head,
                digest,
            )
            .select_from(batch)
            .order_by(batch.c.transaction_id),
        )
    )
    with_member = batch.join(Member, and_(Member.id == batch.c.member_id, in_range))
    no_member = literal(None, BigInteger())
    selects = [
        select(
            batch.c.transaction_id,
            literal(account.value),
            batch.c.member_id if balance is not None else no_member,
            batch.c.amount * sign,
            (balance + batch.c.amount * sign) if balance is not None else no_member,
        ).select_from(batch if balance is None else with_member)
        for account, sign, balance in legs
    ]
    await session.execute(
        insert(LedgerEntry).from_select(
            ["transaction_id", "account", "member_id", "points", "balance_after"],
            union_all(*selects),
        )
    )


async def _update_balances(
    session: AsyncSession, movement: BatchMovement, in_range: ColumnElement[bool]
) -> None:
    signs = {
        "points_available": movement.available,
        "points_pending": movement.pending,
        "lifetime_earned": movement.lifetime_earned,
        "points_expired": movement.expired,
    }
    await session.execute(
        update(Member)
        .where(Member.id == batch.c.member_id, in_range)
        .values(
            {
                column: getattr(Member, column) + batch.c.amount * sign
                for column, sign in signs.items()
                if sign
            }
        )
        .execution_options(synchronize_session=False)
    )


async def _change_lots(session: AsyncSession, movement: BatchMovement) -> None:
    lots = movement.lots
    if isinstance(lots, OpenLots):
        await _open_lots(session, movement, lots)
        return
    if isinstance(lots, ConsumeLots):
        await _consume_lots(session, lots)
        return
    values = (
        {"state": LotState.AVAILABLE}
        if isinstance(lots, ReleaseLots)
        else {"expired": PointLot.expired + PointLot.remaining, "remaining": 0}
    )
    await session.execute(
        update(PointLot)
        .where(lots.due, PointLot.member_id.in_(select(batch.c.member_id)))
        .values(values)
        .execution_options(synchronize_session=False)
    )


async def _consume_lots(session: AsyncSession, lots: ConsumeLots) -> None:
    remaining = (lots.due, PointLot.remaining > 0)
    await session.execute(
        insert(LotConsumption).from_select(
            ["lot_id", "transaction_id", "amount"],
            select(PointLot.id, batch.c.transaction_id, PointLot.remaining)
            .join(batch, batch.c.member_id == PointLot.member_id)
            .where(*remaining),
        )
    )
    await session.execute(
        update(PointLot)
        .where(PointLot.member_id.in_(select(batch.c.member_id)), *remaining)
        .values(remaining=0)
        .execution_options(synchronize_session=False)
    )


async def _open_lots(session: AsyncSession, movement: BatchMovement, lots: OpenLots) -> None:
    if movement.available <= 0 or movement.pending:
        raise ValueError(f"{movement} is not a credit of available points")
    await session.execute(
        insert(PointLot).from_select(
            [
                "member_id",
                "transaction_id",
                "amount",
                "remaining",
                "expired",
                "state",
                "earned_at",
                "expires_at",
            ],
            select(
                batch.c.member_id,
                batch.c.transaction_id,
                batch.c.amount,
                batch.c.amount,
                literal(0),
                literal(LotState.AVAILABLE.value),
                literal(movement.occurred_at, UTCDateTime()),
                literal(lots.expires_at, UTCDateTime()),
            ),
        )
    )


async def _emit_events(
    session: AsyncSession, movement: BatchMovement, in_range: ColumnElement[bool]
) -> None:
    """The ``points.*`` event of each ``batch`` row's transaction (written, and the balances
    updated, before): ``entry`` is the transaction's posting to the available account (to the
    pending one when available does not move). The members are read by their id range: joined
    on the batch alone, PostgreSQL read every member of the program for every batch."""
    account, sign = (
        (Account.MEMBER_AVAILABLE, movement.available)
        if movement.available
        else (Account.MEMBER_PENDING, movement.pending)
    )
    json = outbox.json_sql
    data = json(
        session,
        {
            "points": batch.c.amount * sign,
            "entry": json(
                session,
                {
                    "id": outbox.global_id_sql("LedgerEntry", LedgerEntry.id),
                    "kind": literal(movement.kind.value),
                    "points": LedgerEntry.points,
                    "balanceAfter": LedgerEntry.balance_after,
                    "occurredAt": literal(outbox.iso(movement.occurred_at)),
                    "reason": literal(movement.reason),
                },
            ),
            "purchase": literal(None, String()),
            "redemption": literal(None, String()),
            "member": outbox.member_points_sql(session),
        },
    )
    await outbox.emit_select(
        session,
        outbox.POINTS_EVENTS[movement.kind],
        occurred_at=movement.occurred_at,
        rows=select(batch.c.member_id, data.label("data"))
        .select_from(batch)
        .join(Member, and_(Member.id == batch.c.member_id, in_range))
        .join(
            LedgerEntry,
            and_(
                LedgerEntry.transaction_id == batch.c.transaction_id,
                LedgerEntry.account == account.value,
            ),
        ),
    )
