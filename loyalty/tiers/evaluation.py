"""``loyalty jobs run evaluate-tiers``: every member's tier from their qualifying points.

Set-based SQL over batches of members (by id range, one transaction each): the batch's
member rows are locked (on PostgreSQL) so live purchases wait a moment instead of racing;
one ``INSERT ... SELECT`` computes each member's qualifying points and decision into a
temporary table; then one statement per kind of change writes the history and the members.
No Python loop over members. Running it twice with the same ``--now`` changes nothing more.

Decisions, comparing the tier the points reach (target) with the tier held (current):
- UP: target above current; the member moves up now (reason QUALIFIED).
- CLEAR: back at the current tier while a retention was running; the retention ends.
- HOLD: below the current tier for the first time; the tier is kept until now + its
  retention days (``tier_retained_until``); with no retention, DOWN at once.
- DOWN: below the current tier and its retention has run out; moves to the target (EXPIRED).
"""

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import (
    BigInteger,
    Column,
    MetaData,
    SQLColumnExpression,
    String,
    Table,
    and_,
    case,
    cast,
    delete,
    func,
    insert,
    literal,
    null,
    select,
    text,
    update,
)
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql.elements import ColumnElement
from sqlalchemy.sql.selectable import Subquery

from loyalty.db import Database, UTCDateTime
from loyalty.errors import invalid
from loyalty.ledger.models import LedgerTransaction
from loyalty.members.models import Member
from loyalty.outbox import service as outbox
from loyalty.program.service import get_program
from loyalty.tiers.models import Tier, TierChange, TierChangeReason
from loyalty.tiers.service import PreviewRow, ProposedTier

BATCH_SIZE = 50_000

_scratch = MetaData()
tier_eval = Table(
    "tier_eval",
    _scratch,
    Column("member_id", BigInteger, primary_key=True),
    Column("old_tier_id", BigInteger),
    Column("new_tier_id", BigInteger),
    Column("points", BigInteger),
    Column("action", String(8)),
    prefixes=["TEMPORARY"],
)


@dataclass(frozen=True)
class EvaluationReport:
    members: int
    upgraded: int
    downgraded: int
    retention_started: int
    retention_cleared: int

    def __str__(self) -> str:
        return (
            f"evaluated {self.members} members: {self.upgraded} up, {self.downgraded} down, "
            f"{self.retention_started} entered retention, {self.retention_cleared} left it"
        )


def _by_tier(
    column: SQLColumnExpression[int | None], tiers: list[Tier], value: str, default: object
) -> ColumnElement[Any]:
    """``CASE column WHEN tier id THEN tier.<value> ...``: tiers are few, members many."""
    if not tiers:
        return literal(default)
    return case({t.id: getattr(t, value) for t in tiers}, value=column, else_=literal(default))


def target_tier(points: ColumnElement[int], tiers: list[Tier]) -> ColumnElement[int | None]:
    """The id of the highest tier whose threshold ``points`` reach (NULL below them all)."""
    ladder = sorted(tiers, key=lambda t: t.threshold, reverse=True)
    if not ladder:
        # Typed, or PostgreSQL takes a bare NULL in the job's SELECT for text.
        return cast(null(), BigInteger)
    return case(*((points >= t.threshold, t.id) for t in ladder), else_=null())


async def evaluate_tiers(
    db: Database, *, now: datetime, batch_size: int = BATCH_SIZE
) -> EvaluationReport:
    totals = {"members": 0, "UP": 0, "DOWN": 0, "HOLD": 0, "CLEAR": 0}
    async with db.transaction() as session:
        bounds = (await session.execute(select(func.min(Member.id), func.max(Member.id)))).one()
    if bounds[0] is None:
        return EvaluationReport(0, 0, 0, 0, 0)
    low = bounds[0]
    while low <= bounds[1]:
        high = low + batch_size
        async with db.transaction() as session:
            counts = await _evaluate_batch(session, low=low, high=high, now=now)
        for key, value in counts.items():
            totals[key] += value
        low = high
    return EvaluationReport(
        members=totals["members"],
        upgraded=totals["UP"],
        downgraded=totals["DOWN"],
        retention_started=totals["HOLD"],
        retention_cleared=totals["CLEAR"],
    )


async def _evaluate_batch(
    session: AsyncSession, *, low: int, high: int, now: datetime
) -> dict[str, int]:
    in_batch = and_(Member.id >= low, Member.id < high)
    # Newest first, as every lock of several members (see ledger.batch.lock_members).
    locked = select(Member.id).where(in_batch).order_by(Member.id.desc()).with_for_update()
    members_in_batch = await session.scalar(select(func.count()).select_from(locked.subquery()))
    tiers = list((await session.scalars(select(Tier))).all())
    program = await get_program(session)
    since = now - timedelta(days=program.tier_window_days)
    earned = _qualifying_points(since=since, now=now, members=(low, high))
    counts = await _decide(session, earned=earned, in_batch=in_batch, tiers=tiers, now=now)
    if counts.get("UP") or counts.get("DOWN"):
        await _move(session, tiers=tiers, now=now)
    if counts.get("CLEAR"):
        await session.execute(
            update(Member)
            .where(Member.id == tier_eval.c.member_id, tier_eval.c.action == "CLEAR")
            .values(tier_retained_until=None)
            .execution_options(synchronize_session=False)
        )
    if counts.get("HOLD"):
        await _hold(session, tiers=tiers, now=now)
    return {
        "members": members_in_batch or 0,
        **{k: counts.get(k, 0) for k in ("UP", "DOWN", "HOLD", "CLEAR")},
    }


