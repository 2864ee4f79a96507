"""Rewards catalog and redemption."""

from datetime import datetime
from typing import Annotated

import strawberry
from sqlalchemy.ext.asyncio import AsyncSession
from strawberry import UNSET

from loyalty.auth.models import Role
from loyalty.graphql.errors import UserError, mutate
from loyalty.graphql.pagination import After, Connection, First, to_connection
from loyalty.graphql.permissions import (
    CanRedeem,
    IsAdmin,
    IsAuthenticated,
    IsStaff,
    ensure_member_access,
    forbidden,
)
from loyalty.graphql.segments import segment_keys
from loyalty.graphql.types import Channel, Member, Redemption, Reward, RewardKind, errors_field
from loyalty.ids import decode_id, key_or_zero
from loyalty.inputs import parse, sent_fields
from loyalty.members import service as members
from loyalty.members.models import Channel as DomainChannel
from loyalty.pagination import Page, page_request
from loyalty.rewards import service as rewards
from loyalty.rewards.models import Reward as RewardRow
from loyalty.rewards.service import RewardView


@strawberry.input(description="A new catalog entry.")
class CreateRewardInput:
    name: str = strawberry.field(description="Shown to members, up to 200 characters.")
    cost_points: int = strawberry.field(description="Points one redemption spends, 1 to 100000000.")
    description: str | None = strawberry.field(
        default=None, description="Longer text for members, up to 2000 characters."
    )
    kind: RewardKind = strawberry.field(
        default=RewardKind.GENERATED_CODE,
        description="CODE_POOL: upload the codes with addRewardCodes; its stock counts them.",
    )
    active: bool = strawberry.field(
        default=True, description="false hides it from redemption until reactivated."
    )
    stock: int | None = strawberry.field(
        default=None, description="null: unlimited. Leave it out for a CODE_POOL reward."
    )
    per_member_limit: int | None = strawberry.field(
        default=None, description="Times one member may redeem it; null: no limit."
    )
    min_tier_id: strawberry.ID | None = strawberry.field(
        default=None, description="Lowest tier that may redeem it; null: any member."
    )
    channels: list[Channel] | None = strawberry.field(
        default=None, description="Where it can be redeemed; empty or null: everywhere."
    )
    starts_at: datetime | None = strawberry.field(
        default=None, description="Redeemable from then; null: at once."
    )
    ends_at: datetime | None = strawberry.field(
        default=None, description="Redeemable until then, after startsAt; null: no end."
    )
    segment_ids: list[strawberry.ID] | None = strawberry.field(
        default=None,
        description="Only members in one of these segments may redeem it (else NOT_IN_SEGMENT); "
        "empty or null: every member.",
    )


@strawberry.input(
    description="Changes to a reward: fields left out stay as they are; null clears a field."
)
class UpdateRewardInput:
    id: strawberry.ID = strawberry.field(description="The reward to change.")
    name: str | None = strawberry.field(
        default=UNSET, description="Shown to members, up to 200 characters."
    )
    description: str | None = strawberry.field(
        default=UNSET, description="Longer text for members, up to 2000 characters."
    )
    cost_points: int | None = strawberry.field(
        default=UNSET, description="Points one redemption spends; issued codes keep their price."
    )
    active: bool | None = strawberry.field(
        default=UNSET, description="false stops redemptions; issued codes stay valid."
    )
    stock: int | None = strawberry.field(
        default=UNSET,
        description="Units left; null: unlimited. A CODE_POOL reward's stock is its codes.",
    )
    per_member_limit: int | None = strawberry.field(
        default=UNSET, description="Times one member may redeem it; null: no limit."
    )
    min_tier_id: strawberry.ID | None = strawberry.field(
        default=UNSET, description="Lowest tier that may redeem it; null: any member."
    )
    channels: list[Channel] | None = strawberry.field(
        default=UNSET, description="Where it can be redeemed; empty or null: everywhere."
    )
    starts_at: datetime | None = strawberry.field(
        default=UNSET, description="Redeemable from then; null: at once."
    )
    ends_at: datetime | None = strawberry.field(
        default=UNSET, description="Redeemable until then; null: no end."
    )
    segment_ids: list[strawberry.ID] | None = strawberry.field(
        default=UNSET,
        description="Only members in one of these segments may redeem it; empty or null: all.",
    )


@strawberry.input(description="Partner codes to add to a CODE_POOL reward.")
class AddRewardCodesInput:
    idempotency_key: str = strawberry.field(
        description="Your unique key for this upload: a retry with it adds nothing twice."
    )
    reward_id: strawberry.ID = strawberry.field(description="A reward of kind CODE_POOL.")
    codes: list[str] = strawberry.field(
        description="1 to 10000 new, distinct codes; each can ever be issued once."
    )


