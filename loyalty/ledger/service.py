"""Posting one member's points movements: the per-member half of the ledger's API.

With ``ledger.batch`` (the same movements for a batch of members at once) this is the only
code that writes ledger transactions, postings, lots and the members' balances
(``tests/posting_guard.py`` checks it over the whole test suite), so what every movement needs
(the hash chain, ``balance_after``, the outbox event) is done here once.

A movement is written as one balanced transaction: the member's postings, one posting to the
program's counter account that makes the sum zero, and the stored balances updated in the
same database transaction. The balance update is a conditional ``UPDATE ... RETURNING`` that
refuses to take available or pending below zero, so two concurrent debits can never spend the
same points; a ``CHECK`` constraint on the table backs it up.
"""

import functools
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from sqlalchemy import Table, Update, bindparam, func, insert, select, text, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql.elements import ColumnElement

from loyalty.db import attach, columns_of, flush_changes, utcnow
from loyalty.errors import DomainError, ErrorCode
from loyalty.hot_statements import HotStatement
from loyalty.ledger.chain import FIELDS, transaction_hash
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
from loyalty.pagination import Page, PageRequest, pages_by_owner


@dataclass(frozen=True)
class Movement:
    """One points movement of one member; deltas are signed."""

    kind: EntryKind
    member_id: int
    counter_account: Account
    occurred_at: datetime
    available: int = 0
    pending: int = 0
    lifetime_earned: int = 0
    redeemed: int = 0
    expired: int = 0
    reason: str | None = None
    purchase_id: int | None = None
    redemption_id: int | None = None
    qualifying_points: int = 0
    qualifying_at: datetime | None = None
    expires_at: datetime | None = None
    """Credits: when the lot they create expires (None: never)."""
    releases_at: datetime | None = None
    """Pending credits: when the lot becomes available."""
    restores: int | None = None
    """A credit that gives back what this earlier transaction took from lots."""


@dataclass(frozen=True)
class EntryView:
    """A member posting as clients see it: the posting joined with its transaction."""

    id: int
    transaction_id: int
    member_id: int
    kind: str
    account: str
    points: int
    balance_after: int | None
    occurred_at: datetime
    created_at: datetime
    reason: str | None
    purchase_id: int | None
    redemption_id: int | None


@dataclass(frozen=True)
class Posted:
    member: Member
    entry: EntryView


# Built once: the hot path only binds values (statement construction costs more than its run).
# Core, not an ORM-enabled UPDATE: ``attach`` puts the returned member in the session for a
# fraction of the ORM's bulk-update bookkeeping.
_MEMBERS = Member.__table__
_BALANCES = (
    update(_MEMBERS)
    .where(
        _MEMBERS.c.id == bindparam("member"),
        _MEMBERS.c.points_available + bindparam("d_available") >= 0,
        _MEMBERS.c.points_pending + bindparam("d_pending") >= 0,
    )
    .values(
        points_available=_MEMBERS.c.points_available + bindparam("d_available"),
        points_pending=_MEMBERS.c.points_pending + bindparam("d_pending"),
        lifetime_earned=_MEMBERS.c.lifetime_earned + bindparam("d_lifetime"),
        points_redeemed=_MEMBERS.c.points_redeemed + bindparam("d_redeemed"),
        points_expired=_MEMBERS.c.points_expired + bindparam("d_expired"),
    )
)
_TRANSACTIONS = LedgerTransaction.__table__
_INSERT_TRANSACTION = insert(_TRANSACTIONS)


def _update_balances(ids: int, head: bool) -> HotStatement:
    """The balance update, returning the member and ``ids`` ids for the transactions about to
    be written: taken under the member's row lock, so a member's transactions get increasing
    ids in the order they are written. With ``head``, also the member's latest hash
    (``_CHAIN_HEAD``), for a caller that locked the member earlier in its transaction."""

    def build(session: AsyncSession) -> Update:
        if session.get_bind().dialect.name == "postgresql":
            new_ids: list[ColumnElement[int]] = [
                func.nextval("ledger_transactions_id_seq") for _ in range(ids)
            ]
        else:
            # SQLite: this transaction holds the write lock, so max(id) cannot move under it.
            last = select(func.coalesce(func.max(_TRANSACTIONS.c.id), 0)).scalar_subquery()
            new_ids = [last + n for n in range(1, ids + 1)]
        returned = [*columns_of(Member), *(i.label(f"new_id{n}") for n, i in enumerate(new_ids))]
        if head:
            returned.append(_CHAIN_HEAD.scalar_subquery().label("chain_head"))
        return _BALANCES.returning(*returned)

    return HotStatement(build)