def _qualifying_points(
    *, since: datetime, now: datetime, members: tuple[int, int] | None = None
) -> Subquery:
    """Each member's qualifying points in the window ``(since, now]``, for the members whose
    id is in ``[low, high)`` when ``members`` is given, else for everyone."""
    window = [
        LedgerTransaction.qualifying_at > literal(since, UTCDateTime()),
        LedgerTransaction.qualifying_at <= literal(now, UTCDateTime()),
    ]
    if members is not None:
        low, high = members
        window = [LedgerTransaction.member_id >= low, LedgerTransaction.member_id < high, *window]
    return (
        select(
            LedgerTransaction.member_id,
            func.sum(LedgerTransaction.qualifying_points).label("points"),
        )
        .where(*window)
        .group_by(LedgerTransaction.member_id)
        .subquery()
    )


async def _decide(
    session: AsyncSession,
    *,
    earned: Subquery,
    in_batch: ColumnElement[bool],
    tiers: list[Tier],
    now: datetime,
) -> dict[str, int]:
    """Fill ``tier_eval`` with the batch's members whose tier changes (UP, DOWN, HOLD or
    CLEAR, as the module docstring says) and count them by decision."""
    connection = await session.connection()
    await connection.run_sync(lambda sync: tier_eval.create(sync, checkfirst=True))
    await session.execute(delete(tier_eval))
    points = func.coalesce(earned.c.points, 0)
    target = target_tier(points, tiers)
    target_rank = _by_tier(target, tiers, "rank", -1)
    current_rank = _by_tier(Member.tier_id, tiers, "rank", -1)
    retention = _by_tier(Member.tier_id, tiers, "retention_days", 0)
    action = case(
        (target_rank > current_rank, "UP"),
        (
            target_rank == current_rank,
            case((Member.tier_retained_until.isnot(None), "CLEAR"), else_="NONE"),
        ),
        (
            Member.tier_retained_until.is_(None),
            case((retention == 0, "DOWN"), else_="HOLD"),
        ),
        (Member.tier_retained_until <= literal(now, UTCDateTime()), "DOWN"),
        else_="NONE",
    )
    decisions = (
        select(
            Member.id.label("member_id"),
            Member.tier_id.label("old_tier_id"),
            target.label("new_tier_id"),
            points.label("points"),
            action.label("action"),
        )
        .select_from(Member)
        .outerjoin(earned, earned.c.member_id == Member.id)
        .where(in_batch)
        .subquery()
    )
    await session.execute(
        insert(tier_eval).from_select(
            ["member_id", "old_tier_id", "new_tier_id", "points", "action"],
            select(decisions).where(decisions.c.action != "NONE"),
        )
    )
    counts = {
        row.action: row.n
        for row in await session.execute(
            select(tier_eval.c.action, func.count().label("n")).group_by(tier_eval.c.action)
        )
    }
    if session.get_bind().dialect.name == "postgresql":
        # A fresh temporary table has no statistics: without them the planner may start the
        # updates below from ``members`` instead of from the few rows to change.
        await session.execute(text("ANALYZE tier_eval"))
    return counts


async def _move(session: AsyncSession, *, tiers: list[Tier], now: datetime) -> None:
    """Move the members decided UP or DOWN: their history, their events, their tier."""
    moves = tier_eval.c.action.in_(("UP", "DOWN"))
    await session.execute(
        insert(TierChange).from_select(
            [
                "member_id",
                "from_tier_id",
                "to_tier_id",
                "from_name",
                "to_name",
                "reason",
                "qualifying_points",
                "at",
            ],
            select(
                tier_eval.c.member_id,
                tier_eval.c.old_tier_id,
                tier_eval.c.new_tier_id,
                _by_tier(tier_eval.c.old_tier_id, tiers, "name", None),
                _by_tier(tier_eval.c.new_tier_id, tiers, "name", None),
                _move_reason(),
                tier_eval.c.points,
                literal(now, UTCDateTime()),
            ).where(moves),
        )
    )
    await _emit_changes(session, tiers=tiers, now=now, moves=moves)
    await session.execute(
        update(Member)
        .where(Member.id == tier_eval.c.member_id, moves)
        .values(tier_id=tier_eval.c.new_tier_id, tier_since=now, tier_retained_until=None)
        .execution_options(synchronize_session=False)
    )


