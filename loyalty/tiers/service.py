"""Tier configuration, qualification and the member's view of where they stand.

Qualifying points are the ``qualifying_points`` of a member's ledger transactions whose
``qualifying_at`` lies in the rolling window ``(now - tierWindowDays, now]``: points earned
from purchases (net of refund clawbacks) and, when an admin flags them, adjustments. A
member moves up in the transaction that crosses a threshold; moving down is the job's
(``tiers.evaluation``), after the tier's retention period.
"""

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field
from sqlalchemy import func, insert, literal, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from loyalty.db import UTCDateTime, lock_by_id, utcnow
from loyalty.errors import DomainErrors, invalid, not_found
from loyalty.inputs import between, check_with, checked, invalid_at, refused
from loyalty.ledger.models import LedgerTransaction
from loyalty.members import service as members
from loyalty.members.models import Member
from loyalty.money import parse_decimal
from loyalty.outbox import service as outbox
from loyalty.pagination import Page, PageRequest, newest_first_by_owner
from loyalty.program.service import get_program
from loyalty.rewards.models import Reward
from loyalty.rules import service as rules
from loyalty.tiers.models import Tier, TierChange, TierChangeReason
from loyalty.validation import optional_text, required_text

MAX_BENEFITS = 20


def _multiplier(value: Any) -> Decimal:
    multiplier: Decimal = value if isinstance(value, Decimal) else checked(parse_decimal, value)
    if not Decimal(1) <= multiplier <= Decimal(100):
        raise refused("Must be between 1 and 100.")
    return multiplier


def _benefit(value: Any) -> str:
    return str(checked(lambda v: required_text(v, 200), value))


def _few_benefits(items: list[str]) -> list[str]:
    """Counted once every benefit holds, as it always was."""
    if len(items) > MAX_BENEFITS:
        raise refused(f"At most {MAX_BENEFITS} benefits.")
    return items