_CHAIN_HEAD = (
    select(_TRANSACTIONS.c.hash)
    .where(_TRANSACTIONS.c.member_id == bindparam("member"))
    .order_by(_TRANSACTIONS.c.id.desc())
    .limit(1)
)
"""The member's latest hash. Its own statement, run once the balance update holds the member's
row: on PostgreSQL a subquery of that update would read the snapshot taken before it waited
for the lock, and miss the transaction of whoever held it. A caller that locked the member
earlier in its transaction (``member_locked``) has the update return it: that update waits for
nobody, so its snapshot is taken under the lock."""
_UPDATE_BALANCES = {
    (ids, head): _update_balances(ids, head) for ids in (1, 2) for head in (False, True)
}
_UNREAD = object()
"""The chain head was not read with the balances: ``_write`` reads it."""


def _chain(
    transactions: list[dict[str, Any]],
    postings: dict[object, list[tuple[object, object]]],
    head: object,
) -> None:
    """Give each transaction row (in id order) its ``prev_hash`` and ``hash``."""
    for row in transactions:
        row["prev_hash"] = head
        row["hash"] = head = transaction_hash({**row, "postings": postings[row["id"]]})


_INSERT_ENTRIES = insert(LedgerEntry.__table__).returning(
    LedgerEntry.__table__.c.id, sort_by_parameter_order=True
)
_INSERT_LOT = insert(PointLot.__table__)


async def post(session: AsyncSession, movement: Movement, *, member_locked: bool = False) -> Posted:
    """Write a movement; ``INSUFFICIENT_POINTS`` (and nothing written) if a balance would go < 0.
    ``member_locked``: the caller locked the member row earlier in this transaction, so the
    balance update also returns the chain head (as ``earn``)."""
    locked = await _lock_balances(
        session,
        ids=1,
        member_id=movement.member_id,
        available=movement.available,
        pending=movement.pending,
        lifetime_earned=movement.lifetime_earned,
        redeemed=movement.redeemed,
        expired=movement.expired,
        member_locked=member_locked,
    )
    if locked is None:
        raise DomainError(
            ErrorCode.INSUFFICIENT_POINTS,
            "The member does not have enough points for this.",
            ["points"],
        )
    member, (transaction_id,), head = locked
    created_at = utcnow()
    rows = _movement_postings(movement, member, transaction_id)
    entry_ids = await _write(
        session,
        member_id=movement.member_id,
        transactions=[_movement_transaction(movement, transaction_id, created_at)],
        rows=rows,
        head=head,
    )
    await _move_lots(session, movement, transaction_id)
    entry = EntryView(
        id=entry_ids[0],
        transaction_id=transaction_id,
        member_id=member.id,
        kind=movement.kind,
        account=rows[0]["account"],
        points=rows[0]["points"],
        balance_after=rows[0]["balance_after"],
        occurred_at=movement.occurred_at,
        created_at=created_at,
        reason=movement.reason,
        purchase_id=movement.purchase_id,
        redemption_id=movement.redemption_id,
    )
    await outbox.emit_points(
        session,
        kind=movement.kind,
        member=member,
        points=movement.available + movement.pending,
        occurred_at=movement.occurred_at,
        entry=_event_entry(entry),
        purchase_id=movement.purchase_id,
        redemption_id=movement.redemption_id,
    )
    return Posted(member=member, entry=entry)


async def _lock_balances(
    session: AsyncSession,
    *,
    ids: int,
    member_id: int,
    available: int,
    pending: int,
    lifetime_earned: int,
    redeemed: int = 0,
    expired: int = 0,
    member_locked: bool = False,
) -> tuple[Member, list[int], object] | None:
    """Apply the deltas under the member's row lock; the member, ``ids`` new transaction ids
    and (``member_locked``) the chain head, or None when the member is missing or a balance
    would go below zero."""
    await flush_changes(session)
    rows = await _UPDATE_BALANCES[ids, member_locked].rows(
        session,
        {
            "member": member_id,
            "d_available": available,
            "d_pending": pending,
            "d_lifetime": lifetime_earned,
            "d_redeemed": redeemed,
            "d_expired": expired,
        },
    )
    if not rows:
        return None
    values = rows[0]
    head = values["chain_head"] if member_locked else _UNREAD
    return attach(session, Member, values), [values[f"new_id{n}"] for n in range(ids)], head