@strawberry.input(description="A redemption of one reward for one member.")
class RedeemRewardInput:
    idempotency_key: str = strawberry.field(
        description="Your unique key for this redemption: a retry with it spends nothing twice."
    )
    member_id: strawberry.ID = strawberry.field(
        description="The member who spends the points (a member token: itself)."
    )
    reward_id: strawberry.ID = strawberry.field(description="The reward redeemed.")
    channel: Channel = strawberry.field(
        description="Where it is redeemed; a member token may only use MOBILE_APP."
    )


@strawberry.input(description="A redemption to cancel before its code is used.")
class CancelRedemptionInput:
    idempotency_key: str = strawberry.field(
        description="Your unique key for this cancellation: a retry with it refunds nothing twice."
    )
    redemption_id: strawberry.ID = strawberry.field(
        description="An ISSUED redemption (a used one cannot be cancelled)."
    )


@strawberry.input(description="The redemption whose code was consumed: give exactly one field.")
class MarkRedemptionUsedInput:
    redemption_id: strawberry.ID | None = strawberry.field(
        default=None, description="The redemption, by id."
    )
    code: str | None = strawberry.field(
        default=None, description="The redemption, by the code the customer presented."
    )


@strawberry.type(description="The result of createReward or updateReward.")
class RewardPayload:
    errors: list[UserError] = errors_field()
    reward: Reward | None = strawberry.field(default=None, description="The reward as saved.")


@strawberry.type(description="The result of addRewardCodes.")
class AddRewardCodesPayload:
    errors: list[UserError] = errors_field()
    reward: Reward | None = strawberry.field(
        default=None, description="The reward, its stock including the new codes."
    )
    added: int | None = strawberry.field(default=None, description="How many codes were added.")


@strawberry.type(description="The result of redeemReward or cancelRedemption.")
class RedemptionPayload:
    errors: list[UserError] = errors_field()
    redemption: Redemption | None = strawberry.field(
        default=None, description="The redemption, with its code and status."
    )
    member: Member | None = strawberry.field(
        default=None, description="The member with the new balances."
    )


@strawberry.type(description="The result of markRedemptionUsed.")
class MarkRedemptionUsedPayload:
    errors: list[UserError] = errors_field()
    redemption: Redemption | None = strawberry.field(
        default=None, description="The redemption, now USED."
    )


def _tier_key(value: strawberry.ID | None) -> int | None:
    return None if value is None else key_or_zero("Tier", value)


def _view(reward: RewardRow) -> RewardView:
    return RewardView(reward=reward)


@strawberry.type
class RewardQueries:
    @strawberry.field(
        permission_classes=[IsAuthenticated],
        description=(
            "The catalog, oldest reward first; any caller. With a member token, each reward says "
            "whether this member can redeem it now in the app (ineligibleReason), and "
            "availableOnly keeps only those."
        ),
    )
    async def rewards(
        self,
        info: strawberry.Info,
        first: First = None,
        after: After = None,
        available_only: Annotated[
            bool | None,
            strawberry.argument(
                description=(
                    "Only rewards redeemable now: active, in their window and in stock; with a "
                    "member token, also ones this member can redeem in the app."
                )
            ),
        ] = False,
    ) -> Connection[Reward]:
        request = page_request(first, after, max_size=info.context.settings.page_size_max)
        principal = info.context.principal

        async def load(session: AsyncSession) -> Page[RewardView]:
            member = None
            if principal.role == Role.MEMBER:
                member = await members.find_member(session, member_id=principal.member_id)
            return await rewards.list_rewards(
                session, page=request, available_only=bool(available_only), member=member
            )

        page = await info.context.read(load)
        return to_connection(page, after_given=after is not None)

    @strawberry.field(
        permission_classes=[IsAuthenticated],
        description="A reward by id; null if none. Any caller.",
        graphql_type=Reward | None,
    )
    async def reward(
        self,
        info: strawberry.Info,
        id: Annotated[strawberry.ID, strawberry.argument(description="The reward's id.")],
    ) -> RewardView | None:
        reward_id = decode_id("Reward", id)
        if reward_id is None:
            return None
        found = await info.context.read(
            lambda session: rewards.get_reward(session, reward_id=reward_id)
        )
        return None if found is None else _view(found)

    @strawberry.field(
        permission_classes=[IsStaff],
        description="Look a code up at the till; null if no redemption has it. Admin and POS.",
    )
    async def redemption_by_code(
        self,
        info: strawberry.Info,
        code: Annotated[str, strawberry.argument(description="The code the customer presents.")],
    ) -> Redemption | None:
        return await info.context.read(lambda session: rewards.find_by_code(session, code=code))


def _draft(input: CreateRewardInput | UpdateRewardInput) -> rewards.RewardDraft:
    """The one mapping of a reward input onto the reward's draft; every field error at once."""
    values = sent_fields(input, rewards.RewardDraft, UNSET)
    if values.get("min_tier_id") is not None:
        values["min_tier_id"] = _tier_key(values["min_tier_id"])
    if "segment_ids" in values:
        values["segment_ids"] = segment_keys(values["segment_ids"])
    return parse(rewards.RewardDraft, **values)