class TierDraft(BaseModel):
    """A tier as an admin sends it, each field checked on its own, every error at once
    (``parse_indexed``: a benefit's error names its index). Only the fields sent are set
    (``model_fields_set``): a new tier needs name, rank and threshold; on an update the
    fields not sent stay as they are."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: Annotated[str | None, check_with(required_text, 100)] = None
    rank: Annotated[int | None, between(0, 1000)] = None
    threshold: Annotated[int | None, between(0, 1_000_000_000)] = None
    multiplier: Annotated[Decimal, BeforeValidator(_multiplier)] = Decimal(1)
    benefits: Annotated[
        list[Annotated[str, BeforeValidator(_benefit)]],
        BeforeValidator(lambda value: value or []),
        AfterValidator(_few_benefits),
    ] = Field(default_factory=list)
    retention_days: Annotated[int, between(0, 3650)] = 0

    def sent(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in self.model_fields_set}


@dataclass(frozen=True)
class TierProgress:
    current: Tier | None
    next: Tier | None
    qualifying_points: int
    points_to_next: int | None
    window_starts_at: datetime
    window_ends_at: datetime | None
    """When the oldest points counted now leave the rolling window (None: nothing counted)."""
    tier_expires_at: datetime | None
    """When the current tier is lost if the member earns nothing more (None: never)."""


@dataclass(frozen=True)
class ProposedTier:
    rank: int
    threshold: int
    name: str | None = None


@dataclass(frozen=True)
class PreviewRow:
    rank: int
    name: str | None
    threshold: int
    members: int
    moved_up: int
    moved_down: int
    stayed: int


async def list_tiers(session: AsyncSession) -> list[Tier]:
    return list((await session.scalars(select(Tier).order_by(Tier.rank))).all())


async def create_tier(session: AsyncSession, *, tier: TierDraft) -> Tier:
    missing = [name for name in _REQUIRED if name not in tier.model_fields_set]
    if missing:
        raise DomainErrors([invalid_at("Must be given.", name) for name in missing])
    values = {name: getattr(tier, name) for name in TierDraft.model_fields}
    await _check_ladder(session, rank=values["rank"], threshold=values["threshold"])
    row = Tier(**values, created_at=utcnow())
    session.add(row)
    await session.flush()
    return row


_REQUIRED = ("name", "rank", "threshold")


async def update_tier(session: AsyncSession, *, tier_id: int, changes: TierDraft) -> Tier:
    """Change a tier. Raising a threshold never demotes anyone at once: members who no longer
    qualify keep the tier through its retention period, then ``evaluate-tiers`` moves them."""
    tier = await lock_by_id(session, Tier, tier_id, field="id")
    sent = changes.sent()
    # Checked before the row changes: reading the ladder would flush a clashing rank first.
    await _check_ladder(
        session,
        rank=sent.get("rank", tier.rank),
        threshold=sent.get("threshold", tier.threshold),
        ignore=tier.id,
    )
    for name, value in sent.items():
        setattr(tier, name, value)
    await session.flush()
    return tier


async def delete_tier(
    session: AsyncSession, *, tier_id: int, move_members_to: int | None
) -> tuple[Tier, int]:
    """Delete a tier; its members move to ``move_members_to`` (required when it has any)."""
    tier = await lock_by_id(session, Tier, tier_id, field="id")
    holders = await session.scalar(
        select(func.count()).select_from(Member).where(Member.tier_id == tier.id)
    )
    used_by = await session.scalar(
        select(func.count()).select_from(Reward).where(Reward.min_tier_id == tier.id)
    )
    if used_by:
        raise invalid(
            f"{used_by} reward(s) require this tier; change their minimum tier first.", "id"
        )
    if naming := await rules.rules_naming_tier(session, tier_id=tier.id):
        raise invalid(
            f"{naming} earning rule(s) have this tier among their conditions; edit or archive "
            "them first.",
            "id",
        )
    target = None
    if move_members_to is not None:
        if move_members_to == tier.id:
            raise invalid("Members cannot move to the tier being deleted.", "moveMembersTo")
        target = await session.get(Tier, move_members_to)
        if target is None:
            raise not_found("Tier", "moveMembersTo")
    if holders and target is None:
        raise invalid(
            f"{holders} member(s) hold this tier: name a tier to move them to.", "moveMembersTo"
        )
    if holders and target is not None:
        await _move_holders(session, tier=tier, target=target)
    await session.delete(tier)
    await session.flush()
    return tier, holders or 0


async def _move_holders(session: AsyncSession, *, tier: Tier, target: Tier) -> None:
    """Move the members holding ``tier`` to ``target``, each move in their tier history."""
    now = utcnow()
    await session.execute(
        insert(TierChange).from_select(
            [
                "member_id",
                "from_tier_id",
                "to_tier_id",
                "from_name",
                "to_name",
                "reason",
                "note",
                "at",
            ],
            select(
                Member.id,
                Member.tier_id,
                literal(target.id),
                literal(tier.name),
                literal(target.name),
                literal(TierChangeReason.RULE_CHANGE.value),
                literal(f"Tier {tier.name} was deleted."),
                literal(now, UTCDateTime()),
            ).where(Member.tier_id == tier.id),
        )
    )
    await session.execute(
        update(Member)
        .where(Member.tier_id == tier.id)
        .values(tier_id=target.id, tier_since=now, tier_retained_until=None)
    )


async def set_member_tier(
    session: AsyncSession, *, member_id: int, tier_id: int | None, reason: str
) -> Member:
    """An admin override; the next evaluation treats it like any other tier."""
    note = required_text(reason, 500, "reason")
    member = await members.lock_member(session, member_id=member_id)
    tier = None
    if tier_id is not None:
        tier = await session.get(Tier, tier_id)
        if tier is None:
            raise not_found("Tier", "tierId")
    await record_change(session, member=member, to=tier, reason=TierChangeReason.ADMIN, note=note)
    await session.flush()
    return member


async def record_change(
    session: AsyncSession,
    *,
    member: Member,
    to: Tier | None,
    reason: TierChangeReason,
    qualifying_points: int | None = None,
    note: str | None = None,
    now: datetime | None = None,
) -> None:
    """Move one member (already locked) to ``to`` and write the history row."""
    now = now or utcnow()
    current = None if member.tier_id is None else await session.get(Tier, member.tier_id)
    session.add(
        TierChange(
            member_id=member.id,
            from_tier_id=member.tier_id,
            to_tier_id=None if to is None else to.id,
            from_name=None if current is None else current.name,
            to_name=None if to is None else to.name,
            reason=reason,
            qualifying_points=qualifying_points,
            note=optional_text(note, 500, "reason"),
            at=now,
        )
    )
    await outbox.emit(
        session,
        outbox.TIER_CHANGED,
        member_id=member.id,
        occurred_at=now,
        data={
            "member": outbox.ref("Member", member.id),
            "from": outbox.tier_ref(member.tier_id, None if current is None else current.name),
            "to": None if to is None else outbox.tier_ref(to.id, to.name),
            "reason": str(reason),
            "qualifyingPoints": qualifying_points,
        },
    )
    member.tier_id = None if to is None else to.id
    member.tier_since = now
    member.tier_retained_until = None


async def qualify_after_earning(
    session: AsyncSession,
    *,
    member: Member,
    now: datetime,
    window_days: int,
    next_threshold: int | None,
) -> None:
    """Upgrade at once when qualifying points now reach a higher tier; end a running retention
    when they are back above the current tier's threshold. ``member`` is locked.

    ``next_threshold`` (the threshold of the tier above the member's, None at the top) lets the
    common case, a purchase that does not reach it, cost one indexed sum and nothing more."""
    if next_threshold is None and member.tier_retained_until is None:
        return
    points = await qualifying_points(session, member_id=member.id, now=now, window_days=window_days)
    if (
        member.tier_retained_until is None
        and next_threshold is not None
        and points < next_threshold
    ):
        return
    tiers = await list_tiers(session)
    current = next((t for t in tiers if t.id == member.tier_id), None)
    current_rank = -1 if current is None else current.rank
    target = tier_for(tiers, points)
    if target is not None and target.rank > current_rank:
        await record_change(
            session,
            member=member,
            to=target,
            reason=TierChangeReason.QUALIFIED,
            qualifying_points=points,
            now=now,
        )
    elif current is not None and points >= current.threshold:
        member.tier_retained_until = None
    await session.flush()


async def next_threshold(session: AsyncSession, *, member: Member) -> int | None:
    """The threshold of the tier above the member's; None when the member is at the top."""
    current_rank = (
        -1
        if member.tier_id is None
        else await session.scalar(select(Tier.rank).where(Tier.id == member.tier_id))
    )
    return await session.scalar(
        select(func.min(Tier.threshold)).where(
            Tier.rank > (-1 if current_rank is None else current_rank)
        )
    )


def tier_for(tiers: list[Tier], points: int) -> Tier | None:
    """The highest tier whose threshold ``points`` reach."""
    reached = [t for t in tiers if t.threshold <= points]
    return max(reached, key=lambda t: t.rank) if reached else None


async def qualifying_points(
    session: AsyncSession, *, member_id: int, now: datetime, window_days: int
) -> int:
    since = now - timedelta(days=window_days)
    total = await session.scalar(
        select(func.coalesce(func.sum(LedgerTransaction.qualifying_points), 0)).where(
            LedgerTransaction.member_id == member_id,
            LedgerTransaction.qualifying_at > since,
            LedgerTransaction.qualifying_at <= now,
        )
    )
    return int(total or 0)


async def tier_progress(
    session: AsyncSession, *, members: Sequence[Member], now: datetime | None = None
) -> list[TierProgress]:
    """Where each member stands: three statements (program, ladder, the members' qualifying
    transactions in the window) for any number of members."""
    now = now or utcnow()
    program = await get_program(session)
    window = timedelta(days=program.tier_window_days)
    tiers = await list_tiers(session)
    qualifying: dict[int, list[Any]] = {member.id: [] for member in members}
    rows = await session.execute(
        select(
            LedgerTransaction.member_id,
            LedgerTransaction.qualifying_at,
            LedgerTransaction.qualifying_points,
        )
        .where(
            LedgerTransaction.member_id.in_(list(qualifying)),
            LedgerTransaction.qualifying_at > now - window,
            LedgerTransaction.qualifying_at <= now,
            LedgerTransaction.qualifying_points != 0,
        )
        .order_by(LedgerTransaction.member_id, LedgerTransaction.qualifying_at)
    )
    for row in rows:
        qualifying[row.member_id].append(row)
    return [
        _progress(member, tiers, qualifying[member.id], now=now, window=window)
        for member in members
    ]


def _progress(
    member: Member, tiers: list[Tier], rows: list[Any], *, now: datetime, window: timedelta
) -> TierProgress:
    current = next((t for t in tiers if t.id == member.tier_id), None)
    points = sum(row.qualifying_points for row in rows)
    above = [t for t in tiers if t.rank > (-1 if current is None else current.rank)]
    upcoming = min(above, key=lambda t: t.rank) if above else None
    return TierProgress(
        current=current,
        next=upcoming,
        qualifying_points=points,
        points_to_next=None if upcoming is None else max(upcoming.threshold - points, 0),
        window_starts_at=now - window,
        window_ends_at=rows[0].qualifying_at + window if rows else None,
        tier_expires_at=_expiry(member, current, rows, points, window),
    )


def _expiry(
    member: Member,
    current: Tier | None,
    rows: list[Any],
    points: int,
    window: timedelta,
) -> datetime | None:
    """Retention end if it runs; else when the window drops points below the threshold, plus
    retention; None for a tier that needs no points."""
    if current is None:
        return None
    if member.tier_retained_until is not None:
        return member.tier_retained_until
    if current.threshold == 0:
        return None
    remaining = points
    for row in rows:
        remaining -= row.qualifying_points
        if remaining < current.threshold:
            expires: datetime = row.qualifying_at + window + timedelta(days=current.retention_days)
            return expires
    return None


async def tier_history(
    session: AsyncSession, *, member_ids: Sequence[int], page: PageRequest
) -> dict[int, Page[TierChange]]:
    """Each member's tier changes, newest first."""
    return await newest_first_by_owner(
        session, TierChange, owner=TierChange.member_id, owner_ids=member_ids, page=page
    )


async def _check_ladder(
    session: AsyncSession, *, rank: int, threshold: int, ignore: int | None = None
) -> None:
    """Ranks are unique and a higher rank needs strictly more qualifying points (a rank
    taken is the one error: the thresholds of a ladder it cannot join say nothing)."""
    others = [t for t in await list_tiers(session) if t.id != ignore]
    if any(t.rank == rank for t in others):
        raise invalid_at(f"A tier with rank {rank} exists.", "rank")
    below = [t for t in others if t.rank < rank and t.threshold >= threshold]
    above = [t for t in others if t.rank > rank and t.threshold <= threshold]
    if below or above:
        clash = (below or above)[0]
        raise invalid_at(
            f"Thresholds must rise with rank: tier {clash.name!r} (rank {clash.rank}) "
            f"has threshold {clash.threshold}.",
            "threshold",
        )


async def tier_at(
    session: AsyncSession, *, member: Member, at: datetime, current_multiplier: Decimal
) -> tuple[int | None, Decimal]:
    """The member's tier (id, multiplier) at ``at``: the current one unless ``at`` precedes
    the last tier change, when the history says which tier was held then."""
    if member.tier_since is None or at >= member.tier_since:
        return member.tier_id, current_multiplier
    before = (
        await session.execute(
            select(TierChange.to_tier_id)
            .where(TierChange.member_id == member.id, TierChange.at <= at)
            .order_by(TierChange.id.desc())
            .limit(1)
        )
    ).first()
    if before is None:
        before = (
            await session.execute(
                select(TierChange.from_tier_id)
                .where(TierChange.member_id == member.id, TierChange.at > at)
                .order_by(TierChange.id)
                .limit(1)
            )
        ).first()
    held = member.tier_id if before is None else before[0]
    if held is None:
        return None, Decimal(1)
    multiplier = await session.scalar(select(Tier.multiplier).where(Tier.id == held))
    return held, Decimal(1) if multiplier is None else multiplier