def _movement_transaction(
    movement: Movement, transaction_id: int, created_at: datetime
) -> dict[str, Any]:
    return {
        "id": transaction_id,
        "kind": movement.kind,
        "member_id": movement.member_id,
        "occurred_at": movement.occurred_at,
        "created_at": created_at,
        "reason": movement.reason,
        "purchase_id": movement.purchase_id,
        "redemption_id": movement.redemption_id,
        "qualifying_points": movement.qualifying_points,
        "qualifying_at": movement.qualifying_at,
    }


def _movement_postings(
    movement: Movement, member: Member, transaction_id: int
) -> list[dict[str, Any]]:
    """The member's postings (``balance_after`` from the updated balances), then the counter
    posting that makes the transaction sum to zero."""
    postings = [
        (Account.MEMBER_AVAILABLE, movement.available, member.points_available),
        (Account.MEMBER_PENDING, movement.pending, member.points_pending),
    ]
    rows = [
        _posting(transaction_id, account, movement.member_id, points, balance)
        for account, points, balance in postings
        if points
    ] or [
        # Nothing moves (a refund whose points were already spent): a zero posting keeps the
        # transaction, and the qualifying points it takes back, on the member's ledger.
        _posting(
            transaction_id, Account.MEMBER_AVAILABLE, movement.member_id, 0, member.points_available
        )
    ]
    counter = -(movement.available + movement.pending)
    rows.append(_posting(transaction_id, movement.counter_account, None, counter, None))
    return rows


def _posting(
    transaction_id: int,
    account: Account,
    member_id: int | None,
    points: int,
    balance_after: int | None,
) -> dict[str, Any]:
    return {
        "transaction_id": transaction_id,
        "account": account,
        "member_id": member_id,
        "points": points,
        "balance_after": balance_after,
    }


async def _write(
    session: AsyncSession,
    *,
    member_id: int,
    transactions: list[dict[str, Any]],
    rows: list[dict[str, Any]],
    head: object,
    lots: list[dict[str, Any]] | None = None,
) -> list[int]:
    """Chain the member's new transactions (in id order; the member row is locked) and insert
    them with their postings and the ``lots`` they open; returns the postings' ids in the
    order given. On PostgreSQL in one statement (writable CTEs; the foreign keys are checked
    at its end), on SQLite one per table."""
    if head is _UNREAD:
        head = await session.scalar(_CHAIN_HEAD, {"member": member_id})
    postings: dict[object, list[tuple[object, object]]] = {
        transaction["id"]: [] for transaction in transactions
    }
    for row in rows:
        postings[row["transaction_id"]].append((row["account"], row["points"]))
    _chain(transactions, postings, head)
    lots = lots or []
    if session.get_bind().dialect.name == "postgresql":
        statement = _ledger_rows(len(transactions), len(rows), len(lots))
        values = {
            f"{table}{n}_{name}": value
            for table, given in (("t", transactions), ("e", rows), ("l", lots))
            for n, row in enumerate(given)
            for name, value in row.items()
        }
        # Ids come from a sequence in VALUES order: ascending is the order given.
        return sorted(row["id"] for row in await statement.rows(session, values))
    await session.execute(
        _INSERT_TRANSACTION, transactions[0] if len(transactions) == 1 else transactions
    )
    entry_ids = list((await session.scalars(_INSERT_ENTRIES, rows)).all())
    if lots:
        await session.execute(_INSERT_LOT, lots)
    return entry_ids


_TRANSACTION_COLUMNS = (*(name for name in FIELDS if name != "postings"), "hash")
"""What a transaction row holds: the hashed fields (postings are rows of their own), the hash."""
_ENTRY_COLUMNS_WRITTEN = ("transaction_id", "account", "member_id", "points", "balance_after")
_LOT_COLUMNS = (
    "member_id",
    "transaction_id",
    "purchase_id",
    "amount",
    "remaining",
    "state",
    "earned_at",
    "releases_at",
    "expires_at",
)


