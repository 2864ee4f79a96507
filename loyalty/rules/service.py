"""Earning-rule administration: create, edit (a new version each time), archive, list.

Validation turns what an admin sends into the stored, normalised form the rule book
compiles; nonsense (an end before the start, a multiplier that adds nothing, an unknown
tier, line filters on an event rule) is ``INVALID`` and nothing is written.
"""

from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import uuid4

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from loyalty.db import lock_by_id, utcnow
from loyalty.errors import DomainError, DomainErrors, invalid
from loyalty.pagination import Page, PageRequest, make_page
from loyalty.program.models import PROGRAM_ID, Program
from loyalty.rules.definition import (
    Conditions,
    Effect,
    Limits,
    RuleDraft,
    effect_of,
    event_rule_errors,
)
from loyalty.rules.models import (
    CURRENT_VERSION,
    EarningRule,
    EarningRuleVersion,
    RuleAward,
    live_versions,
)
from loyalty.segments import service as segments
from loyalty.tiers.models import Tier

BIRTHDAY = "birthday"
"""The event type the ``birthday-bonus`` job awards; recordEvent refuses it."""
FEEDBACK = "feedback"
"""The event type submitFeedback records (attributes: kind and score); recordEvent refuses it."""


@dataclass(frozen=True)
class RuleView:
    rule: EarningRule
    version: EarningRuleVersion
    """The current version (for an archived rule: the last one)."""


async def create_rule(session: AsyncSession, *, rule: RuleDraft) -> RuleView:
    now = utcnow()
    if "effect" not in rule.model_fields_set:
        raise invalid("Must be given.", "effect")
    values = await _validated(
        session, {**_UNSENT, "starts_at": now, **rule.sent()}, check_references=True
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


async def update_rule(session: AsyncSession, *, rule_id: int, changes: RuleDraft) -> RuleView:
    """A new version in force from now; purchases that occurred earlier keep the old one."""
    rule = await lock_by_id(session, EarningRule, rule_id, field="id")
    if rule.archived_at is not None:
        raise invalid("An archived rule cannot be edited; create a new one.", "id")
    current = await _version(session, rule)
    # Conditions kept from the current version may name a tier deleted since: it simply
    # matches nobody, and must not block an edit of another field.
    values = await _validated(
        session,
        {**_fields_of(current), **changes.sent()},
        check_references="conditions" in changes.model_fields_set,
    )
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
        .join(EarningRuleVersion, CURRENT_VERSION)
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
        .join(EarningRuleVersion, CURRENT_VERSION)
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
    versions = await session.scalars(live_versions())
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


_UNSENT: dict[str, Any] = {name: None for name in RuleDraft.model_fields}
"""A new rule's fields before what the admin sent: null, which means each field's default."""


def _fields_of(version: EarningRuleVersion) -> dict[str, Any]:
    return {
        "name": version.name,
        "starts_at": version.starts_at,
        "ends_at": version.ends_at,
        "priority": version.priority,
        "exclusive": version.exclusive,
        "conditions": Conditions.from_stored(version.conditions),
        "effect": effect_of(version),
        "limits": Limits.from_stored(version.limits),
    }


async def _validated(
    session: AsyncSession, fields: dict[str, Any], *, check_references: bool
) -> dict[str, Any]:
    """The version's column values, once the fields hold together; else every error found."""
    errors: list[DomainError] = []
    name: str | None = fields["name"]
    if name is None:
        errors.append(invalid("Must not be empty.", "name"))
    starts_at: datetime | None = fields["starts_at"]
    ends_at: datetime | None = fields["ends_at"]
    if starts_at is not None and ends_at is not None and ends_at <= starts_at:
        errors.append(invalid("Must be after startsAt.", "endsAt"))
    conditions: Conditions = fields["conditions"] or Conditions()
    effect: Effect | None = fields["effect"]
    if effect is None:
        errors.append(invalid("Must not be null.", "effect"))
    else:
        errors.extend(event_rule_errors(conditions, effect))
    if check_references:
        errors.extend(await _reference_errors(session, conditions))
    if errors or effect is None:
        raise DomainErrors(errors)
    limits: Limits = fields["limits"] or Limits()
    return {
        "name": name,
        "starts_at": starts_at,
        "ends_at": ends_at,
        "priority": fields["priority"] or 0,
        "exclusive": bool(fields["exclusive"]),
        "conditions": conditions.stored(),
        "effect_kind": effect.kind.value,
        "effect_value": effect.value,
        "limits": limits.stored(),
    }


async def _reference_errors(session: AsyncSession, conditions: Conditions) -> list[DomainError]:
    """The tiers and segments the conditions name must exist."""
    errors: list[DomainError] = []
    if conditions.tier_ids is not None:
        known = set(
            (await session.scalars(select(Tier.id).where(Tier.id.in_(conditions.tier_ids)))).all()
        )
        if unknown := conditions.tier_ids - known:
            errors.append(
                invalid(f"{len(unknown)} of these tiers do not exist.", "conditions", "tierIds")
            )
    if conditions.segment_ids is not None:
        try:
            await segments.require_segments(
                session, sorted(conditions.segment_ids), "conditions", "segmentIds"
            )
        except DomainError as error:
            errors.append(error)
    return errors
