"""Earning-rule administration: create, edit (a new version each time), archive, list.

Validation turns what an admin sends into the stored, normalised form the rule book
compiles; nonsense (an end before the start, a multiplier that adds nothing, an unknown
tier, line filters on an event rule) is ``INVALID`` and nothing is written.
"""

import re
from dataclasses import dataclass, fields
from datetime import datetime
from decimal import Decimal
from typing import Any
from uuid import uuid4

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from loyalty.db import lock_by_id, utcnow
from loyalty.errors import invalid
from loyalty.money import parse_decimal
from loyalty.pagination import Page, PageRequest, make_page
from loyalty.program.models import PROGRAM_ID, Program
from loyalty.rules.engine import DAYS_OF_WEEK
from loyalty.rules.models import EarningRule, EarningRuleVersion, EffectKind, RuleAward
from loyalty.segments import service as segments
from loyalty.tiers.models import Tier
from loyalty.validation import UNSET, Unset, instant, int_between, required_text

MAX_LIMIT = 1_000_000_000
EVENT_TYPE = re.compile(r"^[a-z0-9][a-z0-9_.:-]{0,63}$")
BIRTHDAY = "birthday"
"""The event type the ``birthday-bonus`` job awards; recordEvent refuses it."""
FEEDBACK = "feedback"
"""The event type submitFeedback records (attributes: kind and score); recordEvent refuses it."""


@dataclass(frozen=True)
class ConditionsIn:
    channels: list[str] | None = None
    store_ids: list[str] | None = None
    tier_ids: list[int] | None = None
    min_total: object | None = None
    days_of_week: list[str] | None = None
    hours: list[int] | None = None
    first_purchase: bool | None = None
    skus: list[str] | None = None
    categories: list[str] | None = None
    event_type: str | None = None
    segment_ids: list[int] | None = None


@dataclass(frozen=True)
class EffectIn:
    kind: str
    value: object


@dataclass(frozen=True)
class LimitsIn:
    per_purchase: int | None = None
    per_member_per_day: int | None = None
    per_member_per_week: int | None = None
    per_member_per_month: int | None = None
    per_member_total: int | None = None
    budget: int | None = None


@dataclass(frozen=True)
class RuleIn:
    """What an admin sends; on an update, UNSET fields keep the current version's value."""

    name: str | Unset = UNSET
    starts_at: datetime | Unset | None = UNSET
    ends_at: datetime | Unset | None = UNSET
    priority: int | Unset | None = UNSET
    exclusive: bool | Unset | None = UNSET
    conditions: ConditionsIn | Unset | None = UNSET
    effect: EffectIn | Unset = UNSET
    limits: LimitsIn | Unset | None = UNSET


@dataclass(frozen=True)
class RuleView:
    rule: EarningRule
    version: EarningRuleVersion
    """The current version (for an archived rule: the last one)."""


async def create_rule(session: AsyncSession, *, rule: RuleIn) -> RuleView:
    now = utcnow()
    if rule.effect is UNSET:
        raise invalid("Must be given.", "effect")
    values = await _validated(
        session,
        {
            "name": rule.name,
            "starts_at": now if rule.starts_at is UNSET else rule.starts_at,
            "ends_at": None if rule.ends_at is UNSET else rule.ends_at,
            "priority": 0 if rule.priority is UNSET else rule.priority,
            "exclusive": False if rule.exclusive is UNSET else rule.exclusive,
            "conditions": None if rule.conditions is UNSET else rule.conditions,
            "effect": rule.effect,
            "limits": None if rule.limits is UNSET else rule.limits,
        },
    )
    created = EarningRule(version=1, budget_used=0, created_at=now)
    session.add(created)
    await session.flush()
    version = EarningRuleVersion(
        rule_id=created.id, version=1, valid_from=None, created_at=now, **values
    )
    session.add(version)
    await _rules_changed(session)
    return RuleView(rule=created, version=version)


async def update_rule(session: AsyncSession, *, rule_id: int, changes: RuleIn) -> RuleView:
    """A new version in force from now; purchases that occurred earlier keep the old one."""
    rule = await lock_by_id(session, EarningRule, rule_id, field="id")
    if rule.archived_at is not None:
        raise invalid("An archived rule cannot be edited; create a new one.", "id")
    current = await _version(session, rule)
    sent = {
        f.name: getattr(changes, f.name)
        for f in fields(changes)
        if getattr(changes, f.name) is not UNSET
    }
    merged = {
        "name": current.name,
        "starts_at": current.starts_at,
        "ends_at": current.ends_at,
        "priority": current.priority,
        "exclusive": current.exclusive,
        "conditions": _conditions_in(current.conditions),
        "effect": EffectIn(kind=current.effect_kind, value=str(current.effect_value)),
        "limits": LimitsIn(**current.limits),
        **sent,
    }
    # Conditions kept from the current version may name a tier deleted since: it simply
    # matches nobody, and must not block an edit of another field.
    values = await _validated(session, merged, check_tiers="conditions" in sent)
    # Never before the version it closes (clocks of several servers may disagree): versions
    # must not overlap, or one purchase could earn two versions of a rule.
    now = max(utcnow(), current.valid_from or utcnow())
    current.valid_to = now
    rule.version += 1
    version = EarningRuleVersion(
        rule_id=rule.id, version=rule.version, valid_from=now, created_at=now, **values
    )
    session.add(version)
    await _rules_changed(session)
    return RuleView(rule=rule, version=version)