def _values(table: Table, prefix: str, columns: Sequence[str], count: int) -> tuple[str, list[Any]]:
    """``(cols) VALUES (...), ...`` for ``count`` rows and their typed parameters."""
    rows = ", ".join(
        "(" + ", ".join(f":{prefix}{n}_{name}" for name in columns) + ")" for n in range(count)
    )
    parameters = [
        bindparam(f"{prefix}{n}_{name}", type_=table.c[name].type)
        for n in range(count)
        for name in columns
    ]
    return f"({', '.join(columns)}) VALUES {rows}", parameters


@functools.cache
def _ledger_rows(transactions: int, entries: int, lots: int) -> HotStatement:
    """PostgreSQL: a movement's transactions, postings and lots in one statement, built once
    per shape (SQLAlchemy caches no multi-row VALUES; a text statement it does)."""
    written, parameters = _values(_TRANSACTIONS, "t", _TRANSACTION_COLUMNS, transactions)
    sql = f"WITH t AS (INSERT INTO ledger_transactions {written})"
    if lots:
        opened, more = _values(LOTS, "l", _LOT_COLUMNS, lots)
        sql += f", l AS (INSERT INTO point_lots {opened})"
        parameters += more
    posted, more = _values(LedgerEntry.__table__, "e", _ENTRY_COLUMNS_WRITTEN, entries)
    sql += f" INSERT INTO ledger_entries {posted} RETURNING id"
    statement = text(sql).bindparams(*parameters, *more)
    return HotStatement(lambda _: statement)


def _event_entry(entry: EntryView) -> dict[str, Any]:
    """The posting a ``points.*`` event carries."""
    return outbox.entry_data(
        entry_id=entry.id,
        kind=entry.kind,
        points=entry.points,
        balance_after=entry.balance_after,
        occurred_at=entry.occurred_at,
        reason=entry.reason,
    )


@dataclass(frozen=True)
class Earning:
    """Points a member earns at once: base points (EARN) and earning-rule bonuses (BONUS).

    The bonuses share one BONUS transaction with a member posting per rule, so a purchase
    that ten rules reward still costs one balance update and a handful of statements.
    """

    member_id: int
    occurred_at: datetime
    pending: bool
    base: int = 0
    bonuses: tuple[int, ...] = ()
    reason: str | None = None
    purchase_id: int | None = None
    qualifying_at: datetime | None = None
    """Set for purchases: the base points count for tiers from then."""
    releases_at: datetime | None = None
    expires_at: datetime | None = None

    @property
    def total(self) -> int:
        return self.base + sum(self.bonuses)

    @property
    def kinds(self) -> list[tuple[EntryKind, int]]:
        """The transactions to write: (EARN, base) and (BONUS, the bonuses' sum), when not 0."""
        parts = ((EntryKind.EARN, self.base), (EntryKind.BONUS, sum(self.bonuses)))
        return [(kind, points) for kind, points in parts if points]


@dataclass(frozen=True)
class Earned:
    member: Member
    bonus_entry_ids: tuple[int, ...]
    """The member posting of each bonus, in the order given."""


async def earn(session: AsyncSession, earning: Earning, *, member_locked: bool = False) -> Earned:
    """Credit base points and bonuses in one balance update; positive amounts only.
    ``member_locked``: the caller locked the member row earlier in this transaction (one
    statement fewer)."""
    total = earning.total
    if earning.base < 0 or min(earning.bonuses, default=1) <= 0 or total <= 0:
        raise ValueError(f"nothing to earn in {earning}")
    kinds = earning.kinds
    locked = await _lock_balances(
        session,
        ids=len(kinds),
        member_id=earning.member_id,
        available=0 if earning.pending else total,
        pending=total if earning.pending else 0,
        lifetime_earned=total,
        member_locked=member_locked,
    )
    if locked is None:
        raise DomainError(ErrorCode.NOT_FOUND, "No such member.", ["memberId"])
    member, new_ids, head = locked
    transaction_ids = sorted(new_ids)
    created_at = utcnow()
    rows, bonus_rows = _earning_postings(earning, member, transaction_ids)
    entry_ids = await _write(
        session,
        member_id=earning.member_id,
        transactions=_earning_transactions(earning, transaction_ids, created_at),
        rows=rows,
        head=head,
        lots=_earning_lots(earning, transaction_ids),
    )
    first = rows[0]
    await outbox.emit_points(
        session,
        kind=EntryKind.EARN,
        member=member,
        points=total,
        occurred_at=earning.occurred_at,
        entry=outbox.entry_data(
            entry_id=entry_ids[0],
            kind=kinds[0][0],
            points=first["points"],
            balance_after=first["balance_after"],
            occurred_at=earning.occurred_at,
            reason=earning.reason,
        ),
        purchase_id=earning.purchase_id,
    )
    return Earned(member=member, bonus_entry_ids=tuple(entry_ids[i] for i in bonus_rows))


