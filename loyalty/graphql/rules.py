"""Earning rules (admin): their inputs, mapped onto the rule's one definition, and payload."""

from collections.abc import Callable
from datetime import datetime
from typing import Annotated, Any

import strawberry
from strawberry import UNSET

from loyalty.graphql.errors import Payload, mutate
from loyalty.graphql.members import Channel
from loyalty.graphql.pagination import After, Connection, First, paged
from loyalty.graphql.permissions import IsAdmin
from loyalty.graphql.rule_types import DayOfWeek, EarningEffectKind, EarningRule
from loyalty.graphql.scalars import DecimalString
from loyalty.graphql.segments import segment_keys
from loyalty.ids import key_or_zero
from loyalty.inputs import parse
from loyalty.rules import service as rules
from loyalty.rules.definition import DAYS_OF_WEEK, RuleDraft


@strawberry.input(
    description=(
        "When a rule applies: every condition given must hold; one left out or null matches "
        "anything. A list given must not be empty."
    )
)
class EarningRuleConditionsInput:
    channels: list[Channel] | None = strawberry.field(
        default=None, description="Purchases in one of these channels."
    )
    store_ids: list[str] | None = strawberry.field(
        default=None, description="Purchases in one of these stores (storeId)."
    )
    tier_ids: list[strawberry.ID] | None = strawberry.field(
        default=None, description="Members holding one of these tiers when they bought."
    )
    min_total: DecimalString | None = strawberry.field(
        default=None, description="Purchases whose total is at least this amount."
    )
    days_of_week: list[DayOfWeek] | None = strawberry.field(
        default=None, description="In the program's time zone."
    )
    hours: list[int] | None = strawberry.field(
        default=None, description="Hours of the day (0-23) in the program's time zone."
    )
    first_purchase: bool | None = strawberry.field(
        default=None, description="true: only the member's first purchase; false: all but it."
    )
    skus: list[str] | None = strawberry.field(
        default=None, description="Lines with one of these SKUs (or categories) match."
    )
    categories: list[str] | None = strawberry.field(
        default=None, description="Lines in one of these categories match."
    )
    event_type: str | None = strawberry.field(
        default=None, description="Makes it an event rule (FIXED_BONUS), e.g. app_installed."
    )
    segment_ids: list[strawberry.ID] | None = strawberry.field(
        default=None,
        description=(
            "Members in one of these segments at the time the purchase or event is recorded "
            "(see docs/analytics.md); each must exist (NOT_FOUND)."
        ),
    )


@strawberry.input(description="What a rule awards when its conditions hold.")
class EarningRuleEffectInput:
    kind: EarningEffectKind = strawberry.field(description="How value turns into points.")
    value: DecimalString = strawberry.field(
        description="MULTIPLY: above 1, at most 100; other kinds: above 0, at most 1000000."
    )


@strawberry.input(
    description="Caps on a rule's points, each 1 to 1000000000; null or left out: no cap."
)
class EarningRuleLimitsInput:
    per_purchase: int | None = strawberry.field(
        default=None, description="Points the rule gives one purchase at most."
    )
    per_member_per_day: int | None = strawberry.field(
        default=None, description="Per member per calendar day, in the program's time zone."
    )
    per_member_per_week: int | None = strawberry.field(
        default=None, description="Per member per week from Monday, in the program's time zone."
    )
    per_member_per_month: int | None = strawberry.field(
        default=None, description="Per member per calendar month, in the program's time zone."
    )
    per_member_total: int | None = strawberry.field(
        default=None, description="Per member over the rule's life."
    )
    budget: int | None = strawberry.field(
        default=None, description="Points the rule may award in all, over every member."
    )


@strawberry.input(description="A new earning rule (a campaign).")
class CreateEarningRuleInput:
    name: str = strawberry.field(
        description="Shown in points breakdowns to members, up to 200 characters."
    )
    effect: EarningRuleEffectInput = strawberry.field(description="What it awards.")
    starts_at: datetime | None = strawberry.field(default=UNSET, description="Default: now.")
    ends_at: datetime | None = strawberry.field(
        default=None, description="When it stops applying (exclusive), after startsAt; null: never."
    )
    priority: int = strawberry.field(
        default=0,
        description="Higher runs first (-1000000 to 1000000); ties: the older rule first.",
    )
    exclusive: bool = strawberry.field(
        default=False, description="When it awards points, the rules after it do not apply."
    )
    conditions: EarningRuleConditionsInput | None = strawberry.field(
        default=None, description="When it applies; null: every purchase."
    )
    limits: EarningRuleLimitsInput | None = strawberry.field(
        default=None, description="Caps and budget; null: none."
    )


