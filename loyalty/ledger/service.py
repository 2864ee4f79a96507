"""Posting points movements: the only code that changes a member's balances.

A movement is written as one balanced transaction: the member's postings, one posting to the
program's counter account that makes the sum zero, and the stored balances updated in the
same database transaction. The balance update is a conditional ``UPDATE ... RETURNING`` that
refuses to take available or pending below zero, so two concurrent debits can never spend the
same points; a ``CHECK`` constraint on the table backs it up.
"""

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from loyalty.db import utcnow
from loyalty.errors import DomainError, ErrorCode
from loyalty.ledger.models import Account, EntryKind, LedgerEntry, LedgerTransaction
from loyalty.members.models import Member
from loyalty.pagination import Page, PageRequest, make_page


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


@dataclass(frozen=True)
class EntryView:
    """A member posting as clients see it: the posting joined with its transaction."""

    id: int
    transaction_id: int
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


async def post(session: AsyncSession, movement: Movement) -> Posted:
    """Write a movement; ``INSUFFICIENT_POINTS`` (and nothing written) if a balance would go < 0."""
    member = await session.scalar(
        update(Member)
        .where(
            Member.id == movement.member_id,
            Member.points_available + movement.available >= 0,
            Member.points_pending + movement.pending >= 0,
        )
        .values(
            points_available=Member.points_available + movement.available,
            points_pending=Member.points_pending + movement.pending,
            lifetime_earned=Member.lifetime_earned + movement.lifetime_earned,
            points_redeemed=Member.points_redeemed + movement.redeemed,
            points_expired=Member.points_expired + movement.expired,
        )
        .returning(Member)
        .execution_options(populate_existing=True)
    )
    if member is None:
        raise DomainError(
            ErrorCode.INSUFFICIENT_POINTS,
            "The member does not have enough points for this.",
            ["points"],
        )
    created_at = utcnow()
    transaction_id = await session.scalar(
        insert(LedgerTransaction)
        .values(
            kind=movement.kind,
            member_id=movement.member_id,
            occurred_at=movement.occurred_at,
            created_at=created_at,
            reason=movement.reason,
            purchase_id=movement.purchase_id,
            redemption_id=movement.redemption_id,
            qualifying_points=movement.qualifying_points,
            qualifying_at=movement.qualifying_at,
        )
        .returning(LedgerTransaction.id)
    )
    postings = [
        (Account.MEMBER_AVAILABLE, movement.available, member.points_available),
        (Account.MEMBER_PENDING, movement.pending, member.points_pending),
    ]
    rows = [
        {
            "transaction_id": transaction_id,
            "account": account,
            "member_id": movement.member_id,
            "points": points,
            "balance_after": balance,
        }
        for account, points, balance in postings
        if points
    ]
    rows.append(
        {
            "transaction_id": transaction_id,
            "account": movement.counter_account,
            "member_id": None,
            "points": -(movement.available + movement.pending),
            "balance_after": None,
        }
    )
    entry_ids = (
        await session.scalars(
            insert(LedgerEntry).returning(LedgerEntry.id, sort_by_parameter_order=True), rows
        )
    ).all()
    first = rows[0]
    entry = EntryView(
        id=entry_ids[0],
        transaction_id=transaction_id,
        kind=movement.kind,
        account=first["account"],
        points=first["points"],
        balance_after=first["balance_after"],
        occurred_at=movement.occurred_at,
        created_at=created_at,
        reason=movement.reason,
        purchase_id=movement.purchase_id,
        redemption_id=movement.redemption_id,
    )
    return Posted(member=member, entry=entry)


_ENTRY_COLUMNS = (
    LedgerEntry.id,
    LedgerEntry.transaction_id,
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
    session: AsyncSession, *, member_id: int, page: PageRequest
) -> Page[EntryView]:
    """The member's postings, newest first."""
    statement = (
        select(*_ENTRY_COLUMNS)
        .join(LedgerTransaction, LedgerTransaction.id == LedgerEntry.transaction_id)
        .where(LedgerEntry.member_id == member_id)
        .order_by(LedgerEntry.id.desc())
        .limit(page.first + 1)
    )
    if page.after is not None:
        statement = statement.where(LedgerEntry.id < page.after)
    entries = [EntryView(**row._mapping) for row in await session.execute(statement)]
    return make_page(entries, [e.id for e in entries], page)