def _earning_transactions(
    earning: Earning, transaction_ids: list[int], created_at: datetime
) -> list[dict[str, Any]]:
    """The EARN transaction (whose points qualify for tiers) and the BONUS one."""
    return [
        {
            "id": transaction_id,
            "kind": kind,
            "member_id": earning.member_id,
            "occurred_at": earning.occurred_at,
            "created_at": created_at,
            "reason": earning.reason,
            "purchase_id": earning.purchase_id,
            "redemption_id": None,
            "qualifying_points": points if kind == EntryKind.EARN else 0,
            "qualifying_at": earning.qualifying_at if kind == EntryKind.EARN else None,
        }
        for (kind, points), transaction_id in zip(earning.kinds, transaction_ids, strict=True)
    ]


def _earning_postings(
    earning: Earning, member: Member, transaction_ids: list[int]
) -> tuple[list[dict[str, Any]], list[int]]:
    """Each transaction's member postings (one per bonus) with running ``balance_after``s
    that end at the updated balance, then its issuance posting; and which rows are bonuses."""
    account = Account.MEMBER_PENDING if earning.pending else Account.MEMBER_AVAILABLE
    balance = (member.points_pending if earning.pending else member.points_available) - (
        earning.total
    )
    rows: list[dict[str, Any]] = []
    bonus_rows: list[int] = []
    for (kind, points), transaction_id in zip(earning.kinds, transaction_ids, strict=True):
        for part in (points,) if kind == EntryKind.EARN else earning.bonuses:
            balance += part
            if kind == EntryKind.BONUS:
                bonus_rows.append(len(rows))
            rows.append(_posting(transaction_id, account, earning.member_id, part, balance))
        rows.append(_posting(transaction_id, Account.PROGRAM_ISSUANCE, None, -points, None))
    return rows, bonus_rows


def _earning_lots(earning: Earning, transaction_ids: list[int]) -> list[dict[str, Any]]:
    """A lot per transaction, pending or available as the points are."""
    return [
        {
            "member_id": earning.member_id,
            "transaction_id": transaction_id,
            "purchase_id": earning.purchase_id,
            "amount": points,
            "remaining": points,
            "state": LotState.PENDING if earning.pending else LotState.AVAILABLE,
            "earned_at": earning.occurred_at,
            "releases_at": earning.releases_at if earning.pending else None,
            "expires_at": earning.expires_at,
        }
        for (_, points), transaction_id in zip(earning.kinds, transaction_ids, strict=True)
    ]


LOTS_PER_READ = 100
"""Lots read at a time when a debit takes the oldest first: a debit usually needs one or two."""
LOTS = PointLot.__table__
"""Core table: executemany updates by lot id, no ORM bulk-update bookkeeping."""


async def _move_lots(session: AsyncSession, movement: Movement, transaction_id: int) -> None:
    """Keep the member's lots equal to the balances: credits open lots, debits take the
    oldest first, a cancellation gives back exactly what it undoes."""
    if movement.restores is not None:
        restored = await _restore(session, undone=movement.restores, by=transaction_id)
        # What the undone debit took from no lot (it predates lots) comes back as a new lot.
        movement = replace(movement, available=movement.available - restored, restores=None)
    for bucket, points in (
        (LotState.AVAILABLE, movement.available),
        (LotState.PENDING, movement.pending),
    ):
        if points > 0:
            await session.execute(
                _INSERT_LOT,
                {
                    "member_id": movement.member_id,
                    "transaction_id": transaction_id,
                    "purchase_id": movement.purchase_id,
                    "amount": points,
                    "remaining": points,
                    "state": bucket,
                    "earned_at": movement.occurred_at,
                    "releases_at": movement.releases_at if bucket == LotState.PENDING else None,
                    "expires_at": movement.expires_at,
                },
            )
        elif points < 0:
            await _consume(
                session,
                member_id=movement.member_id,
                state=bucket,
                amount=-points,
                transaction_id=transaction_id,
                purchase_id=movement.purchase_id if bucket == LotState.PENDING else None,
            )


