"""Earning rules (admin), previewPurchase (the till's "you will earn" line) and recordEvent."""

from datetime import datetime
from typing import Any

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
from loyalty.graphql.types import Channel, Member, MemberEvent
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


@strawberry.input
class EarningRuleConditionsInput:
    channels: list[Channel] | None = None
    store_ids: list[str] | None = None
    tier_ids: list[strawberry.ID] | None = None
    min_total: DecimalString | None = None
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
    categories: list[str] | None = None
    event_type: str | None = strawberry.field(
        default=None, description="Makes it an event rule (FIXED_BONUS), e.g. app_installed."
    )


@strawberry.input
class EarningRuleEffectInput:
    kind: EarningEffectKind
    value: DecimalString


@strawberry.input
class EarningRuleLimitsInput:
    per_purchase: int | None = None
    per_member_per_day: int | None = None
    per_member_per_week: int | None = None
    per_member_per_month: int | None = None
    per_member_total: int | None = None
    budget: int | None = None


@strawberry.input
class CreateEarningRuleInput:
    name: str
    effect: EarningRuleEffectInput
    starts_at: datetime | None = strawberry.field(default=UNSET, description="Default: now.")
    ends_at: datetime | None = None
    priority: int = 0
    exclusive: bool = False
    conditions: EarningRuleConditionsInput | None = None
    limits: EarningRuleLimitsInput | None = None


@strawberry.input(description="Fields sent replace the current version's; a new version results.")
class UpdateEarningRuleInput:
    id: strawberry.ID
    name: str | None = UNSET
    starts_at: datetime | None = UNSET
    ends_at: datetime | None = UNSET
    priority: int | None = UNSET
    exclusive: bool | None = UNSET
    conditions: EarningRuleConditionsInput | None = UNSET
    effect: EarningRuleEffectInput | None = UNSET
    limits: EarningRuleLimitsInput | None = UNSET


@strawberry.input
class ArchiveEarningRuleInput:
    id: strawberry.ID


@strawberry.type
class EarningRulePayload:
    errors: list[UserError]
    earning_rule: EarningRule | None = None


@strawberry.type
class PreviewPurchasePayload:
    errors: list[UserError]
    points_awarded: int | None = None
    points_breakdown: list[PointsBreakdownItem] | None = None


@strawberry.input
class RecordEventInput:
    idempotency_key: str
    member_id: strawberry.ID
    type: str = strawberry.field(description="e.g. app_installed, review_written.")
    occurred_at: datetime | None = None
    attributes: JSON | None = None


@strawberry.type
class RecordEventPayload:
    errors: list[UserError]
    event: MemberEvent | None = None
    points_awarded: int | None = None
    member: Member | None = None


def _rule_in(input: CreateEarningRuleInput | UpdateEarningRuleInput) -> rules.RuleIn:
    def sent(value: Any, convert: Any = None) -> Any:
        if value is UNSET:
            return UNCHANGED
        return value if value is None or convert is None else convert(value)

    return rules.RuleIn(
        name=UNCHANGED if input.name is UNSET else input.name,
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
    )


@strawberry.type
class RuleQueries:
    @strawberry.field(permission_classes=[IsAdmin], description="Newest first.")
    async def earning_rules(
        self,
        info: strawberry.Info,
        first: First = None,
        after: After = None,
        include_archived: bool = False,
    ) -> Connection[EarningRule]:
        request = page_request(first, after, max_size=info.context.settings.page_size_max)
        page = await info.context.read(
            lambda session: rules.list_rules(
                session, page=request, include_archived=include_archived
            )
        )
        return to_connection(page, after_given=after is not None)

    @strawberry.field(permission_classes=[IsAdmin])
    async def earning_rule(self, info: strawberry.Info, id: strawberry.ID) -> EarningRule | None:
        return await info.context.loaders.earning_rule.load(key_or_zero("EarningRule", id))

    @strawberry.field(
        permission_classes=[CanPreview],
        description="What recordPurchase would award now, writing nothing.",
    )
    async def preview_purchase(
        self, info: strawberry.Info, input: PreviewPurchaseInput
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
    @strawberry.mutation(permission_classes=[IsAdmin])
    async def create_earning_rule(
        self, info: strawberry.Info, input: CreateEarningRuleInput
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
        description="A new version, in force from now; earlier purchases keep the old one.",
    )
    async def update_earning_rule(
        self, info: strawberry.Info, input: UpdateEarningRuleInput
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
        description="The rule stops applying from now; purchases that occurred before keep it.",
    )
    async def archive_earning_rule(
        self, info: strawberry.Info, input: ArchiveEarningRuleInput
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
        description="A non-purchase action; the event rules in force reward it.",
    )
    async def record_event(
        self, info: strawberry.Info, input: RecordEventInput
    ) -> RecordEventPayload:
        event = events.EventIn(
            member_id=key_or_zero("Member", input.member_id),
            type=input.type,
            occurred_at=input.occurred_at,
            attributes=input.attributes,  # type: ignore[arg-type]
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
