"""``birthday-bonus``: the birthday rules in force award members whose birthday is today.

Set-based like the other jobs: per batch of member ids, the members whose date of birth falls
on today (in the program's time zone; 29 February birthdays on 28 February in other years)
and who have no award of this rule this year go into ``lot_job``; their rows are locked; a
few ``INSERT ... SELECT`` statements write one BONUS transaction per member, the lots, the
``birthday`` events (one per rule, member and year: a unique key, so a rerun awards nothing)
and the rule awards. Birthday rules honour ``tierIds``, ``daysOfWeek``/``hours``,
``perPurchase`` (the cap on one award), the campaign ``budget`` (whole awards only) and
``segmentIds`` (each segment's filter joins the batch's WHERE clause, as of the job's ``now``).
"""

from datetime import datetime

from sqlalchemy import (
    JSON,
    String,
    and_,
    cast,
    delete,
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
from loyalty.ledger.jobs import (
    BATCH_SIZE,
    JobReport,
    emit_job_events,
    lock_job_members,
    lot_job,
    number_transactions,
    post_per_member,
)
from loyalty.ledger.models import Account, EntryKind, LedgerEntry, LotState, PointLot
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
        amount = floor(rule.effect_value)
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
    prefix = f"{BIRTHDAY}:{local.year}:{rule.rule_id}:"
    once_key = literal(prefix) + cast(Member.id, String)
    allowed: int | None = None
    if rule.limits.budget is not None:
        used = await session.scalar(
            select(EarningRule.budget_used).where(EarningRule.id == rule.rule_id).with_for_update()
        )
        allowed = max(rule.limits.budget - int(used or 0), 0) // amount
        if allowed == 0:
            return 0
    tiers = rule.conditions.tier_ids
    candidates = (
        select(Member.id, literal(amount))
        .where(
            Member.id >= low,
            Member.id < high,
            Member.status == MemberStatus.ACTIVE,
            Member.date_of_birth.is_not(None),
            _born_today(session, local),
            Member.tier_id.in_(tiers) if tiers is not None else true(),
            _in_segments(rule, segments, now),
            ~select(MemberEvent.id).where(MemberEvent.once_key == once_key).exists(),
        )
        .order_by(Member.id)
    )
    if allowed is not None:
        candidates = candidates.limit(allowed)
    connection = await session.connection()
    await connection.run_sync(lambda sync: lot_job.create(sync, checkfirst=True))
    await session.execute(delete(lot_job))
    await session.execute(insert(lot_job).from_select(["member_id", "amount"], candidates))
    count = await session.scalar(select(func.count()).select_from(lot_job))
    if not count:
        return 0
    await lock_job_members(session)
    # Read again under the lock: a member suspended meanwhile gets nothing.
    await session.execute(
        delete(lot_job).where(
            lot_job.c.member_id.in_(
                select(Member.id).where(
                    Member.id == lot_job.c.member_id, Member.status != MemberStatus.ACTIVE
                )
            )
        )
    )
    count = await session.scalar(select(func.count()).select_from(lot_job))
    if not count:
        return 0
    await number_transactions(session)
    await post_per_member(
        session,
        kind=EntryKind.BONUS,
        now=now,
        reason=f"Birthday bonus: {rule.name}",
        postings=[
            (Account.MEMBER_AVAILABLE, 1, Member.points_available),
            (Account.PROGRAM_ISSUANCE, -1, None),
        ],
    )
    await session.execute(
        update(Member)
        .where(Member.id == lot_job.c.member_id)
        .values(
            points_available=Member.points_available + lot_job.c.amount,
            lifetime_earned=Member.lifetime_earned + lot_job.c.amount,
        )
        .execution_options(synchronize_session=False)
    )
    await emit_job_events(
        session,
        kind=EntryKind.BONUS,
        now=now,
        reason=f"Birthday bonus: {rule.name}",
        account=Account.MEMBER_AVAILABLE,
        sign=1,
    )
    stamp = literal(now, UTCDateTime())
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
                lot_job.c.member_id,
                lot_job.c.transaction_id,
                lot_job.c.amount,
                lot_job.c.amount,
                literal(0),
                literal(LotState.AVAILABLE.value),
                stamp,
                literal(expires_at, UTCDateTime()),
            ),
        )
    )
    job_key = literal(prefix) + cast(lot_job.c.member_id, String)
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
                lot_job.c.member_id,
                literal(BIRTHDAY),
                stamp,
                literal(utcnow(), UTCDateTime()),
                literal({}, JSON()),
                lot_job.c.amount,
                job_key,
            ),
        )
    )
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
                lot_job.c.member_id,
                MemberEvent.id,
                LedgerEntry.id,
                stamp,
                lot_job.c.amount,
                literal(rule.limits.budget is not None),
                literal(utcnow(), UTCDateTime()),
            )
            .join(
                MemberEvent,
                and_(MemberEvent.once_key == job_key, MemberEvent.member_id == lot_job.c.member_id),
            )
            .join(
                LedgerEntry,
                and_(
                    LedgerEntry.transaction_id == lot_job.c.transaction_id,
                    LedgerEntry.member_id == lot_job.c.member_id,
                ),
            ),
        )
    )
    if rule.limits.budget is not None:
        await session.execute(
            update(EarningRule)
            .where(EarningRule.id == rule.rule_id)
            .values(budget_used=EarningRule.budget_used + count * amount)
        )
    return int(count)
