"""Earning-rule output types and the points breakdown that explains a purchase's points."""

from dataclasses import asdict
from datetime import datetime
from enum import StrEnum
from typing import Any

import strawberry
from strawberry import Parent

from loyalty.graphql.scalars import DecimalString
from loyalty.ids import encode_id
from loyalty.money import plain
from loyalty.rules import service as rules
from loyalty.rules.definition import DAYS_OF_WEEK, Conditions, Effect, Limits, effect_of
from loyalty.rules.models import EarningRuleVersion as VersionRow
from loyalty.rules.models import EffectKind

# strawberry.enum registers the domain enum in place; the plain alias stays a type for mypy.
EarningEffectKind = EffectKind
strawberry.enum(
    EarningEffectKind,
    name="EarningEffectKind",
    description=(
        "How a rule's value becomes points, on the matching lines' amount when the rule "
        "names SKUs or categories, else on the total: MULTIPLY adds (value − 1) × the base "
        "points of that amount; FIXED_BONUS adds value; POINTS_PER_UNIT adds value per unit "
        "bought; POINTS_PER_CURRENCY adds value per 1.00 spent. Results are floored."
    ),
)


@strawberry.enum(description="A day of the week, in the program's time zone.")
class DayOfWeek(StrEnum):
    MONDAY = "MONDAY"
    TUESDAY = "TUESDAY"
    WEDNESDAY = "WEDNESDAY"
    THURSDAY = "THURSDAY"
    FRIDAY = "FRIDAY"
    SATURDAY = "SATURDAY"
    SUNDAY = "SUNDAY"


@strawberry.enum(
    description=(
        "Where a rule stands now: SCHEDULED (before startsAt), ACTIVE, ENDED (past endsAt) "
        "or ARCHIVED."
    )
)
class EarningRuleStatus(StrEnum):
    SCHEDULED = "SCHEDULED"
    ACTIVE = "ACTIVE"
    ENDED = "ENDED"
    ARCHIVED = "ARCHIVED"


@strawberry.type(
    description="When a rule applies: every condition that is not null must hold. Admin only."
)
class EarningRuleConditions:
    channels: list[str] | None = strawberry.field(
        description="Channel names purchases must be in; null: any."
    )
    store_ids: list[str] | None = strawberry.field(
        description="Stores purchases must be in; null: any."
    )
    tier_ids: list[strawberry.ID] | None = strawberry.field(
        description="Tiers the member must hold when buying; null: any."
    )
    min_total: DecimalString | None = strawberry.field(
        description="Smallest purchase total that qualifies; null: any."
    )
    days_of_week: list[DayOfWeek] | None = strawberry.field(
        description="In the program's time zone."
    )
    hours: list[int] | None = strawberry.field(
        description="Hours of the day (0-23) in the program's time zone."
    )
    first_purchase: bool | None = strawberry.field(
        description="true: the member's first purchase only; false: all but it; null: any."
    )
    skus: list[str] | None = strawberry.field(
        description="The rule earns on lines with these SKUs (or categories); null: any."
    )
    categories: list[str] | None = strawberry.field(
        description="The rule earns on lines in these categories (or SKUs); null: any."
    )
    event_type: str | None = strawberry.field(
        description="Set: the rule rewards this event type only (recordEvent); unset: purchases."
    )
    segment_ids: list[strawberry.ID] | None = strawberry.field(
        description="Segments the member must be in one of when it is recorded; null: any."
    )


@strawberry.type(description="What a rule awards when its conditions hold. Admin only.")
class EarningRuleEffect:
    kind: EarningEffectKind = strawberry.field(description="How value turns into points.")
    value: DecimalString = strawberry.field(
        description="The multiplier, bonus or rate, as an exact decimal."
    )


