"""Earning rules (admin), previewPurchase (the till's "you will earn" line) and recordEvent."""

from datetime import datetime
from typing import Annotated, Any

import strawberry
from strawberry import UNSET
from strawberry.scalars import JSON

from loyalty.auth.models import Role
from loyalty.errors import DomainError
from loyalty.events import service as events
from loyalty.graphql.errors import UserError, mutate
from loyalty.graphql.pagination import After, Connection, First, to_connection
from loyalty.graphql.permissions import IsAdmin, RolePermission, forbidden
from loyalty.graphql.purchases import PreviewPurchaseInput, purchase_in
from loyalty.graphql.rule_types import (
    DayOfWeek,
    EarningEffectKind,
    EarningRule,
    PointsBreakdownItem,
    breakdown_items,
)
from loyalty.graphql.scalars import DecimalString
from loyalty.graphql.segments import segment_keys
from loyalty.graphql.types import Channel, Member, MemberEvent, errors_field
from loyalty.ids import key_or_zero
from loyalty.pagination import page_request
from loyalty.purchases import service as purchases
from loyalty.rules import service as rules
from loyalty.validation import UNSET as UNCHANGED


class CanPreview(RolePermission):
    """Staff for any member; a member token for itself."""

    roles = frozenset({Role.ADMIN, Role.POS, Role.MEMBER})


class CanRecordEvents(RolePermission):
    """Staff, and the app's backend (app installed, review written): not member tokens."""

    roles = frozenset({Role.ADMIN, Role.POS, Role.APP})


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
class EarningRulePayload:
    errors: list[UserError] = errors_field()
    earning_rule: EarningRule | None = strawberry.field(
        default=None, description="The rule as saved, with its current version."
    )


@strawberry.type(description="The result of previewPurchase: what the purchase would earn.")
class PreviewPurchasePayload:
    errors: list[UserError] = errors_field()
    points_awarded: int | None = strawberry.field(
        default=None, description="Points recordPurchase would award now."
    )
    points_breakdown: list[PointsBreakdownItem] | None = strawberry.field(
        default=None, description="Base points, then each rule's points, in chain order."
    )


@strawberry.input(description="A non-purchase action of a member, such as installing the app.")
class RecordEventInput:
    idempotency_key: str = strawberry.field(
        description="Your unique key for this event: a retry with it records nothing twice."
    )
    member_id: strawberry.ID = strawberry.field(description="The member who acted.")
    type: str = strawberry.field(
        description=(
            "e.g. app_installed, review_written: lower-case letters, digits and _ . : - "
            "(at most 64); not birthday, which a job awards."
        )
    )
    occurred_at: datetime | None = strawberry.field(
        default=None,
        description="When it happened; omitted: now. At most 5 minutes ahead.",
    )
    attributes: JSON | None = strawberry.field(
        default=None,
        description="Your details about it: a JSON object, at most 4096 bytes, 8 levels deep.",
    )


@strawberry.type(description="The result of recordEvent.")
class RecordEventPayload:
    errors: list[UserError] = errors_field()
    event: MemberEvent | None = strawberry.field(default=None, description="The event recorded.")
    points_awarded: int | None = strawberry.field(
        default=None, description="Points the event rules in force gave for it (0: none)."
    )
    member: Member | None = strawberry.field(
        default=None,
        description="The member with the new balances; app keys may not read it.",
    )


def _rule_in(input: CreateEarningRuleInput | UpdateEarningRuleInput) -> rules.RuleIn:
    def sent(value: Any, convert: Any = None) -> Any:
        if value is UNSET:
            return UNCHANGED
        return value if value is None or convert is None else convert(value)

    return rules.RuleIn(
        name=sent(input.name),
        starts_at=sent(input.starts_at),
        ends_at=sent(input.ends_at),
        priority=sent(input.priority),
        exclusive=sent(input.exclusive),
        conditions=sent(input.conditions, _conditions_in),
        effect=sent(
            input.effect, lambda effect: rules.EffectIn(kind=effect.kind, value=effect.value)
        ),
        limits=sent(
            input.limits,
            lambda limits: rules.LimitsIn(
                per_purchase=limits.per_purchase,
                per_member_per_day=limits.per_member_per_day,
                per_member_per_week=limits.per_member_per_week,
                per_member_per_month=limits.per_member_per_month,
                per_member_total=limits.per_member_total,
                budget=limits.budget,
            ),
        ),
    )