async def archive_rule(session: AsyncSession, *, rule_id: int) -> RuleView:
    """The rule stops applying from now (a purchase that occurred earlier still earns it)."""
    rule = await lock_by_id(session, EarningRule, rule_id, field="id")
    current = await _version(session, rule)
    if rule.archived_at is None:
        now = utcnow()
        rule.archived_at = now
        current.valid_to = now
        await _rules_changed(session)
    return RuleView(rule=rule, version=current)


async def list_rules(
    session: AsyncSession, *, page: PageRequest, include_archived: bool
) -> Page[RuleView]:
    statement = (
        select(EarningRule, EarningRuleVersion)
        .join(
            EarningRuleVersion,
            (EarningRuleVersion.rule_id == EarningRule.id)
            & (EarningRuleVersion.version == EarningRule.version),
        )
        .order_by(EarningRule.id.desc())
        .limit(page.first + 1)
    )
    if not include_archived:
        statement = statement.where(EarningRule.archived_at.is_(None))
    if page.after is not None:
        statement = statement.where(EarningRule.id < page.after)
    views = [RuleView(rule=row[0], version=row[1]) for row in await session.execute(statement)]
    return make_page(views, [view.rule.id for view in views], page)


async def rules_by_id(session: AsyncSession, rule_ids: list[int]) -> list[RuleView | None]:
    rows = await session.execute(
        select(EarningRule, EarningRuleVersion)
        .join(
            EarningRuleVersion,
            (EarningRuleVersion.rule_id == EarningRule.id)
            & (EarningRuleVersion.version == EarningRule.version),
        )
        .where(EarningRule.id.in_(rule_ids))
    )
    found = {row[0].id: RuleView(rule=row[0], version=row[1]) for row in rows}
    return [found.get(rule_id) for rule_id in rule_ids]


async def rule_ids_of_entries(session: AsyncSession, entry_ids: list[int]) -> list[int | None]:
    """The rule behind each BONUS posting (None for bonuses no rule gave, e.g. referrals)."""
    rows = await session.execute(
        select(RuleAward.entry_id, RuleAward.rule_id).where(RuleAward.entry_id.in_(entry_ids))
    )
    found = dict(rows.tuples().all())
    return [found.get(entry_id) for entry_id in entry_ids]


async def rules_naming_tier(session: AsyncSession, *, tier_id: int) -> int:
    """Live rules whose current version has the tier among its conditions."""
    versions = await session.scalars(
        select(EarningRuleVersion)
        .join(
            EarningRule,
            (EarningRule.id == EarningRuleVersion.rule_id)
            & (EarningRule.version == EarningRuleVersion.version),
        )
        .where(EarningRule.archived_at.is_(None))
    )
    return sum(tier_id in (version.conditions.get("tier_ids") or ()) for version in versions)


async def points_awarded(session: AsyncSession, *, rule_id: int) -> int:
    """What the rule has given, net of refunds, over all its versions."""
    total = await session.scalar(
        select(func.coalesce(func.sum(RuleAward.points), 0)).where(RuleAward.rule_id == rule_id)
    )
    return int(total or 0)


async def versions_of(session: AsyncSession, *, rule_id: int) -> list[EarningRuleVersion]:
    return list(
        (
            await session.scalars(
                select(EarningRuleVersion)
                .where(EarningRuleVersion.rule_id == rule_id)
                .order_by(EarningRuleVersion.version)
            )
        ).all()
    )


async def _version(session: AsyncSession, rule: EarningRule) -> EarningRuleVersion:
    return (
        await session.scalars(
            select(EarningRuleVersion).where(
                EarningRuleVersion.rule_id == rule.id, EarningRuleVersion.version == rule.version
            )
        )
    ).one()


async def _rules_changed(session: AsyncSession) -> None:
    """A new token: every process reloads its rule book on its next purchase."""
    await session.flush()
    await session.execute(
        update(Program).where(Program.id == PROGRAM_ID).values(rules_token=str(uuid4()))
    )


def _conditions_in(stored: dict[str, Any]) -> ConditionsIn:
    days = stored.get("days_of_week")
    return ConditionsIn(
        **{
            **stored,
            "days_of_week": None if days is None else [DAYS_OF_WEEK[day] for day in days],
        }
    )


