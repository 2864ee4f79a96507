"""programStats: the program's KPIs over ``[from, to)``, by day, week or month.

Periods are cut at midnights of the program's time zone (weeks from Monday, months from the
1st) and computed in Python, a few instants; every measure is then one set-based statement
that maps each row to its period with a tree of CASEs over those instants and groups by it. The cost
is a constant number of statements whatever the number of periods or rows.
"""

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from enum import StrEnum
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import ColumnElement, Select, and_, case, func, literal_column, select
from sqlalchemy.ext.asyncio import AsyncSession

from loyalty.errors import invalid
from loyalty.feedback.models import Feedback, FeedbackKind
from loyalty.ledger.models import (
    REDEEMING_KINDS,
    Account,
    EntryKind,
    LedgerEntry,
    LedgerTransaction,
)
from loyalty.members.models import Channel, Member, MemberStatus
from loyalty.program.service import get_program
from loyalty.purchases.models import Purchase, PurchaseRefund
from loyalty.referrals.models import Referral
from loyalty.tiers.models import Tier
from loyalty.validation import instant, optional_text

MAX_PERIODS = 1000
MONEY_PLACES = Decimal("0.0001")
ISSUING_KINDS = (EntryKind.EARN, EntryKind.BONUS)
MEMBER_ACCOUNTS = (Account.MEMBER_AVAILABLE, Account.MEMBER_PENDING)


class Grouping(StrEnum):
    DAY = "DAY"
    WEEK = "WEEK"
    MONTH = "MONTH"


@dataclass(frozen=True)
class StatsQuery:
    start: datetime
    end: datetime
    group_by: Grouping | None = None
    channel: Channel | None = None
    store_id: str | None = None


@dataclass(frozen=True)
class PeriodStats:
    start: datetime
    end: datetime
    new_members: int
    active_members: int
    purchases: int
    revenue: Decimal
    refunded: Decimal
    average_order_value: Decimal | None
    repeat_purchase_rate: float | None
    purchase_frequency: float | None
    points_issued: int
    points_redeemed: int
    points_expired: int
    redemption_rate: float | None
    liability_at_end: int
    referral_rate: float | None
    csat_average: float | None
    csat_satisfied: float | None
    nps: float | None
    feedback_count: int
    sales_growth: float | None = None


@dataclass(frozen=True)
class ProgramStats:
    currency: str
    time_zone: str
    totals: PeriodStats
    periods: list[PeriodStats]


def boundaries(
    start: datetime, end: datetime, group_by: Grouping | None, time_zone: str
) -> list[datetime]:
    """``start``, each local midnight that opens a day, week or month inside, and ``end``:
    consecutive pairs are the periods, half-open. More than MAX_PERIODS periods is INVALID."""
    start, end = start.astimezone(UTC), end.astimezone(UTC)
    if end <= start:
        raise invalid("to must be after from.", "to")
    edges = [start]
    if group_by is not None:
        zone = ZoneInfo(time_zone)
        day = start.astimezone(zone).date()
        if group_by == Grouping.WEEK:
            day -= timedelta(days=day.weekday())
        elif group_by == Grouping.MONTH:
            day = day.replace(day=1)
        while True:
            day = _next(day, group_by)
            edge = datetime(day.year, day.month, day.day, tzinfo=zone).astimezone(UTC)
            if edge >= end:
                break
            if edge > edges[-1]:
                edges.append(edge)
            if len(edges) > MAX_PERIODS:
                raise invalid(
                    f"More than {MAX_PERIODS} periods: group by a longer period or "
                    "ask for a shorter range.",
                    "groupBy",
                )
    edges.append(end)
    return edges


