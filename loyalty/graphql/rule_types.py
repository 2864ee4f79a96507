"""Earning-rule output types and the points breakdown that explains a purchase's points."""

from datetime import datetime
from enum import StrEnum
from typing import Any

import strawberry
from strawberry import Parent

from loyalty.graphql.scalars import DecimalString
from loyalty.ids import encode_id
from loyalty.money import plain
from loyalty.rules import service as rules
from loyalty.rules.engine import DAYS_OF_WEEK
from loyalty.rules.models import EarningRuleVersion as VersionRow
from loyalty.rules.models import EffectKind

EarningEffectKind = strawberry.enum(EffectKind, name="EarningEffectKind")


@strawberry.enum
class DayOfWeek(StrEnum):
    MONDAY = "MONDAY"
    TUESDAY = "TUESDAY"
    WEDNESDAY = "WEDNESDAY"
    THURSDAY = "THURSDAY"
    FRIDAY = "FRIDAY"
    SATURDAY = "SATURDAY"
    SUNDAY = "SUNDAY"


@strawberry.enum
class EarningRuleStatus(StrEnum):
    SCHEDULED = "SCHEDULED"
    ACTIVE = "ACTIVE"
    ENDED = "ENDED"
    ARCHIVED = "ARCHIVED"


@strawberry.type
class EarningRuleConditions:
    channels: list[str] | None
    store_ids: list[str] | None
    tier_ids: list[strawberry.ID] | None
    min_total: DecimalString | None
    days_of_week: list[DayOfWeek] | None = strawberry.field(
        description="In the program's time zone."
    )
    hours: list[int] | None = strawberry.field(
        description="Hours of the day (0-23) in the program's time zone."
    )
    first_purchase: bool | None
    skus: list[str] | None
    categories: list[str] | None
    event_type: str | None = strawberry.field(
        description="Set: the rule rewards this event type only (recordEvent); unset: purchases."
    )


@strawberry.type
class EarningRuleEffect:
    kind: EarningEffectKind
    value: DecimalString


@strawberry.type
class EarningRuleLimits:
    per_purchase: int | None
    per_member_per_day: int | None
    per_member_per_week: int | None
    per_member_per_month: int | None
    per_member_total: int | None
    budget: int | None = strawberry.field(description="Points the rule may award in all.")


def conditions_of(stored: dict[str, Any]) -> EarningRuleConditions:
    tiers = stored.get("tier_ids")
    days = stored.get("days_of_week")
    return EarningRuleConditions(
        channels=stored.get("channels"),
        store_ids=stored.get("store_ids"),
        tier_ids=None if tiers is None else [strawberry.ID(encode_id("Tier", t)) for t in tiers],
        min_total=stored.get("min_total"),
        days_of_week=None if days is None else [DayOfWeek(DAYS_OF_WEEK[d]) for d in days],
        hours=stored.get("hours"),
        first_purchase=stored.get("first_purchase"),
        skus=stored.get("skus"),
        categories=stored.get("categories"),
        event_type=stored.get("event_type"),
    )


@strawberry.type(description="One version of a rule: an edit creates the next one.")
class EarningRuleVersion:
    version: int
    name: str
    valid_from: datetime | None = strawberry.field(
        description="From when this version applies to occurredAt (null: the first version)."
    )
    valid_to: datetime | None = strawberry.field(description="Until when; null while current.")
    starts_at: datetime | None
    ends_at: datetime | None
    priority: int
    exclusive: bool

    @strawberry.field
    def conditions(self, root: Parent[VersionRow]) -> EarningRuleConditions:
        return conditions_of(root.conditions)

    @strawberry.field
    def effect(self, root: Parent[VersionRow]) -> EarningRuleEffect:
        return EarningRuleEffect(
            kind=EffectKind(root.effect_kind), value=DecimalString(plain(root.effect_value))
        )

    @strawberry.field
    def limits(self, root: Parent[VersionRow]) -> EarningRuleLimits:
        return EarningRuleLimits(**{name: root.limits.get(name) for name in _LIMITS})


_LIMITS = (
    "per_purchase",
    "per_member_per_day",
    "per_member_per_week",
    "per_member_per_month",
    "per_member_total",
    "budget",
)


@strawberry.type(description="An earning rule (campaign) as its current version defines it.")
class EarningRule:
    @strawberry.field
    def id(self, root: Parent[rules.RuleView]) -> strawberry.ID:
        return strawberry.ID(encode_id("EarningRule", root.rule.id))

    @strawberry.field
    def name(self, root: Parent[rules.RuleView]) -> str:
        return root.version.name

    @strawberry.field
    def starts_at(self, root: Parent[rules.RuleView]) -> datetime | None:
        return root.version.starts_at

    @strawberry.field
    def ends_at(self, root: Parent[rules.RuleView]) -> datetime | None:
        return root.version.ends_at

    @strawberry.field(description="Higher runs first; ties: the older rule first.")
    def priority(self, root: Parent[rules.RuleView]) -> int:
        return root.version.priority

    @strawberry.field(description="When it awards points, the rules after it do not apply.")
    def exclusive(self, root: Parent[rules.RuleView]) -> bool:
        return root.version.exclusive

    @strawberry.field
    def conditions(self, root: Parent[rules.RuleView]) -> EarningRuleConditions:
        return conditions_of(root.version.conditions)

    @strawberry.field
    def effect(self, root: Parent[rules.RuleView]) -> EarningRuleEffect:
        return EarningRuleVersion.effect(self, root.version)  # type: ignore[arg-type]

    @strawberry.field
    def limits(self, root: Parent[rules.RuleView]) -> EarningRuleLimits:
        return EarningRuleVersion.limits(self, root.version)  # type: ignore[arg-type]

    @strawberry.field(description="The current version's number.")
    def version(self, root: Parent[rules.RuleView]) -> int:
        return root.rule.version

    @strawberry.field
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

    @strawberry.field
    def created_at(self, root: Parent[rules.RuleView]) -> datetime:
        return root.rule.created_at

    @strawberry.field
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
    points: int
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