def _move_reason() -> ColumnElement[str]:
    """QUALIFIED for a move up, EXPIRED for a move down."""
    return case(
        (tier_eval.c.action == "UP", TierChangeReason.QUALIFIED.value),
        else_=TierChangeReason.EXPIRED.value,
    )


async def _hold(session: AsyncSession, *, tiers: list[Tier], now: datetime) -> None:
    """Start the retention of the members decided HOLD: their tier is kept until now plus
    the retention days of the tier they hold."""
    retained_until = case(
        {t.id: literal(now + timedelta(days=t.retention_days), UTCDateTime()) for t in tiers},
        value=tier_eval.c.old_tier_id,
    )
    await session.execute(
        update(Member)
        .where(Member.id == tier_eval.c.member_id, tier_eval.c.action == "HOLD")
        .values(tier_retained_until=retained_until)
        .execution_options(synchronize_session=False)
    )


async def _emit_changes(
    session: AsyncSession, *, tiers: list[Tier], now: datetime, moves: ColumnElement[bool]
) -> None:
    """A ``tier.changed`` event per member moved, in one ``INSERT ... SELECT``."""

    def tier_json(tier_id: ColumnElement[int]) -> ColumnElement[Any]:
        shaped = outbox.json_sql(
            session,
            {
                "id": outbox.global_id_sql("Tier", tier_id),
                "name": _by_tier(tier_id, tiers, "name", None),
            },
        )
        nullable = case((tier_id.is_(None), null()), else_=shaped)
        # SQLite: json() keeps the object an object (not text) through the CASE.
        return nullable if session.get_bind().dialect.name == "postgresql" else func.json(nullable)

    data = outbox.json_sql(
        session,
        {
            "member": outbox.ref_sql(session, "Member", tier_eval.c.member_id),
            "from": tier_json(tier_eval.c.old_tier_id),
            "to": tier_json(tier_eval.c.new_tier_id),
            "reason": _move_reason(),
            "qualifyingPoints": tier_eval.c.points,
        },
    )
    await outbox.emit_select(
        session,
        outbox.TIER_CHANGED,
        occurred_at=now,
        rows=select(tier_eval.c.member_id, data.label("data")).where(moves),
    )


async def preview_tier_change(
    session: AsyncSession, *, proposed: list[ProposedTier], now: datetime
) -> list[PreviewRow]:
    """How many members the proposed ladder would move up, down or leave where they are,
    judged on their qualifying points now; writes nothing. Retention is not applied: a
    member counted as moving down would first keep the tier through its retention."""
    _check_proposal(proposed)
    program = await get_program(session)
    since = now - timedelta(days=program.tier_window_days)
    tiers = list((await session.scalars(select(Tier))).all())
    earned = _qualifying_points(since=since, now=now)
    points = func.coalesce(earned.c.points, 0)
    ladder = sorted(proposed, key=lambda t: t.threshold, reverse=True)
    proposed_rank = case(*((points >= t.threshold, t.rank) for t in ladder), else_=-1)
    current_rank = _by_tier(Member.tier_id, tiers, "rank", -1)
    per_member = (
        select(proposed_rank.label("target"), current_rank.label("current"))
        .select_from(Member)
        .outerjoin(earned, earned.c.member_id == Member.id)
        .subquery()
    )
    rows = await session.execute(
        select(
            per_member.c.target,
            func.count().label("members"),
            func.sum(case((per_member.c.target > per_member.c.current, 1), else_=0)).label("up"),
            func.sum(case((per_member.c.target < per_member.c.current, 1), else_=0)).label("down"),
        ).group_by(per_member.c.target)
    )
    counts = {row.target: row for row in rows}
    result = []
    for tier in [*sorted(proposed, key=lambda t: t.rank), None]:
        rank = -1 if tier is None else tier.rank
        row = counts.get(rank)
        if tier is None and row is None:
            continue
        members = row.members if row else 0
        up = int(row.up or 0) if row else 0
        down = int(row.down or 0) if row else 0
        result.append(
            PreviewRow(
                rank=rank,
                name=None if tier is None else tier.name,
                threshold=0 if tier is None else tier.threshold,
                members=members,
                moved_up=up,
                moved_down=down,
                stayed=members - up - down,
            )
        )
    return result


def _check_proposal(proposed: list[ProposedTier]) -> None:
    if not 1 <= len(proposed) <= 50:
        raise invalid("Propose between 1 and 50 tiers.", "tiers")
    ranks = [t.rank for t in proposed]
    if len(set(ranks)) != len(ranks):
        raise invalid("Ranks must be unique.", "tiers")
    ordered = sorted(proposed, key=lambda t: t.rank)
    for index, tier in enumerate(ordered):
        if tier.threshold < 0:
            raise invalid("Thresholds must not be negative.", "tiers", str(index), "threshold")
        if index and tier.threshold <= ordered[index - 1].threshold:
            raise invalid("Thresholds must rise with rank.", "tiers", str(index), "threshold")