def _next(day: date, group_by: Grouping) -> date:
    if group_by == Grouping.DAY:
        return day + timedelta(days=1)
    if group_by == Grouping.WEEK:
        return day + timedelta(days=7)
    return date(day.year + day.month // 12, day.month % 12 + 1, 1)


def _bucket(
    column: Any, edges: Sequence[datetime], *, inclusive: bool = False, offset: int = 0
) -> ColumnElement[int]:
    """How many of the sorted ``edges`` lie before ``column`` (at or before it; strictly
    before when ``inclusive``): the index of its period. A balanced tree of CASEs, so the
    database makes about log2(periods) comparisons per row, not one per period."""
    if not edges:
        return literal_column(str(offset))
    middle = len(edges) // 2
    edge = edges[middle]
    return case(
        (
            column <= edge if inclusive else column < edge,
            _bucket(column, edges[:middle], inclusive=inclusive, offset=offset),
        ),
        else_=_bucket(column, edges[middle + 1 :], inclusive=inclusive, offset=offset + middle + 1),
    )


def _within(column: Any, start: datetime, end: datetime) -> ColumnElement[bool]:
    return and_(column >= start, column < end)


async def _grouped(
    session: AsyncSession, inner: Select[*tuple[Any, ...]], *measures: Callable[[Any], Any]
) -> dict[int, Any]:
    """Groups ``inner`` (whose first column is ``bucket``) by bucket. The CASE stays inside the
    subquery: PostgreSQL would not match it in GROUP BY with its parameters renumbered."""
    rows = inner.subquery()
    statement = select(rows.c.bucket, *(m(rows) for m in measures)).group_by(rows.c.bucket)
    return {row[0]: row[1:] for row in await session.execute(statement)}


def _purchase_filters(query: StatsQuery) -> list[ColumnElement[bool]]:
    filters: list[ColumnElement[bool]] = []
    if query.channel is not None:
        filters.append(Purchase.channel == query.channel)
    if query.store_id is not None:
        filters.append(Purchase.store_id == query.store_id)
    return filters


async def _purchase_figures(
    session: AsyncSession, query: StatsQuery, bucket: Any, start: datetime, end: datetime
) -> dict[int, Any]:
    """Per period: active members, purchases, revenue and members with two or more."""
    rows = (
        select(bucket.label("bucket"), Purchase.member_id, Purchase.total_amount)
        .where(_within(Purchase.occurred_at, start, end), *_purchase_filters(query))
        .subquery()
    )
    per_member = select(
        rows.c.bucket,
        func.count().label("n"),
        func.sum(rows.c.total_amount).label("revenue"),
    ).group_by(rows.c.bucket, rows.c.member_id)
    return await _grouped(
        session,
        per_member,
        lambda r: func.count(),
        lambda r: func.sum(r.c.n),
        lambda r: func.sum(r.c.revenue),
        lambda r: func.sum(case((r.c.n >= 2, 1), else_=0)),
    )


async def program_stats(session: AsyncSession, query: StatsQuery) -> ProgramStats:
    """The figures of every period and of the whole range (docs/analytics.md defines each).
    Additive figures are summed from the periods; active and repeating members, which are
    not, are counted over the whole range by a statement of their own."""
    start = instant(query.start, "from").astimezone(UTC)
    end = instant(query.end, "to").astimezone(UTC)
    store_id = None if query.store_id is None else optional_text(query.store_id, 64, "storeId")
    query = StatsQuery(start, end, query.group_by, query.channel, store_id)
    program = await get_program(session)
    edges = boundaries(start, end, query.group_by, program.time_zone)
    inner = edges[1:-1]
    count = len(edges) - 1

    members = await _grouped(
        session,
        select(_bucket(Member.enrolled_at, inner).label("bucket"), Referral.id.label("referral"))
        .select_from(Member)
        .outerjoin(Referral, Referral.referee_id == Member.id)
        .where(_within(Member.enrolled_at, start, end)),
        lambda r: func.count(),
        lambda r: func.count(r.c.referral),
    )
    purchases = await _purchase_figures(
        session, query, _bucket(Purchase.occurred_at, inner), start, end
    )
    overall = (await _purchase_figures(session, query, literal_column("0"), start, end)).get(0)
    previous_revenue = await session.scalar(
        select(func.coalesce(func.sum(Purchase.total_amount), 0)).where(
            _within(Purchase.occurred_at, start - (end - start), start),
            *_purchase_filters(query),
        )
    )
    refunds = await _grouped(
        session,
        select(_bucket(PurchaseRefund.created_at, inner).label("bucket"), PurchaseRefund.amount)
        .join(Purchase, Purchase.id == PurchaseRefund.purchase_id)
        .where(_within(PurchaseRefund.created_at, start, end), *_purchase_filters(query)),
        lambda r: func.sum(r.c.amount),
    )
    kind, points = LedgerTransaction.kind, LedgerEntry.points
    member_postings = (
        select()
        .select_from(LedgerEntry)
        .join(LedgerTransaction, LedgerTransaction.id == LedgerEntry.transaction_id)
        .where(LedgerEntry.member_id.isnot(None), LedgerEntry.account.in_(MEMBER_ACCOUNTS))
    )
    movements = await _grouped(
        session,
        member_postings.add_columns(
            _bucket(LedgerTransaction.occurred_at, inner).label("bucket"),
            case(
                (kind.in_(ISSUING_KINDS), points),
                (and_(kind == EntryKind.ADJUST, points > 0), points),
                else_=0,
            ).label("issued"),
            case((kind.in_(REDEEMING_KINDS), -points), else_=0).label("redeemed"),
            case((kind == EntryKind.EXPIRE, -points), else_=0).label("expired"),
        ).where(_within(LedgerTransaction.occurred_at, start, end)),
        lambda r: func.sum(r.c.issued),
        lambda r: func.sum(r.c.redeemed),
        lambda r: func.sum(r.c.expired),
    )
    # Booked up to each period's end, inclusive, as pointsLiability(asOf: end) counts it.
    booked = _bucket(LedgerTransaction.created_at, edges[1:-1], inclusive=True)
    liability = await _grouped(
        session,
        member_postings.add_columns(booked.label("bucket"), points.label("points")).where(
            LedgerTransaction.created_at <= end
        ),
        lambda r: func.sum(r.c.points),
    )
    is_csat, is_nps, score = (
        Feedback.kind == FeedbackKind.CSAT,
        Feedback.kind == FeedbackKind.NPS,
        Feedback.score,
    )
    feedback = await _grouped(
        session,
        select(
            _bucket(Feedback.created_at, inner).label("bucket"),
            case((is_csat, 1), else_=0).label("csat"),
            case((is_csat, score), else_=0).label("csat_score"),
            case((and_(is_csat, score >= 4), 1), else_=0).label("satisfied"),
            case((is_nps, 1), else_=0).label("nps"),
            case((and_(is_nps, score >= 9), 1), else_=0).label("promoters"),
            case((and_(is_nps, score <= 6), 1), else_=0).label("detractors"),
        ).where(_within(Feedback.created_at, start, end)),
        lambda r: func.count(),
        *(lambda r, c=c: func.sum(r.c[c]) for c in ("csat", "csat_score", "satisfied")),
        *(lambda r, c=c: func.sum(r.c[c]) for c in ("nps", "promoters", "detractors")),
    )

    periods: list[PeriodStats] = []
    outstanding = 0
    for index in range(count):
        outstanding += int(liability.get(index, (0,))[0] or 0)
        periods.append(
            _period(
                edges[index],
                edges[index + 1],
                members=members.get(index),
                purchases=purchases.get(index),
                refunded=refunds.get(index, (0,))[0],
                movements=movements.get(index),
                liability=outstanding,
                feedback=feedback.get(index),
            )
        )
    totals = _period(
        start,
        end,
        members=_column_sums(members.values(), 2),
        purchases=overall,
        refunded=sum((Decimal(row[0] or 0) for row in refunds.values()), Decimal(0)),
        movements=_column_sums(movements.values(), 3),
        liability=outstanding,
        feedback=_column_sums(feedback.values(), 7),
    )
    previous = _money(previous_revenue)
    growth = None if previous == 0 else float(totals.revenue / previous - 1)
    return ProgramStats(
        currency=program.currency,
        time_zone=program.time_zone,
        totals=PeriodStats(**{**totals.__dict__, "sales_growth": growth}),
        periods=periods,
    )


def _column_sums(rows: Any, width: int) -> tuple[Any, ...]:
    sums = [0] * width
    for row in rows:
        for index, value in enumerate(row):
            sums[index] += value or 0
    return tuple(sums)


def _money(value: Any) -> Decimal:
    return Decimal(str(value or 0)).quantize(MONEY_PLACES)


def _ratio(numerator: float, denominator: float) -> float | None:
    return None if not denominator else numerator / denominator


def _period(
    start: datetime,
    end: datetime,
    *,
    members: Sequence[Any] | None,
    purchases: Sequence[Any] | None,
    refunded: Any,
    movements: Sequence[Any] | None,
    liability: int,
    feedback: Sequence[Any] | None,
) -> PeriodStats:
    new_members, referred = (int(v or 0) for v in members or (0, 0))
    active, bought, revenue_sum, repeaters = purchases or (0, 0, 0, 0)
    active, bought, repeaters = int(active or 0), int(bought or 0), int(repeaters or 0)
    revenue = _money(revenue_sum)
    issued, redeemed, expired = (int(v or 0) for v in movements or (0, 0, 0))
    answers, csat, csat_sum, satisfied, nps, promoters, detractors = (
        int(v or 0) for v in feedback or (0,) * 7
    )
    net_promoters = _ratio(100 * (promoters - detractors), nps)
    return PeriodStats(
        start=start,
        end=end,
        new_members=new_members,
        active_members=active,
        purchases=bought,
        revenue=revenue,
        refunded=_money(refunded),
        average_order_value=None if not bought else (revenue / bought).quantize(MONEY_PLACES),
        repeat_purchase_rate=_ratio(repeaters, active),
        purchase_frequency=_ratio(bought, active),
        points_issued=issued,
        points_redeemed=redeemed,
        points_expired=expired,
        redemption_rate=_ratio(redeemed, issued),
        liability_at_end=liability,
        referral_rate=_ratio(referred, new_members),
        csat_average=_ratio(csat_sum, csat),
        csat_satisfied=_ratio(satisfied, csat),
        nps=net_promoters,
        feedback_count=answers,
    )


@dataclass(frozen=True)
class TierCount:
    tier: str | None
    """The tier's name; None for members below the first tier."""
    members: int


async def tier_distribution(session: AsyncSession) -> list[TierCount]:
    """Members holding each tier now, lowest tier first; closed and erased members are not
    counted (their tier no longer means anything)."""
    rows = await session.execute(
        select(Tier.name, func.count(Member.id))
        .select_from(Member)
        .outerjoin(Tier, Tier.id == Member.tier_id)
        .where(Member.status.in_((MemberStatus.ACTIVE, MemberStatus.SUSPENDED)))
        .group_by(Tier.name, Tier.rank)
        .order_by(Tier.rank.nulls_first())
    )
    return [TierCount(tier=name, members=count) for name, count in rows]
