"""Earning rules inside a points transaction: the member's caps, the budget, the awards.

The member row is locked before anything here runs, so the per-member caps are counted
without a race; budgeted rules are then locked in id order (``FOR UPDATE``), so concurrent
purchases of different members can never award more than a campaign's budget.
"""

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import bindparam, case, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql.elements import ColumnElement

from loyalty import held_writes
from loyalty.db import utcnow
from loyalty.rules.book import RuleBook
from loyalty.rules.definition import Limits
from loyalty.rules.engine import Award, CompiledRule, Occasion, evaluate, proposed
from loyalty.rules.models import EarningRule, RuleAward
from loyalty.segments import service as segments


@dataclass(frozen=True)
class Usage:
    day: int = 0
    week: int = 0
    month: int = 0
    total: int = 0


def local_time(at: datetime, time_zone: str) -> datetime:
    return at.astimezone(ZoneInfo(time_zone))


def periods(local: datetime) -> dict[str, tuple[datetime, datetime]]:
    """The day, week (from Monday) and month containing ``local``, as UTC bounds."""
    day = local.replace(hour=0, minute=0, second=0, microsecond=0)
    week = day - timedelta(days=day.weekday())
    month = day.replace(day=1)
    next_month = (month + timedelta(days=32)).replace(day=1)

    def utc(start: datetime, end: datetime) -> tuple[datetime, datetime]:
        # Re-attach the zone so a DST change inside the period shifts the UTC offset.
        zone = local.tzinfo
        return (
            start.replace(tzinfo=None).replace(tzinfo=zone).astimezone(ZoneInfo("UTC")),
            end.replace(tzinfo=None).replace(tzinfo=zone).astimezone(ZoneInfo("UTC")),
        )

    return {
        "day": utc(day, day + timedelta(days=1)),
        "week": utc(week, week + timedelta(days=7)),
        "month": utc(month, next_month),
    }


async def awards_for(
    session: AsyncSession,
    *,
    book: RuleBook,
    at: datetime,
    occasion: Occasion,
    member_id: int,
    lock: bool,
    first_purchase: Callable[[], Awaitable[bool]] | None = None,
) -> list[Award]:
    """What the rules in force at ``at`` award on this occasion, caps and budget applied."""
    candidates = book.in_force(at, event_type=occasion.event_type)
    if not candidates:
        return []
    if first_purchase is not None and any(
        rule.conditions.first_purchase is not None for rule in candidates
    ):
        occasion = replace(occasion, first_purchase=await first_purchase())
    named = frozenset().union(*(rule.conditions.segment_ids or () for rule in candidates))
    if named:
        # One statement whatever the number of segments: the member's row tested against
        # each named segment's filter as of now (a deleted segment's id matches nobody).
        occasion = replace(
            occasion,
            segment_ids=await segments.segments_of_member(
                session,
                member_id=member_id,
                filters={i: book.segments[i] for i in named if i in book.segments},
                now=utcnow(),
            ),
        )
    matching = [rule for rule in candidates if proposed(rule, occasion) is not None]
    if not matching:
        return []
    usage = await _member_usage(
        session,
        member_id=member_id,
        rules=[rule for rule in matching if rule.limits.per_member],
        local=occasion.local_time,
    )
    budgets = await _budgets_used(
        session,
        rule_ids=[rule.rule_id for rule in matching if rule.limits.budget is not None],
        lock=lock,
    )

    def room(rule: CompiledRule) -> int | None:
        limits = rule.limits
        used = usage.get(rule.rule_id, Usage())
        caps = (
            (limits.per_member_per_day, used.day),
            (limits.per_member_per_week, used.week),
            (limits.per_member_per_month, used.month),
            (limits.per_member_total, used.total),
            (limits.budget, budgets.get(rule.rule_id, 0)),
        )
        lefts = [cap - spent for cap, spent in caps if cap is not None]
        return min(lefts) if lefts else None

    return evaluate(matching, occasion, room)


def _within(period: str) -> ColumnElement[int]:
    awarded_for = RuleAward.awarded_for
    inside = (awarded_for >= bindparam(f"{period}_start")) & (
        awarded_for < bindparam(f"{period}_end")
    )
    return func.coalesce(func.sum(case((inside, RuleAward.points), else_=0)), 0)


# Built once (the purchase path only binds it): what each rule gave the member in the day,
# week and month of the purchase and in all, reading the awards since the oldest period needed.
_USAGE = (
    select(
        RuleAward.rule_id,
        _within("day"),
        _within("week"),
        _within("month"),
        func.coalesce(func.sum(RuleAward.points), 0),
    )
    .where(
        RuleAward.member_id == bindparam("member"),
        RuleAward.rule_id.in_(bindparam("rules", expanding=True)),
        RuleAward.awarded_for >= bindparam("since"),
    )
    .group_by(RuleAward.rule_id)
)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