async def _consume(
    session: AsyncSession,
    *,
    member_id: int,
    state: LotState,
    amount: int,
    transaction_id: int,
    purchase_id: int | None,
) -> None:
    """Take ``amount`` from the member's lots, oldest first (the member row is locked)."""
    statement = (
        select(PointLot.id, PointLot.remaining)
        .where(
            PointLot.member_id == member_id,
            PointLot.state == state,
            PointLot.remaining > 0,
        )
        .order_by(PointLot.earned_at, PointLot.id)
    )
    if purchase_id is not None:
        statement = statement.where(PointLot.purchase_id == purchase_id)
    taken: list[dict[str, int]] = []
    left = amount
    offset = 0
    while left:
        lots = (await session.execute(statement.limit(LOTS_PER_READ).offset(offset))).all()
        for lot in lots:
            take = min(left, lot.remaining)
            taken.append({"lot_id": lot.id, "amount": take})
            left -= take
            if left == 0:
                break
        if len(lots) < LOTS_PER_READ:
            break
        offset += LOTS_PER_READ
    if left:
        raise RuntimeError(f"member {member_id}'s {state} lots hold less than the balance")
    await session.execute(
        update(LOTS)
        .where(LOTS.c.id == bindparam("lot"))
        .values(remaining=LOTS.c.remaining - bindparam("taken")),
        [{"lot": t["lot_id"], "taken": t["amount"]} for t in taken],
    )
    await session.execute(
        insert(LotConsumption), [{**t, "transaction_id": transaction_id} for t in taken]
    )


async def _restore(session: AsyncSession, *, undone: int, by: int) -> int:
    """Give back what transaction ``undone`` took from lots; returns the points given back."""
    consumed = (
        await session.execute(
            select(LotConsumption.lot_id, LotConsumption.amount).where(
                LotConsumption.transaction_id == undone
            )
        )
    ).all()
    if not consumed:
        return 0
    await session.execute(
        update(LOTS)
        .where(LOTS.c.id == bindparam("lot"))
        .values(remaining=LOTS.c.remaining + bindparam("taken")),
        [{"lot": c.lot_id, "taken": c.amount} for c in consumed],
    )
    await session.execute(
        insert(LotConsumption),
        [{"lot_id": c.lot_id, "amount": -c.amount, "transaction_id": by} for c in consumed],
    )
    return sum(c.amount for c in consumed)


_ENTRY_COLUMNS = (
    LedgerEntry.id,
    LedgerEntry.transaction_id,
    LedgerTransaction.member_id,
    LedgerTransaction.kind,
    LedgerEntry.account,
    LedgerEntry.points,
    LedgerEntry.balance_after,
    LedgerTransaction.occurred_at,
    LedgerTransaction.created_at,
    LedgerTransaction.reason,
    LedgerTransaction.purchase_id,
    LedgerTransaction.redemption_id,
)


async def get_entry(session: AsyncSession, *, entry_id: int) -> EntryView | None:
    row = (
        await session.execute(
            select(*_ENTRY_COLUMNS)
            .join(LedgerTransaction, LedgerTransaction.id == LedgerEntry.transaction_id)
            .where(LedgerEntry.id == entry_id)
        )
    ).one_or_none()
    return None if row is None else EntryView(**row._mapping)


async def member_entries(
    session: AsyncSession, *, member_ids: Sequence[int], page: PageRequest
) -> dict[int, Page[EntryView]]:
    """Each member's postings, newest first: one statement for any number of members."""
    chosen = select(LedgerEntry.id).where(LedgerEntry.member_id.in_(member_ids))
    if page.after is not None:
        chosen = chosen.where(LedgerEntry.id < page.after)
    if len(member_ids) == 1:
        chosen = chosen.order_by(LedgerEntry.id.desc()).limit(page.first + 1)
    else:
        numbered = chosen.add_columns(
            func.row_number()
            .over(partition_by=LedgerEntry.member_id, order_by=LedgerEntry.id.desc())
            .label("n")
        ).subquery()
        chosen = select(numbered.c.id).where(numbered.c.n <= page.first + 1)
    statement = (
        select(*_ENTRY_COLUMNS)
        .join(LedgerTransaction, LedgerTransaction.id == LedgerEntry.transaction_id)
        .where(LedgerEntry.id.in_(chosen))
        .order_by(LedgerEntry.id.desc())
    )
    entries = [EntryView(**row._mapping) for row in await session.execute(statement)]
    return pages_by_owner(entries, member_ids, page, owner=lambda entry: entry.member_id)
