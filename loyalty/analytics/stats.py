"""programStats: the program's KPIs over ``[from, to)``, by day, week or month.

Periods are cut at midnights of the program's time zone (weeks from Monday, months from the
1st) and computed in Python, a few instants; every measure is then a set-based statement that
maps each row to its period with a tree of CASEs over those instants and groups by it. When the
stats-rollup job has sealed the history (``rollup.py``), whole days and months read its summary
rows plus, live, what was booked since its cutoff. The number of statements does not depend on
the number of periods or rows."""

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from enum import StrEnum
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import (
    CTE,
    ColumnElement,
    Select,
    and_,
    case,
    func,
    literal,
    literal_column,
    select,
    union_all,
)
from sqlalchemy.ext.asyncio import AsyncSession

from loyalty.analytics import rollup as rollups
from loyalty.analytics.models import StatsDay, StatsMemberMonth, StatsMonth, StatsRollup
from loyalty.analytics.sql import bucket, member_postings, midnight, month_key, points_measures
from loyalty.db import UTCDateTime
from loyalty.errors import invalid
from loyalty.feedback.models import Feedback, FeedbackKind
from loyalty.ledger.models import LedgerEntry, LedgerTransaction
from loyalty.members.models import Channel, Member, MemberStatus
from loyalty.program.service import get_program
from loyalty.purchases.models import Purchase, PurchaseRefund
from loyalty.referrals.models import Referral
from loyalty.tiers.models import Tier
from loyalty.validation import instant, optional_text

MAX_PERIODS = 1000
MONEY_PLACES = Decimal("0.0001")


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


PREVIOUS, WHOLE = -1, -2
"""Keys of the purchase figures beside the periods: the preceding range (salesGrowth, revenue
only) and the whole range."""