@strawberry.type(
    description="Caps on a rule's points; null: no cap. Periods are in the program's time zone."
)
class EarningRuleLimits:
    per_purchase: int | None = strawberry.field(description="Points per purchase at most.")
    per_member_per_day: int | None = strawberry.field(
        description="Points per member per calendar day at most."
    )
    per_member_per_week: int | None = strawberry.field(
        description="Points per member per week (from Monday) at most."
    )
    per_member_per_month: int | None = strawberry.field(
        description="Points per member per calendar month at most."
    )
    per_member_total: int | None = strawberry.field(
        description="Points per member over the rule's life at most."
    )
    budget: int | None = strawberry.field(description="Points the rule may award in all.")


def conditions_out(conditions: Conditions) -> EarningRuleConditions:
    """The one mapping of a rule's conditions to their GraphQL type."""

    def ids(type_name: str, keys: frozenset[int] | None) -> list[strawberry.ID] | None:
        return (
            None if keys is None else [strawberry.ID(encode_id(type_name, k)) for k in sorted(keys)]
        )

    def listed(values: frozenset[Any] | None) -> list[Any] | None:
        return None if values is None else sorted(values)

    days = conditions.days_of_week
    min_total = conditions.min_total
    return EarningRuleConditions(
        channels=listed(conditions.channels),
        store_ids=listed(conditions.store_ids),
        tier_ids=ids("Tier", conditions.tier_ids),
        min_total=None if min_total is None else DecimalString(str(min_total)),
        days_of_week=None if days is None else [DayOfWeek(DAYS_OF_WEEK[d]) for d in sorted(days)],
        hours=listed(conditions.hours),
        first_purchase=conditions.first_purchase,
        skus=listed(conditions.skus),
        categories=listed(conditions.categories),
        event_type=conditions.event_type,
        segment_ids=ids("Segment", conditions.segment_ids),
    )


def effect_out(effect: Effect) -> EarningRuleEffect:
    return EarningRuleEffect(kind=effect.kind, value=DecimalString(plain(effect.value)))


def limits_out(limits: Limits) -> EarningRuleLimits:
    return EarningRuleLimits(**asdict(limits))


@strawberry.type(description="One version of a rule: an edit creates the next one. Admin only.")
class EarningRuleVersion:
    version: int = strawberry.field(description="1 for the rule as created, then one per edit.")
    name: str = strawberry.field(description="The rule's name in this version.")
    valid_from: datetime | None = strawberry.field(
        description="From when this version applies to occurredAt (null: the first version)."
    )
    valid_to: datetime | None = strawberry.field(description="Until when; null while current.")
    starts_at: datetime | None = strawberry.field(
        description="The rule's start in this version; null: none."
    )
    ends_at: datetime | None = strawberry.field(
        description="The rule's end in this version; null: none."
    )
    priority: int = strawberry.field(description="The rule's priority in this version.")
    exclusive: bool = strawberry.field(description="Whether this version was exclusive.")

    @strawberry.field(description="The conditions in this version.")
    def conditions(self, root: Parent[VersionRow]) -> EarningRuleConditions:
        return conditions_out(Conditions.from_stored(root.conditions))

    @strawberry.field(description="The effect in this version.")
    def effect(self, root: Parent[VersionRow]) -> EarningRuleEffect:
        return effect_out(effect_of(root))

    @strawberry.field(description="The caps in this version.")
    def limits(self, root: Parent[VersionRow]) -> EarningRuleLimits:
        return limits_out(Limits.from_stored(root.limits))