@strawberry.input(description="Fields sent replace the current version's; a new version results.")
class UpdateEarningRuleInput:
    id: strawberry.ID = strawberry.field(description="The rule to edit; not an archived one.")
    name: str | None = strawberry.field(default=UNSET, description="Shown in breakdowns.")
    starts_at: datetime | None = strawberry.field(
        default=UNSET, description="From when it applies; null: no start."
    )
    ends_at: datetime | None = strawberry.field(
        default=UNSET, description="When it stops applying; null: never."
    )
    priority: int | None = strawberry.field(
        default=UNSET, description="Higher runs first; null: 0."
    )
    exclusive: bool | None = strawberry.field(
        default=UNSET, description="Whether it ends the chain when it awards; null: false."
    )
    conditions: EarningRuleConditionsInput | None = strawberry.field(
        default=UNSET, description="Replaces all conditions; null: every purchase."
    )
    effect: EarningRuleEffectInput | None = strawberry.field(
        default=UNSET, description="Replaces the effect; never null."
    )
    limits: EarningRuleLimitsInput | None = strawberry.field(
        default=UNSET, description="Replaces all caps and the budget; null: none."
    )


@strawberry.input(description="The rule to archive.")
class ArchiveEarningRuleInput:
    id: strawberry.ID = strawberry.field(description="The earning rule's id.")


@strawberry.type(
    description="The result of createEarningRule, updateEarningRule or archiveEarningRule."
)
class EarningRulePayload(Payload):
    earning_rule: EarningRule | None = strawberry.field(
        default=None, description="The rule as saved, with its current version."
    )


def _draft(input: CreateEarningRuleInput | UpdateEarningRuleInput) -> RuleDraft:
    """The one mapping of a rule input onto the rule's definition; every field error at once."""
    sent = {name: getattr(input, name) for name in RuleDraft.model_fields}
    mapped = {
        name: value if value is None else _NESTED.get(name, _same)(value)
        for name, value in sent.items()
        if value is not UNSET
    }
    return parse(RuleDraft, **mapped)


def _same(value: Any) -> Any:
    return value


def _conditions(given: EarningRuleConditionsInput) -> dict[str, Any]:
    def mapped(values: list[Any] | None, convert: Callable[[Any], Any]) -> list[Any] | None:
        return None if values is None else [convert(value) for value in values]

    return {
        **vars(given),
        "channels": mapped(given.channels, lambda channel: channel.value),
        "tier_ids": mapped(given.tier_ids, lambda tier_id: key_or_zero("Tier", tier_id)),
        "days_of_week": mapped(given.days_of_week, lambda day: DAYS_OF_WEEK.index(day.value)),
        "segment_ids": segment_keys(given.segment_ids),
    }


_NESTED: dict[str, Callable[[Any], Any]] = {
    "conditions": _conditions,
    "effect": vars,
    "limits": vars,
}


@strawberry.type
class RuleQueries:
    @strawberry.field(
        permission_classes=[IsAdmin],
        description="The earning rules, newest first. Admin only.",
    )
    async def earning_rules(
        self,
        info: strawberry.Info,
        first: First = None,
        after: After = None,
        include_archived: Annotated[
            bool, strawberry.argument(description="Also list archived rules.")
        ] = False,
    ) -> Connection[EarningRule]:
        return await paged(
            info,
            first,
            after,
            lambda request: info.context.read(
                lambda session: rules.list_rules(
                    session, page=request, include_archived=include_archived
                )
            ),
        )

    @strawberry.field(
        permission_classes=[IsAdmin],
        description="An earning rule by id, archived or not; null if none. Admin only.",
    )
    async def earning_rule(
        self,
        info: strawberry.Info,
        id: Annotated[strawberry.ID, strawberry.argument(description="The rule's id.")],
    ) -> EarningRule | None:
        return await info.context.loaders.earning_rule.load(key_or_zero("EarningRule", id))


@strawberry.type
class RuleMutations:
    @strawberry.mutation(
        permission_classes=[IsAdmin],
        description="Start a campaign that adds points to matching purchases. Admin only.",
    )
    async def create_earning_rule(
        self,
        info: strawberry.Info,
        input: Annotated[CreateEarningRuleInput, strawberry.argument(description="The new rule.")],
    ) -> EarningRulePayload:
        return await mutate(
            info,
            EarningRulePayload,
            lambda session: rules.create_rule(session, rule=_draft(input)),
            lambda view: {"earning_rule": view},
        )

    @strawberry.mutation(
        permission_classes=[IsAdmin],
        description=(
            "A new version, in force from now; earlier purchases keep the old one. Admin only."
        ),
    )
    async def update_earning_rule(
        self,
        info: strawberry.Info,
        input: Annotated[
            UpdateEarningRuleInput, strawberry.argument(description="The rule and its changes.")
        ],
    ) -> EarningRulePayload:
        rule_id = key_or_zero("EarningRule", input.id)
        return await mutate(
            info,
            EarningRulePayload,
            lambda session: rules.update_rule(session, rule_id=rule_id, changes=_draft(input)),
            lambda view: {"earning_rule": view},
        )

    @strawberry.mutation(
        permission_classes=[IsAdmin],
        description=(
            "The rule stops applying from now; purchases that occurred before keep it. Admin only."
        ),
    )
    async def archive_earning_rule(
        self,
        info: strawberry.Info,
        input: Annotated[
            ArchiveEarningRuleInput, strawberry.argument(description="The rule to archive.")
        ],
    ) -> EarningRulePayload:
        rule_id = key_or_zero("EarningRule", input.id)
        return await mutate(
            info,
            EarningRulePayload,
            lambda session: rules.archive_rule(session, rule_id=rule_id),
            lambda view: {"earning_rule": view},
        )
