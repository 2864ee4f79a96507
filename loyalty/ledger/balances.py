"""Read models over lots and the ledger: what is pending, what expires, balances at a date.

Point-in-time figures replay the ledger: every posting booked (``created_at``) up to the
instant counts, so a finance team gets the same answer for a past date today as it would
have got on that date.
"""

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, case, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql.elements import ColumnElement
from sqlalchemy.sql.selectable import Subquery

from loyalty.ledger.models import (
    EARNING_KINDS,
    REDEEMING_KINDS,
    Account,
    LedgerEntry,
    LedgerTransaction,
    LotState,
    PointLot,
)
from loyalty.members.models import Member
from loyalty.tiers.models import Tier, TierChange


@dataclass(frozen=True)
class Scheduled:
    amount: int
    at: datetime


@dataclass(frozen=True)
class Balances:
    available: int
    pending: int
    lifetime_earned: int
    redeemed: int
    expired: int


@dataclass(frozen=True)
class LiabilityLine:
    tier: Tier | None
    members: int
    available: int
    pending: int

    @property
    def total(self) -> int:
        """Outstanding points: available + pending."""
        return self.available + self.pending


@dataclass(frozen=True)
class Liability:
    """What the program owes its members at an instant: the lines by tier, and their sums for
    finance, computed here so every reader reports the same total."""

    as_of: datetime
    by_tier: list[LiabilityLine]

    @property
    def members(self) -> int:
        return sum(line.members for line in self.by_tier)

    @property
    def available(self) -> int:
        return sum(line.available for line in self.by_tier)

    @property
    def pending(self) -> int:
        return sum(line.pending for line in self.by_tier)

    @property
    def total(self) -> int:
        return sum(line.total for line in self.by_tier)


async def expiring_soon(
    session: AsyncSession, *, member_ids: Sequence[int], days: int, now: datetime
) -> dict[int, int]:
    """Each member's available points that expire within ``days``."""
    rows = await session.execute(
        select(PointLot.member_id, func.sum(PointLot.remaining))
        .where(
            PointLot.member_id.in_(member_ids),
            PointLot.state == LotState.AVAILABLE,
            PointLot.remaining > 0,
            PointLot.expires_at <= now + timedelta(days=days),
        )
        .group_by(PointLot.member_id)
    )
    found = {member_id: int(total or 0) for member_id, total in rows}
    return {member_id: found.get(member_id, 0) for member_id in member_ids}


async def expiring_points(
    session: AsyncSession, *, member_ids: Sequence[int], first: int
) -> dict[int, list[Scheduled]]:
    """What expires when for each member, soonest first (lots expiring at one instant are
    summed), at most ``first`` instants each."""
    rows = await session.execute(
        select(PointLot.member_id, PointLot.expires_at, func.sum(PointLot.remaining))
        .where(
            PointLot.member_id.in_(member_ids),
            PointLot.state == LotState.AVAILABLE,
            PointLot.remaining > 0,
            PointLot.expires_at.isnot(None),
        )
        .group_by(PointLot.member_id, PointLot.expires_at)
        .order_by(PointLot.member_id, PointLot.expires_at)
    )
    return _scheduled_by_member(rows, member_ids, first=first)


async def pending_releases(
    session: AsyncSession, *, member_ids: Sequence[int]
) -> dict[int, list[Scheduled]]:
    """Each member's pending points by the instant they become available, soonest first."""
    rows = await session.execute(
        select(PointLot.member_id, PointLot.releases_at, func.sum(PointLot.remaining))
        .where(
            PointLot.member_id.in_(member_ids),
            PointLot.state == LotState.PENDING,
            PointLot.remaining > 0,
        )
        .group_by(PointLot.member_id, PointLot.releases_at)
        .order_by(PointLot.member_id, PointLot.releases_at)
    )
    return _scheduled_by_member(rows, member_ids)


def _scheduled_by_member(
    rows: Iterable[Any], member_ids: Sequence[int], first: int | None = None
) -> dict[int, list[Scheduled]]:
    scheduled: dict[int, list[Scheduled]] = {member_id: [] for member_id in member_ids}
    for member_id, at, amount in rows:
        if first is None or len(scheduled[member_id]) < first:
            scheduled[member_id].append(Scheduled(amount=int(amount), at=at))
    return scheduled