@strawberry.type(
    description=(
        "An earning rule (campaign) as its current version defines it. Everyone may read id "
        "and name (points breakdowns name rules); the other fields are admin only."
    )
)
class EarningRule:
    @strawberry.field(description="Opaque identifier of the rule.")
    def id(self, root: Parent[rules.RuleView]) -> strawberry.ID:
        return strawberry.ID(encode_id("EarningRule", root.rule.id))

    @strawberry.field(description="Shown in points breakdowns.")
    def name(self, root: Parent[rules.RuleView]) -> str:
        return root.version.name

    @strawberry.field(description="From when it applies; null: no start.")
    def starts_at(self, root: Parent[rules.RuleView]) -> datetime | None:
        return root.version.starts_at

    @strawberry.field(description="When it stops applying (exclusive); null: never.")
    def ends_at(self, root: Parent[rules.RuleView]) -> datetime | None:
        return root.version.ends_at

    @strawberry.field(description="Higher runs first; ties: the older rule first.")
    def priority(self, root: Parent[rules.RuleView]) -> int:
        return root.version.priority

    @strawberry.field(description="When it awards points, the rules after it do not apply.")
    def exclusive(self, root: Parent[rules.RuleView]) -> bool:
        return root.version.exclusive

    @strawberry.field(description="When it applies.")
    def conditions(self, root: Parent[rules.RuleView]) -> EarningRuleConditions:
        return conditions_out(Conditions.from_stored(root.version.conditions))

    @strawberry.field(description="What it awards.")
    def effect(self, root: Parent[rules.RuleView]) -> EarningRuleEffect:
        return effect_out(effect_of(root.version))

    @strawberry.field(description="Its caps and budget.")
    def limits(self, root: Parent[rules.RuleView]) -> EarningRuleLimits:
        return limits_out(Limits.from_stored(root.version.limits))

    @strawberry.field(description="The current version's number.")
    def version(self, root: Parent[rules.RuleView]) -> int:
        return root.rule.version

    @strawberry.field(description="Where it stands now, from its window and archiving.")
    def status(self, root: Parent[rules.RuleView]) -> EarningRuleStatus:
        now = datetime.now(tz=root.rule.created_at.tzinfo)
        version = root.version
        if root.rule.archived_at is not None:
            return EarningRuleStatus.ARCHIVED
        if version.ends_at is not None and version.ends_at <= now:
            return EarningRuleStatus.ENDED
        if version.starts_at is not None and version.starts_at > now:
            return EarningRuleStatus.SCHEDULED
        return EarningRuleStatus.ACTIVE

    @strawberry.field(description="When it was created.")
    def created_at(self, root: Parent[rules.RuleView]) -> datetime:
        return root.rule.created_at

    @strawberry.field(description="When archiveEarningRule stopped it; null if not archived.")
    def archived_at(self, root: Parent[rules.RuleView]) -> datetime | None:
        return root.rule.archived_at

    @strawberry.field(description="Points counted against the budget so far (net of refunds).")
    def budget_used(self, root: Parent[rules.RuleView]) -> int:
        return root.rule.budget_used

    @strawberry.field(description="Points the rule has awarded, net of refunds.")
    async def points_awarded(self, root: Parent[rules.RuleView], info: strawberry.Info) -> int:
        return await info.context.read(
            lambda session: rules.points_awarded(session, rule_id=root.rule.id)
        )

    @strawberry.field(description="Every version, oldest first.")
    async def versions(
        self, root: Parent[rules.RuleView], info: strawberry.Info
    ) -> list[EarningRuleVersion]:
        return await info.context.read(
            lambda session: rules.versions_of(session, rule_id=root.rule.id)
        )


@strawberry.type(description="Part of a purchase's points: base points (rule null) or a rule's.")
class PointsBreakdownItem:
    points: int = strawberry.field(description="Points this part contributed.")
    description: str = strawberry.field(
        description="'Base points', or the rule's name when it awarded the points."
    )
    rule_id: strawberry.Private[int | None]

    @strawberry.field(description="The rule that awarded these points; null for base points.")
    async def rule(self, info: strawberry.Info) -> EarningRule | None:
        if self.rule_id is None:
            return None
        return await info.context.loaders.earning_rule.load(self.rule_id)


def breakdown_items(stored: list[dict[str, Any]]) -> list[PointsBreakdownItem]:
    return [
        PointsBreakdownItem(
            points=item["points"],
            description="Base points" if item["rule_id"] is None else item["name"],
            rule_id=item["rule_id"],
        )
        for item in stored
    ]