@strawberry.type
class RewardMutations:
    @strawberry.mutation(permission_classes=[IsAdmin], description="Add a reward. Admin only.")
    async def create_reward(
        self,
        info: strawberry.Info,
        input: Annotated[CreateRewardInput, strawberry.argument(description="The new reward.")],
    ) -> RewardPayload:
        return await mutate(
            info,
            RewardPayload,
            lambda session: rewards.create_reward(session, reward=_draft(input)),
            lambda created: {"reward": _view(created)},
        )

    @strawberry.mutation(
        permission_classes=[IsAdmin],
        description="Change a reward; issued redemptions are not affected. Admin only.",
    )
    async def update_reward(
        self,
        info: strawberry.Info,
        input: Annotated[
            UpdateRewardInput, strawberry.argument(description="The reward and its changes.")
        ],
    ) -> RewardPayload:
        return await mutate(
            info,
            RewardPayload,
            lambda session: rewards.update_reward(
                session, reward_id=key_or_zero("Reward", input.id), changes=_draft(input)
            ),
            lambda updated: {"reward": _view(updated)},
        )

    @strawberry.mutation(
        permission_classes=[IsAdmin],
        description=(
            "Upload partner codes to a CODE_POOL reward, raising its stock. Admin only; "
            "idempotent per idempotencyKey; a code already known is ALREADY_EXISTS."
        ),
    )
    async def add_reward_codes(
        self,
        info: strawberry.Info,
        input: Annotated[
            AddRewardCodesInput, strawberry.argument(description="The reward and the codes.")
        ],
    ) -> AddRewardCodesPayload:
        return await mutate(
            info,
            AddRewardCodesPayload,
            lambda session: rewards.add_reward_codes(
                session,
                scope=info.context.principal.scope,
                idempotency_key=input.idempotency_key,
                reward_id=key_or_zero("Reward", input.reward_id),
                codes=input.codes,
            ),
            lambda result: {"reward": _view(result[0]), "added": result[1]},
        )

    @strawberry.mutation(
        permission_classes=[CanRedeem],
        description=(
            "Spend a member's available points on a reward and issue its code. Admin and POS "
            "for a member; a member token for itself, in the app. Idempotent per idempotencyKey."
        ),
    )
    async def redeem_reward(
        self,
        info: strawberry.Info,
        input: Annotated[
            RedeemRewardInput, strawberry.argument(description="The member, reward and channel.")
        ],
    ) -> RedemptionPayload:
        member_id = key_or_zero("Member", input.member_id)
        ensure_member_access(info, member_id)
        if info.context.principal.role == Role.MEMBER and input.channel != Channel.MOBILE_APP:
            raise forbidden()  # a member token is the member's app: it redeems in the app
        redemption = rewards.RedemptionIn(
            member_id=member_id,
            reward_id=key_or_zero("Reward", input.reward_id),
            channel=DomainChannel(input.channel),
        )
        return await mutate(
            info,
            RedemptionPayload,
            lambda session: rewards.redeem_reward(
                session,
                scope=info.context.principal.scope,
                idempotency_key=input.idempotency_key,
                redemption=redemption,
            ),
            lambda result: {"redemption": result.redemption, "member": result.member},
        )

    @strawberry.mutation(
        permission_classes=[IsStaff],
        description=(
            "Cancel an unused redemption: the points come back and the stock and the member's "
            "limit are freed. Admin and POS; idempotent per idempotencyKey."
        ),
    )
    async def cancel_redemption(
        self,
        info: strawberry.Info,
        input: Annotated[
            CancelRedemptionInput, strawberry.argument(description="The redemption to cancel.")
        ],
    ) -> RedemptionPayload:
        return await mutate(
            info,
            RedemptionPayload,
            lambda session: rewards.cancel_redemption(
                session,
                scope=info.context.principal.scope,
                idempotency_key=input.idempotency_key,
                redemption_id=key_or_zero("Redemption", input.redemption_id),
            ),
            lambda result: {"redemption": result.redemption, "member": result.member},
        )

    @strawberry.mutation(
        permission_classes=[IsStaff],
        description=(
            "A POS or web shop consumed the code: by redemption id or by code. Admin and POS; "
            "a code already used or cancelled is refused."
        ),
    )
    async def mark_redemption_used(
        self,
        info: strawberry.Info,
        input: Annotated[
            MarkRedemptionUsedInput, strawberry.argument(description="The redemption or code.")
        ],
    ) -> MarkRedemptionUsedPayload:
        redemption_id = (
            None if input.redemption_id is None else key_or_zero("Redemption", input.redemption_id)
        )
        return await mutate(
            info,
            MarkRedemptionUsedPayload,
            lambda session: rewards.mark_redemption_used(
                session, redemption_id=redemption_id, code=input.code
            ),
            lambda redemption: {"redemption": redemption},
        )