async def _purchase_figures(
    session: AsyncSession, query: StatsQuery, period: Any, start: datetime, end: datetime
) -> dict[int, Any]:
    """Per period: active members, purchases, revenue and members with two or more."""
    rows = (
        select(period.label("bucket"), Purchase.member_id, Purchase.total_amount)
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


async def _live_purchases(
    session: AsyncSession, query: StatsQuery, edges: Sequence[datetime]
) -> dict[int, Any]:
    """The purchase figures from the purchases themselves: per period, for the whole range
    (WHOLE) and the preceding range's revenue (PREVIOUS). Three scans: at a million members
    one scan grouped once by (period, member) and rolled up both ways measured twice as slow
    (the intermediate set spills to disk)."""
    start, end = edges[0], edges[-1]
    figures = await _purchase_figures(
        session, query, bucket(Purchase.occurred_at, edges[1:-1]), start, end
    )
    whole = await _purchase_figures(session, query, literal_column("0"), start, end)
    if 0 in whole:
        figures[WHOLE] = whole[0]
    previous = await session.scalar(
        select(func.sum(Purchase.total_amount)).where(
            _within(Purchase.occurred_at, start - (end - start), start),
            *_purchase_filters(query),
        )
    )
    figures[PREVIOUS] = (0, 0, previous, 0)
    return figures


def _day_keys(edges: Sequence[datetime], zone: ZoneInfo) -> list[int] | None:
    """The local day ordinal of each edge, or None when one is not a local midnight (the
    rollup holds whole days only)."""
    keys = []
    for edge in edges:
        day = edge.astimezone(zone).date()
        if midnight(day, zone) != edge:
            return None
        keys.append(day.toordinal())
    return keys


def _month_keys(edges: Sequence[datetime], zone: ZoneInfo) -> list[int] | None:
    """The local month key of each edge, or None unless every edge opens a local month."""
    keys = []
    for edge in edges:
        day = edge.astimezone(zone).date()
        if day.day != 1 or midnight(day, zone) != edge:
            return None
        keys.append(month_key(day))
    return keys


def _added(*parts: dict[int, Any], signs: Sequence[int] | None = None) -> dict[int, Any]:
    """Bucket by bucket, the column-wise sum of ``parts`` (each times its sign)."""
    total: dict[int, list[Any]] = {}
    for index, part in enumerate(parts):
        sign = 1 if signs is None else signs[index]
        for key, row in part.items():
            sums = total.setdefault(key, [0] * len(row))
            for column, value in enumerate(row):
                sums[column] += sign * (value or 0)
    return {key: tuple(row) for key, row in total.items()}


async def _movements(
    session: AsyncSession,
    edges: Sequence[datetime],
    rollup: StatsRollup | None,
    days: Sequence[int] | None,
) -> dict[int, Any]:
    """Points issued, redeemed and expired per period: sealed days from the rollup plus the
    postings booked since its cutoff, or every posting of the range without one."""
    issued, redeemed, expired = points_measures()
    occurred = LedgerTransaction.occurred_at
    live = member_postings().add_columns(
        bucket(occurred, edges[1:-1]).label("bucket"),
        issued.label("issued"),
        redeemed.label("redeemed"),
        expired.label("expired"),
    )
    live = live.where(_within(occurred, edges[0], edges[-1]))
    sums = [lambda r, c=c: func.sum(r.c[c]) for c in ("issued", "redeemed", "expired")]
    if rollup is None or days is None:
        return await _grouped(session, live, *sums)
    tail = live.where(LedgerTransaction.created_at >= literal(rollup.cutoff, UTCDateTime()))
    sealed = select(
        bucket(StatsDay.day, days[1:-1]).label("bucket"),
        StatsDay.issued,
        StatsDay.redeemed,
        StatsDay.expired,
    ).where(StatsDay.day >= days[0], StatsDay.day < days[-1])
    return _added(await _grouped(session, sealed, *sums), await _grouped(session, tail, *sums))


async def _liability(
    session: AsyncSession,
    edges: Sequence[datetime],
    rollup: StatsRollup | None,
    days: Sequence[int] | None,
) -> dict[int, Any]:
    """Member postings by the period whose end first counts them (booked up to each end,
    inclusive, as pointsLiability(asOf: end) counts them)."""
    booked = LedgerTransaction.created_at
    live = member_postings().add_columns(
        bucket(booked, edges[1:-1], inclusive=True).label("bucket"),
        LedgerEntry.points.label("points"),
    )
    live = live.where(booked <= edges[-1])
    if rollup is None or days is None:
        return await _grouped(session, live, lambda r: func.sum(r.c.points))
    tail = live.where(booked >= literal(rollup.cutoff, UTCDateTime()))
    # A day's ``booked`` is (its midnight, the next midnight]: counted at edge E when < E.
    sealed = select(
        bucket(StatsDay.day, [day - 1 for day in days[1:-1]], inclusive=True).label("bucket"),
        StatsDay.booked.label("points"),
    ).where(StatsDay.day <= days[-1] - 1)
    return _added(
        await _grouped(session, sealed, lambda r: func.sum(r.c.points)),
        await _grouped(session, tail, lambda r: func.sum(r.c.points)),
    )


async def _previous_revenue(
    session: AsyncSession, rollup: StatsRollup, edges: Sequence[datetime], zone: ZoneInfo
) -> Any:
    """Revenue of ``[from - (to - from), from)``: sealed whole days plus the purchases booked
    since the cutoff when it starts at a local midnight, else every purchase of it."""
    start, end = edges[0], edges[-1]
    previous = start - (end - start)
    within = _within(Purchase.occurred_at, previous, start)
    days = _day_keys([previous, start], zone)
    if days is None:
        return await session.scalar(select(func.sum(Purchase.total_amount)).where(within))
    sealed = await session.scalar(
        select(func.sum(StatsDay.revenue)).where(StatsDay.day >= days[0], StatsDay.day < days[1])
    )
    tail = await session.scalar(
        select(func.sum(Purchase.total_amount)).where(
            within, Purchase.created_at >= literal(rollup.cutoff, UTCDateTime())
        )
    )
    return (sealed or 0) + (tail or 0)


async def _rolled_up_purchases(
    session: AsyncSession, rollup: StatsRollup, edges: Sequence[datetime], months: Sequence[int]
) -> dict[int, Any]:
    """_purchase_figures for whole months without a filter: sealed months from the rollup,
    corrected for the members with purchases booked since its cutoff (their sealed months are
    taken out and put back with those purchases added), so distinct counts stay exact."""
    first, last = months[0], months[-1]
    in_range = and_(StatsMonth.month >= first, StatsMonth.month < last)
    per_month = await _grouped(
        session,
        select(
            bucket(StatsMonth.month, months[1:-1]).label("bucket"),
            StatsMonth.members,
            StatsMonth.singles,
            StatsMonth.purchases,
            StatsMonth.revenue,
        ).where(in_range),
        *(lambda r, c=c: func.sum(r.c[c]) for c in ("members", "singles", "purchases", "revenue")),
    )
    fresh = StatsMonth.prev_month < first
    whole = (
        await session.execute(
            select(
                func.sum(case((fresh, StatsMonth.members), else_=0)),
                func.sum(
                    case((and_(fresh, StatsMonth.next_month >= last), StatsMonth.singles), else_=0)
                ),
                func.sum(StatsMonth.purchases),
                func.sum(StatsMonth.revenue),
            ).where(in_range)
        )
    ).one()
    sealed = {**per_month, WHOLE: tuple(whole)}
    old, new = await _tail_members(session, rollup, edges, months)
    figures = _added(sealed, new, old, signs=(1, 1, -1))
    if len(months) == 2:
        figures[0] = figures.get(WHOLE, (0, 0, 0, 0))
    return {
        key: (members, purchases, revenue, members - singles)
        for key, (members, singles, purchases, revenue) in figures.items()
    }


async def _tail_members(
    session: AsyncSession, rollup: StatsRollup, edges: Sequence[datetime], months: Sequence[int]
) -> tuple[dict[int, Any], dict[int, Any]]:
    """For the members with purchases in range booked since the cutoff, per month and for the
    whole range (WHOLE): members, members with one purchase, purchases and revenue, as the
    rollup counts them (old) and with those purchases (new). One statement."""
    old, new = _tail_months(rollup, edges, months)
    parts = []
    for side, rows in (("old", old), ("new", new)):
        per_member = (
            select(func.sum(rows.c.n).label("n"), func.sum(rows.c.revenue).label("revenue"))
            .group_by(rows.c.member_id)
            .subquery()
        )
        for key, source, group in (
            (rows.c.bucket, rows, True),
            (literal_column(str(WHOLE)), per_member, False),
        ):
            part = select(
                literal(side).label("side"),
                key.label("bucket"),
                func.count(),
                func.sum(case((source.c.n == 1, 1), else_=0)),
                func.sum(source.c.n),
                func.sum(source.c.revenue),
            )
            parts.append(part.group_by(rows.c.bucket) if group else part)
    result: dict[str, dict[int, Any]] = {"old": {}, "new": {}}
    for side, key, *row in await session.execute(union_all(*parts)):
        result[side][key] = tuple(row)
    return result["old"], result["new"]


def _tail_months(
    rollup: StatsRollup, edges: Sequence[datetime], months: Sequence[int]
) -> tuple[CTE, CTE]:
    """The (member, month) rows of ``_tail_members``' members: their purchases and revenue as
    the rollup sealed them (old), and with the purchases booked since its cutoff (new)."""
    start, end = edges[0], edges[-1]
    booked_since = Purchase.created_at >= literal(rollup.cutoff, UTCDateTime())
    recent = (
        select(
            Purchase.member_id,
            bucket(Purchase.occurred_at, edges[1:-1]).label("bucket"),
            Purchase.total_amount,
        )
        .where(booked_since, _within(Purchase.occurred_at, start, end))
        .subquery()
    )
    tail = (
        select(
            recent.c.member_id,
            recent.c.bucket,
            func.count().label("n"),
            func.sum(recent.c.total_amount).label("revenue"),
        )
        .group_by(recent.c.member_id, recent.c.bucket)
        .cte("tail")
    )
    old = (
        select(
            StatsMemberMonth.member_id,
            bucket(StatsMemberMonth.month, months[1:-1]).label("bucket"),
            StatsMemberMonth.purchases.label("n"),
            StatsMemberMonth.revenue,
        )
        .where(
            StatsMemberMonth.month >= months[0],
            StatsMemberMonth.month < months[-1],
            StatsMemberMonth.member_id.in_(select(tail.c.member_id)),
        )
        .cte("old")
    )
    both = union_all(select(old), select(tail)).subquery()
    new = (
        select(
            both.c.member_id,
            both.c.bucket,
            func.sum(both.c.n).label("n"),
            func.sum(both.c.revenue).label("revenue"),
        )
        .group_by(both.c.member_id, both.c.bucket)
        .cte("new")
    )
    return old, new


async def program_stats(session: AsyncSession, query: StatsQuery) -> ProgramStats:
    """The figures of every period and of the whole range (docs/analytics.md defines each).
    Additive figures are summed from the periods; active and repeating members, which are
    not, are counted over the whole range (from the rollup's month groups, or live)."""
    start = instant(query.start, "from").astimezone(UTC)
    end = instant(query.end, "to").astimezone(UTC)
    store_id = None if query.store_id is None else optional_text(query.store_id, 64, "storeId")
    query = StatsQuery(start, end, query.group_by, query.channel, store_id)
    program = await get_program(session)
    edges = boundaries(start, end, query.group_by, program.time_zone)
    members = await _new_members(session, edges)
    rollup = await rollups.current(session, program.time_zone)
    zone = ZoneInfo(program.time_zone)
    days = None if rollup is None else _day_keys(edges, zone)
    purchases = await _purchases(session, query, edges, rollup, days, zone)
    overall = purchases.get(WHOLE)
    previous_revenue = purchases.get(PREVIOUS, (0, 0, 0, 0))[2]
    refunds = await _refunds(session, query, edges)
    movements = await _movements(session, edges, rollup, days)
    liability = await _liability(session, edges, rollup, days)
    feedback = await _feedback(session, edges)

    periods: list[PeriodStats] = []
    outstanding = 0
    for index in range(len(edges) - 1):
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


async def _new_members(session: AsyncSession, edges: Sequence[datetime]) -> dict[int, Any]:
    """Per period: members enrolled, and how many of them were referred."""
    return await _grouped(
        session,
        select(
            bucket(Member.enrolled_at, edges[1:-1]).label("bucket"),
            Referral.id.label("referral"),
        )
        .select_from(Member)
        .outerjoin(Referral, Referral.referee_id == Member.id)
        .where(_within(Member.enrolled_at, edges[0], edges[-1])),
        lambda r: func.count(),
        lambda r: func.count(r.c.referral),
    )


async def _purchases(
    session: AsyncSession,
    query: StatsQuery,
    edges: Sequence[datetime],
    rollup: StatsRollup | None,
    days: Sequence[int] | None,
    zone: ZoneInfo,
) -> dict[int, Any]:
    """The purchase figures, from the rollup's months when the periods are whole local months
    and no filter applies (the rollup is not kept per channel or store), else live."""
    months = None if days is None or _purchase_filters(query) else _month_keys(edges, zone)
    if rollup is None or months is None:
        return await _live_purchases(session, query, edges)
    purchases = await _rolled_up_purchases(session, rollup, edges, months)
    purchases[PREVIOUS] = (0, 0, await _previous_revenue(session, rollup, edges, zone), 0)
    return purchases


async def _refunds(
    session: AsyncSession, query: StatsQuery, edges: Sequence[datetime]
) -> dict[int, Any]:
    """Per period: the amount refunded, of the purchases the filters select."""
    refunded = select(
        bucket(PurchaseRefund.created_at, edges[1:-1]).label("bucket"), PurchaseRefund.amount
    ).where(_within(PurchaseRefund.created_at, edges[0], edges[-1]))
    if _purchase_filters(query):
        refunded = refunded.join(Purchase, Purchase.id == PurchaseRefund.purchase_id).where(
            *_purchase_filters(query)
        )
    return await _grouped(session, refunded, lambda r: func.sum(r.c.amount))


async def _feedback(session: AsyncSession, edges: Sequence[datetime]) -> dict[int, Any]:
    """Per period: answers; CSAT answers, their score sum and the satisfied (4 or 5); NPS
    answers, promoters (9 or 10) and detractors (0 to 6)."""
    is_csat, is_nps, score = (
        Feedback.kind == FeedbackKind.CSAT,
        Feedback.kind == FeedbackKind.NPS,
        Feedback.score,
    )
    return await _grouped(
        session,
        select(
            bucket(Feedback.created_at, edges[1:-1]).label("bucket"),
            case((is_csat, 1), else_=0).label("csat"),
            case((is_csat, score), else_=0).label("csat_score"),
            case((and_(is_csat, score >= 4), 1), else_=0).label("satisfied"),
            case((is_nps, 1), else_=0).label("nps"),
            case((and_(is_nps, score >= 9), 1), else_=0).label("promoters"),
            case((and_(is_nps, score <= 6), 1), else_=0).label("detractors"),
        ).where(_within(Feedback.created_at, edges[0], edges[-1])),
        lambda r: func.count(),
        *(lambda r, c=c: func.sum(r.c[c]) for c in ("csat", "csat_score", "satisfied")),
        *(lambda r, c=c: func.sum(r.c[c]) for c in ("nps", "promoters", "detractors")),
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
