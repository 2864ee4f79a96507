"""``birthday-bonus``: the birthday rules in force award members whose birthday is today.

Set-based like the other jobs: per batch of member ids, the members whose date of birth falls
on today (in the program's time zone; 29 February birthdays on 28 February in other years)
and who have no award of this rule this year are locked; ``ledger.batch.post_batch`` writes
one BONUS transaction per member, its lots and balances and the outbox events, and a few
``INSERT ... SELECT`` statements the ``birthday`` events (one per rule, member and year: a
unique key, so a rerun awards nothing) and the rule awards. Birthday rules honour
``tierIds``, ``daysOfWeek``/``hours``, ``perPurchase`` (the cap on one award), the
campaign ``budget`` (whole awards only) and ``segmentIds`` (each segment's filter joins the
batch's WHERE clause, as of the job's ``now``).
"""

from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Select,
    String,
    and_,
    cast,
    false,
    func,
    insert,
    literal,
    or_,
    select,
    true,
    update,
)
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql.elements import ColumnElement

from loyalty.db import Database, UTCDateTime, utcnow
from loyalty.events.models import MemberEvent
from loyalty.ledger import batch
from loyalty.ledger.jobs import BATCH_SIZE, JobReport
from loyalty.ledger.models import Account, EntryKind, LedgerEntry
from loyalty.members.models import Member, MemberStatus
from loyalty.program.service import get_program
from loyalty.rules.awarding import local_time
from loyalty.rules.book import rule_book
from loyalty.rules.engine import CompiledRule, floor
from loyalty.rules.models import EarningRule, RuleAward
from loyalty.rules.service import BIRTHDAY
from loyalty.segments.filters import SegmentFilter, member_condition


async def birthday_bonus(db: Database, *, now: datetime) -> JobReport:
    async with db.transaction() as session:
        program = await get_program(session)
        book = await rule_book(session, program.rules_token)
        low, top = (await session.execute(select(func.min(Member.id), func.max(Member.id)))).one()
    local = local_time(now, program.time_zone)
    rules = [
        rule
        for rule in book.in_force(now, event_type=BIRTHDAY)
        if (rule.conditions.days_of_week is None or local.weekday() in rule.conditions.days_of_week)
        and (rule.conditions.hours is None or local.hour in rule.conditions.hours)
    ]
    members = points = 0
    for rule in rules:
        amount = floor(rule.effect.value)
        if rule.limits.per_purchase is not None:
            amount = min(amount, rule.limits.per_purchase)
        if amount <= 0:
            continue
        start = low
        while start is not None and start <= top:
            async with db.transaction() as session:
                awarded = await _award_batch(
                    session,
                    rule=rule,
                    amount=amount,
                    low=start,
                    high=start + BATCH_SIZE,
                    now=now,
                    local=local,
                    expires_at=program.expires_at(now),
                    segments=book.segments,
                )
            members += awarded
            points += awarded * amount
            start += BATCH_SIZE
    return JobReport(members=members, points=points)


def _in_segments(
    rule: CompiledRule, segments: dict[int, SegmentFilter], now: datetime
) -> ColumnElement[bool]:
    """The member is in one of the rule's segments (a deleted segment matches nobody)."""
    named = rule.conditions.segment_ids
    if named is None:
        return true()
    return or_(
        false(),
        *(member_condition(segments[i], now=now, few=True) for i in sorted(named) if i in segments),
    )


def _born_today(session: AsyncSession, local: datetime) -> ColumnElement[bool]:
    if session.get_bind().dialect.name == "postgresql":
        month_day = func.to_char(Member.date_of_birth, "MM-DD")
    else:
        month_day = func.strftime("%m-%d", Member.date_of_birth)
    today = local.strftime("%m-%d")
    leap = local.year % 4 == 0 and (local.year % 100 != 0 or local.year % 400 == 0)
    if today == "02-28" and not leap:
        return month_day.in_(["02-28", "02-29"])
    return month_day == today