def _conditions_in(given: EarningRuleConditionsInput) -> rules.ConditionsIn:
    return rules.ConditionsIn(
        channels=None if given.channels is None else [c.value for c in given.channels],
        store_ids=given.store_ids,
        tier_ids=None
        if given.tier_ids is None
        else [key_or_zero("Tier", tier_id) for tier_id in given.tier_ids],
        min_total=given.min_total,
        days_of_week=None if given.days_of_week is None else [d.value for d in given.days_of_week],
        hours=given.hours,
        first_purchase=given.first_purchase,
        skus=given.skus,
        categories=given.categories,
        event_type=given.event_type,
        segment_ids=segment_keys(given.segment_ids),
    )


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
        request = page_request(first, after, max_size=info.context.settings.page_size_max)
        page = await info.context.read(
            lambda session: rules.list_rules(
                session, page=request, include_archived=include_archived
            )
        )
        return to_connection(page, after_given=after is not None)

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

    @strawberry.field(
        permission_classes=[CanPreview],
        description=(
            "What recordPurchase would award now, writing nothing: the till's \"you will "
            'earn" line. Admin and POS; a member token for itself.'
        ),
    )
    async def preview_purchase(
        self,
        info: strawberry.Info,
        input: Annotated[
            PreviewPurchaseInput,
            strawberry.argument(description="The receipt as it would be recorded."),
        ],
    ) -> PreviewPurchasePayload:
        purchase = purchase_in(input)
        principal = info.context.principal
        if principal.role == Role.MEMBER and (
            purchase.member_external_id is not None or purchase.member_id != principal.member_id
        ):
            # Before any lookup: a member token must not learn whether other members exist.
            raise forbidden()
        try:
            quote = await info.context.read(
                lambda session: purchases.preview_purchase(session, purchase=purchase)
            )
        except DomainError as error:
            return PreviewPurchasePayload(errors=[UserError.of(error)])
        return PreviewPurchasePayload(
            errors=[],
            points_awarded=quote.total,
            points_breakdown=breakdown_items(quote.breakdown()),
        )


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
        rule = _rule_in(input)
        return await mutate(
            info,
            EarningRulePayload,
            lambda session: rules.create_rule(session, rule=rule),
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
        changes = _rule_in(input)
        rule_id = key_or_zero("EarningRule", input.id)
        return await mutate(
            info,
            EarningRulePayload,
            lambda session: rules.update_rule(session, rule_id=rule_id, changes=changes),
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

    @strawberry.mutation(
        permission_classes=[CanRecordEvents],
        description=(
            "A non-purchase action; the event rules in force reward it. Admin, POS and app "
            "keys (not member tokens); idempotent per idempotencyKey."
        ),
    )
    async def record_event(
        self,
        info: strawberry.Info,
        input: Annotated[RecordEventInput, strawberry.argument(description="The event.")],
    ) -> RecordEventPayload:
        event = events.EventIn(
            member_id=key_or_zero("Member", input.member_id),
            type=input.type,
            occurred_at=input.occurred_at,
            attributes=input.attributes,
        )
        return await mutate(
            info,
            RecordEventPayload,
            lambda session: events.record_event(
                session,
                scope=info.context.principal.scope,
                idempotency_key=input.idempotency_key,
                event=event,
            ),
            lambda result: {
                "event": result.event,
                "points_awarded": result.points_awarded,
                "member": result.member,
            },
        )