async def _member_usage(
    session: AsyncSession, *, member_id: int, rules: list[CompiledRule], local: datetime
) -> dict[int, Usage]:
    if not rules:
        return {}
    await held_writes.write_now(session)  # awards this transaction made count too
    bounds = periods(local)

    def oldest_needed(limits: Limits) -> datetime:
        if limits.per_member_total is not None:
            return _EPOCH
        capped = (
            ("day", limits.per_member_per_day),
            ("week", limits.per_member_per_week),
            ("month", limits.per_member_per_month),
        )
        return min(bounds[period][0] for period, cap in capped if cap is not None)

    rows = await session.execute(
        _USAGE,
        {
            "member": member_id,
            "rules": sorted({rule.rule_id for rule in rules}),
            "since": min(oldest_needed(rule.limits) for rule in rules),
            **{
                f"{period}_{edge}": bound
                for period, (start, end) in bounds.items()
                for edge, bound in (("start", start), ("end", end))
            },
        },
    )
    return {
        row[0]: Usage(day=int(row[1]), week=int(row[2]), month=int(row[3]), total=int(row[4]))
        for row in rows
    }


async def _budgets_used(
    session: AsyncSession, *, rule_ids: list[int], lock: bool
) -> dict[int, int]:
    if not rule_ids:
        return {}
    statement = (
        select(EarningRule.id, EarningRule.budget_used)
        .where(EarningRule.id.in_(sorted(rule_ids)))
        .order_by(EarningRule.id)
    )
    if lock:
        # FOR NO KEY UPDATE: enough to serialise budgets, and it lets other transactions'
        # award rows reference the rule (their foreign-key check takes a KEY SHARE lock).
        statement = statement.with_for_update(key_share=True)
    return {row[0]: int(row[1]) for row in await session.execute(statement)}


_ADD_TO_BUDGET = (
    update(EarningRule.__table__)
    .where(EarningRule.__table__.c.id == bindparam("rule"))
    .values(budget_used=EarningRule.__table__.c.budget_used + bindparam("points"))
)
_AWARDS = RuleAward.__table__
_INSERT_AWARD = held_writes.HeldWrite.insert(
    "rule_awards", {column.name: column.type for column in _AWARDS.columns if column.name != "id"}
)
"""Held until commit, with the transaction's events (``loyalty.held_writes``): only the caps
and refunds read awards back, and they send what is held first."""


async def record_awards(
    session: AsyncSession,
    *,
    awards: list[Award],
    entry_ids: tuple[int, ...],
    member_id: int,
    awarded_for: datetime,
    now: datetime,
    purchase_id: int | None = None,
    event_id: int | None = None,
) -> None:
    """Write what each rule gave (the caps count it) and charge the budgeted rules."""
    for award, entry_id in zip(awards, entry_ids, strict=True):
        held_writes.hold(
            session,
            _INSERT_AWARD,
            {
                "rule_id": award.rule.rule_id,
                "version_id": award.rule.version_id,
                "member_id": member_id,
                "purchase_id": purchase_id,
                "event_id": event_id,
                "entry_id": entry_id,
                "awarded_for": awarded_for,
                "points": award.points,
                "budgeted": award.rule.limits.budget is not None,
                "created_at": now,
            },
        )
    budgeted = [
        {"rule": award.rule.rule_id, "points": award.points}
        for award in awards
        if award.rule.limits.budget is not None
    ]
    if budgeted:
        await session.execute(_ADD_TO_BUDGET, budgeted)


async def release_for_refund(
    session: AsyncSession,
    *,
    purchase_id: int,
    member_id: int,
    awarded_for: datetime,
    points_recovered: int,
    points_awarded: int,
    now: datetime,
) -> None:
    """A refund frees the caps (and budget) of the rules the purchase used in proportion to
    the points actually taken back: floor(rule's award × points recovered so far / points
    awarded) minus what earlier refunds freed. Points the member had already spent stay
    counted, so a refund can never let a campaign pay past its budget."""
    await held_writes.write_now(session)
    rows = (
        await session.execute(
            select(
                RuleAward.rule_id,
                RuleAward.version_id,
                RuleAward.budgeted,
                func.sum(case((RuleAward.points > 0, RuleAward.points), else_=0)),
                func.sum(case((RuleAward.points < 0, -RuleAward.points), else_=0)),
            )
            .where(RuleAward.purchase_id == purchase_id)
            .group_by(RuleAward.rule_id, RuleAward.version_id, RuleAward.budgeted)
            .order_by(RuleAward.rule_id)
        )
    ).all()
    releases = []
    for rule_id, version_id, budgeted, awarded, released in rows:
        owed = int(awarded) * points_recovered // points_awarded - int(released)
        if owed > 0:
            releases.append((rule_id, version_id, budgeted, owed))
    if not releases:
        return
    for rule_id, version_id, budgeted, owed in releases:
        held_writes.hold(
            session,
            _INSERT_AWARD,
            {
                "rule_id": rule_id,
                "version_id": version_id,
                "member_id": member_id,
                "purchase_id": purchase_id,
                "event_id": None,
                "entry_id": None,
                "awarded_for": awarded_for,
                "points": -owed,
                "budgeted": budgeted,
                "created_at": now,
            },
        )
    budgeted_releases = [
        {"rule": rule_id, "points": -owed} for rule_id, _, budgeted, owed in releases if budgeted
    ]
    if budgeted_releases:
        await session.execute(_ADD_TO_BUDGET, budgeted_releases)