async def _award_batch(
    session: AsyncSession,
    *,
    rule: CompiledRule,
    amount: int,
    low: int,
    high: int,
    now: datetime,
    local: datetime,
    expires_at: datetime | None,
    segments: dict[int, SegmentFilter],
) -> int:
    """Award the batch's members born today who have no award of this rule this year."""
    prefix = f"{BIRTHDAY}:{local.year}:{rule.rule_id}:"
    allowed = await _awards_left(session, rule=rule, amount=amount)
    if allowed == 0:
        return 0
    await batch.start(session)
    candidates = _candidates(
        session, rule=rule, low=low, high=high, local=local, prefix=prefix, allowed=allowed
    ).where(_in_segments(rule, segments, now))
    await session.execute(insert(batch.batch_members).from_select(["member_id"], candidates))
    if not await session.scalar(select(func.count()).select_from(batch.batch_members)):
        return 0
    await batch.lock_members(session)
    report = await batch.post_batch(
        session,
        batch.BatchMovement(
            kind=EntryKind.BONUS,
            occurred_at=now,
            reason=f"Birthday bonus: {rule.name}",
            lots=batch.OpenLots(expires_at=expires_at),
            counter_account=Account.PROGRAM_ISSUANCE,
            available=1,
            lifetime_earned=1,
        ),
        # Read again under the lock: a member suspended meanwhile gets nothing.
        amounts=select(Member.id.label("member_id"), literal(amount).label("amount"))
        .join(batch.batch_members, batch.batch_members.c.member_id == Member.id)
        .where(batch.within(batch.batch_members), Member.status == MemberStatus.ACTIVE),
    )
    if not report.members:
        return 0
    await _record_awards(session, rule=rule, now=now, prefix=prefix)
    if rule.limits.budget is not None:
        await session.execute(
            update(EarningRule)
            .where(EarningRule.id == rule.rule_id)
            .values(budget_used=EarningRule.budget_used + report.points)
        )
    return report.members


async def _awards_left(session: AsyncSession, *, rule: CompiledRule, amount: int) -> int | None:
    """Whole awards the rule's campaign budget still allows (None: no budget); the rule's row
    stays locked, so two runs cannot both spend the rest."""
    if rule.limits.budget is None:
        return None
    used = await session.scalar(
        select(EarningRule.budget_used).where(EarningRule.id == rule.rule_id).with_for_update()
    )
    return max(rule.limits.budget - int(used or 0), 0) // amount


def _candidates(
    session: AsyncSession,
    *,
    rule: CompiledRule,
    low: int,
    high: int,
    local: datetime,
    prefix: str,
    allowed: int | None,
) -> Select[*tuple[Any, ...]]:
    """Active members of the id range born today, in the rule's tiers, not yet awarded this
    year, lowest ids first up to ``allowed``."""
    once_key = literal(prefix) + cast(Member.id, String)
    tiers = rule.conditions.tier_ids
    candidates = (
        select(Member.id)
        .where(
            Member.id >= low,
            Member.id < high,
            Member.status == MemberStatus.ACTIVE,
            Member.date_of_birth.is_not(None),
            _born_today(session, local),
            Member.tier_id.in_(tiers) if tiers is not None else true(),
            ~select(MemberEvent.id).where(MemberEvent.once_key == once_key).exists(),
        )
        .order_by(Member.id)
    )
    return candidates if allowed is None else candidates.limit(allowed)


async def _record_awards(
    session: AsyncSession, *, rule: CompiledRule, now: datetime, prefix: str
) -> None:
    """The ``birthday`` event and the rule award of each member the batch posted to."""
    job_key = literal(prefix) + cast(batch.batch.c.member_id, String)
    await _record_events(session, now=now, job_key=job_key)
    await _record_rule_awards(session, rule=rule, now=now, job_key=job_key)


async def _record_events(
    session: AsyncSession, *, now: datetime, job_key: ColumnElement[str]
) -> None:
    """A ``birthday`` event per member posted to, its once-key ``job_key`` (so that a rerun of
    the same day finds it)."""
    posted = batch.batch
    await session.execute(
        insert(MemberEvent).from_select(
            [
                "member_id",
                "type",
                "occurred_at",
                "created_at",
                "attributes",
                "points_awarded",
                "once_key",
            ],
            select(
                posted.c.member_id,
                literal(BIRTHDAY),
                literal(now, UTCDateTime()),
                literal(utcnow(), UTCDateTime()),
                literal({}, JSON()),
                posted.c.amount,
                job_key,
            ),
        )
    )


async def _record_rule_awards(
    session: AsyncSession, *, rule: CompiledRule, now: datetime, job_key: ColumnElement[str]
) -> None:
    """The birthday rule's award per member posted to, naming the event and the posting."""
    posted = batch.batch
    await session.execute(
        insert(RuleAward).from_select(
            [
                "rule_id",
                "version_id",
                "member_id",
                "event_id",
                "entry_id",
                "awarded_for",
                "points",
                "budgeted",
                "created_at",
            ],
            select(
                literal(rule.rule_id),
                literal(rule.version_id),
                posted.c.member_id,
                MemberEvent.id,
                LedgerEntry.id,
                literal(now, UTCDateTime()),
                posted.c.amount,
                literal(rule.limits.budget is not None),
                literal(utcnow(), UTCDateTime()),
            )
            .join(
                MemberEvent,
                and_(MemberEvent.once_key == job_key, MemberEvent.member_id == posted.c.member_id),
            )
            .join(
                LedgerEntry,
                and_(
                    LedgerEntry.transaction_id == posted.c.transaction_id,
                    LedgerEntry.member_id == posted.c.member_id,
                ),
            ),
        )
    )