def _sums() -> list[ColumnElement[Any]]:
    kind = LedgerTransaction.kind
    points = LedgerEntry.points
    return [
        func.coalesce(
            func.sum(case((LedgerEntry.account == Account.MEMBER_AVAILABLE, points), else_=0)), 0
        ),
        func.coalesce(
            func.sum(case((LedgerEntry.account == Account.MEMBER_PENDING, points), else_=0)), 0
        ),
        func.coalesce(
            func.sum(
                case(
                    (kind.in_(EARNING_KINDS), points),
                    (and_(kind == "ADJUST", points > 0), points),
                    else_=0,
                )
            ),
            0,
        ),
        func.coalesce(func.sum(case((kind.in_(REDEEMING_KINDS), -points), else_=0)), 0),
        func.coalesce(func.sum(case((kind == "EXPIRE", -points), else_=0)), 0),
    ]


async def points_as_of(session: AsyncSession, *, member_id: int, at: datetime) -> Balances:
    row = (
        await session.execute(
            select(*_sums())
            .select_from(LedgerEntry)
            .join(LedgerTransaction, LedgerTransaction.id == LedgerEntry.transaction_id)
            .where(LedgerEntry.member_id == member_id, LedgerTransaction.created_at <= at)
        )
    ).one()
    return Balances(*(int(value) for value in row))


async def liability(session: AsyncSession, *, as_of: datetime) -> Liability:
    """Outstanding points (available + pending) of all members at ``as_of``, by the tier each
    member held then (from the tier history; the current tier when it never changed)."""
    booked = _booked(as_of)
    tier_then = _tier_held(as_of).label("tier_id")
    per_member = (
        select(tier_then, booked.c.available, booked.c.pending)
        .select_from(Member)
        .join(booked, booked.c.member_id == Member.id)
        .where(or_(booked.c.available != 0, booked.c.pending != 0))
        .subquery()
    )
    rows = (
        await session.execute(
            select(
                per_member.c.tier_id,
                func.count(),
                func.sum(per_member.c.available),
                func.sum(per_member.c.pending),
            ).group_by(per_member.c.tier_id)
        )
    ).all()
    tiers = {t.id: t for t in await session.scalars(select(Tier))}
    lines = [
        LiabilityLine(
            tier=tiers.get(tier_id) if tier_id is not None else None,
            members=count,
            available=int(available),
            pending=int(pending),
        )
        for tier_id, count, available, pending in rows
    ]
    lines.sort(key=lambda line: -1 if line.tier is None else line.tier.rank)
    return Liability(as_of=as_of, by_tier=lines)


def _booked(as_of: datetime) -> Subquery:
    """Each member's available and pending points booked up to ``as_of``."""
    return (
        select(
            LedgerEntry.member_id,
            func.sum(
                case((LedgerEntry.account == Account.MEMBER_AVAILABLE, LedgerEntry.points), else_=0)
            ).label("available"),
            func.sum(
                case((LedgerEntry.account == Account.MEMBER_PENDING, LedgerEntry.points), else_=0)
            ).label("pending"),
        )
        .join(LedgerTransaction, LedgerTransaction.id == LedgerEntry.transaction_id)
        .where(LedgerEntry.member_id.isnot(None), LedgerTransaction.created_at <= as_of)
        .group_by(LedgerEntry.member_id)
        .subquery()
    )


def _tier_held(as_of: datetime) -> ColumnElement[int | None]:
    """The tier the joined member held at ``as_of``: the last change's before it, else the
    first change's after it came from, else (never changed) the current tier."""
    last_before = (
        select(TierChange.to_tier_id)
        .where(TierChange.member_id == Member.id, TierChange.at <= as_of)
        .order_by(TierChange.at.desc(), TierChange.id.desc())
        .limit(1)
        .scalar_subquery()
    )
    first_after = (
        select(TierChange.from_tier_id)
        .where(TierChange.member_id == Member.id, TierChange.at > as_of)
        .order_by(TierChange.at, TierChange.id)
        .limit(1)
        .scalar_subquery()
    )
    changed_before = (
        select(func.count())
        .where(TierChange.member_id == Member.id, TierChange.at <= as_of)
        .scalar_subquery()
    )
    changed_after = (
        select(func.count())
        .where(TierChange.member_id == Member.id, TierChange.at > as_of)
        .scalar_subquery()
    )
    return case(
        (changed_before > 0, last_before),
        (changed_after > 0, first_after),
        else_=Member.tier_id,
    )