async def _validated(
    session: AsyncSession, sent: dict[str, Any], *, check_tiers: bool = True
) -> dict[str, Any]:
    name = required_text(sent["name"] if sent["name"] is not UNSET else None, 200, "name")
    starts_at = None if sent["starts_at"] is None else instant(sent["starts_at"], "startsAt")
    ends_at = None if sent["ends_at"] is None else instant(sent["ends_at"], "endsAt")
    if starts_at is not None and ends_at is not None and ends_at <= starts_at:
        raise invalid("Must be after startsAt.", "endsAt")
    priority = int_between(
        0 if sent["priority"] is None else sent["priority"], -1_000_000, 1_000_000, "priority"
    )
    effect: EffectIn | None = sent["effect"]
    if effect is None:
        raise invalid("Must not be null.", "effect")
    kind, value = _effect(effect)
    conditions = await _conditions(
        session, sent["conditions"] or ConditionsIn(), check_tiers=check_tiers
    )
    if conditions.get("event_type") is not None:
        if kind != EffectKind.FIXED_BONUS:
            raise invalid("An event rule's effect must be FIXED_BONUS.", "effect", "kind")
        for name_, field in _PURCHASE_ONLY.items():
            if conditions.get(name_) is not None:
                raise invalid("Does not apply to an event rule.", "conditions", field)
    return {
        "name": name,
        "starts_at": starts_at,
        "ends_at": ends_at,
        "priority": priority,
        "exclusive": bool(sent["exclusive"]),
        "conditions": conditions,
        "effect_kind": kind,
        "effect_value": value,
        "limits": _limits(sent["limits"] or LimitsIn()),
    }


_PURCHASE_ONLY = {
    "channels": "channels",
    "store_ids": "storeIds",
    "min_total": "minTotal",
    "first_purchase": "firstPurchase",
    "skus": "skus",
    "categories": "categories",
}


def _effect(effect: EffectIn) -> tuple[EffectKind, Decimal]:
    kind = EffectKind(effect.kind)
    value = parse_decimal(effect.value, "effect", "value")
    if kind == EffectKind.MULTIPLY:
        if not Decimal(1) < value <= Decimal(100):
            raise invalid(
                "A multiplier must be above 1 (it adds base × (value − 1)) and at most 100.",
                "effect",
                "value",
            )
    elif not Decimal(0) < value <= Decimal(1_000_000):
        raise invalid("Must be above 0 and at most 1000000.", "effect", "value")
    return kind, value


async def _conditions(
    session: AsyncSession, given: ConditionsIn, *, check_tiers: bool
) -> dict[str, Any]:
    def listed(values: list[Any] | None, field: str) -> list[Any] | None:
        if values is None:
            return None
        if not values:
            raise invalid(
                "Give at least one value, or leave the condition out.", "conditions", field
            )
        if len(values) > 1000:
            raise invalid("At most 1000 values.", "conditions", field)
        return values

    def texts(values: list[str] | None, field: str, max_length: int) -> list[str] | None:
        checked = listed(values, field)
        if checked is None:
            return None
        return sorted({required_text(v, max_length, "conditions", field) for v in checked})

    tier_ids = listed(given.tier_ids, "tierIds")
    if tier_ids is not None and check_tiers:
        known = set((await session.scalars(select(Tier.id).where(Tier.id.in_(tier_ids)))).all())
        if unknown := [t for t in tier_ids if t not in known]:
            raise invalid(f"{len(unknown)} of these tiers do not exist.", "conditions", "tierIds")
        tier_ids = sorted(set(tier_ids))
    segment_ids = given.segment_ids
    if segment_ids is not None and check_tiers:
        segment_ids = await segments.require_segments(
            session, segment_ids, "conditions", "segmentIds"
        )
    hours = listed(given.hours, "hours")
    if hours is not None:
        hours = sorted({int_between(h, 0, 23, "conditions", "hours") for h in hours})
    days = listed(given.days_of_week, "daysOfWeek")
    min_total = None
    if given.min_total is not None:
        amount = parse_decimal(given.min_total, "conditions", "minTotal")
        if amount < 0:
            raise invalid("Must not be negative.", "conditions", "minTotal")
        min_total = str(amount)
    event_type = None
    if given.event_type is not None:
        event_type = given.event_type.strip().lower()
        if not EVENT_TYPE.match(event_type):
            raise invalid(
                "Lower-case letters, digits and _ . : - (at most 64).", "conditions", "eventType"
            )
    stored = {
        "channels": None
        if given.channels is None
        else sorted(set(listed(given.channels, "channels") or [])),
        "store_ids": texts(given.store_ids, "storeIds", 64),
        "tier_ids": tier_ids,
        "min_total": min_total,
        "days_of_week": None if days is None else sorted({DAYS_OF_WEEK.index(d) for d in days}),
        "hours": hours,
        "first_purchase": given.first_purchase,
        "skus": texts(given.skus, "skus", 64),
        "categories": texts(given.categories, "categories", 64),
        "event_type": event_type,
        "segment_ids": segment_ids,
    }
    return {name: value for name, value in stored.items() if value is not None}


def _limits(given: LimitsIn) -> dict[str, int]:
    checked = {}
    for f in fields(given):
        value = getattr(given, f.name)
        if value is not None:
            field = "".join(
                part if i == 0 else part.capitalize() for i, part in enumerate(f.name.split("_"))
            )
            checked[f.name] = int_between(value, 1, MAX_LIMIT, "limits", field)
    return checked
