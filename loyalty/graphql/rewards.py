"""Rewards catalog and redemption: the Reward and Redemption types, their queries and mutations."""

from datetime import datetime
from typing import Annotated

import strawberry
from sqlalchemy.ext.asyncio import AsyncSession
from strawberry import UNSET, Parent

from loyalty.auth.models import Role
from loyalty.graphql.errors import ErrorCode, Payload, mutate
from loyalty.graphql.members import Channel, Member
from loyalty.graphql.pagination import After, Connection, First, paged
from loyalty.graphql.permissions import (
    CanRedeem,
    IsAdmin,
    IsAuthenticated,
    IsStaff,
    OwnMember,
    forbidden,
)
from loyalty.graphql.segments import segment_keys
from loyalty.graphql.tiers import Tier
from loyalty.ids import decode_id, encode_id, key_or_zero
from loyalty.inputs import parse, sent_fields
from loyalty.members import service as members
from loyalty.members.models import Channel as DomainChannel
from loyalty.pagination import Page, PageRequest
from loyalty.rewards import service as rewards
from loyalty.rewards.models import Redemption as RedemptionRow
from loyalty.rewards.models import RedemptionStatus as DomainRedemptionStatus
from loyalty.rewards.models import Reward as RewardRow
from loyalty.rewards.models import RewardKind as DomainRewardKind
from loyalty.rewards.service import RewardView

RewardKind = DomainRewardKind
strawberry.enum(
    RewardKind,
    name="RewardKind",
    description=(
        "Where a redemption's code comes from: GENERATED_CODE draws a fresh unguessable code, "
        "CODE_POOL hands out one of the partner codes uploaded with addRewardCodes."
    ),
)


RedemptionStatus = DomainRedemptionStatus
strawberry.enum(
    RedemptionStatus,
    name="RedemptionStatus",
    description=(
        "ISSUED: the code is valid; USED: markRedemptionUsed consumed it; CANCELLED: "
        "cancelRedemption gave the points back."
    ),
)


@strawberry.type(description="A catalog entry members spend points on; anyone signed in reads it.")
class Reward:
    name: str = strawberry.field(description="Shown to members, such as Free coffee.")
    description: str | None = strawberry.field(description="Longer text for members; null if none.")
    kind: RewardKind = strawberry.field(description="Where redemption codes come from.")
    cost_points: int = strawberry.field(description="Available points one redemption spends.")
    active: bool = strawberry.field(description="Inactive rewards cannot be redeemed.")
    stock: int | None = strawberry.field(description="Units left to issue; null is unlimited.")
    per_member_limit: int | None = strawberry.field(
        description="Times one member may redeem it (cancelled ones do not count); null: no limit."
    )
    starts_at: datetime | None = strawberry.field(
        description="Redeemable from then; null: already."
    )
    ends_at: datetime | None = strawberry.field(
        description="Redeemable until then (exclusive); null: no end."
    )

    @strawberry.field(description="Opaque identifier of the reward; use it as rewardId.")
    def id(self, root: Parent[rewards.RewardView]) -> strawberry.ID:
        return strawberry.ID(encode_id("Reward", root.reward.id))

    @strawberry.field(description="Channels it can be redeemed in; empty means all.")
    def channels(self, root: Parent[rewards.RewardView]) -> list[Channel]:
        return [DomainChannel(c) for c in root.reward.channels]

    @strawberry.field(
        description="Members need this tier or a higher-ranked one to redeem; null: anyone."
    )
    async def min_tier(
        self, root: Parent[rewards.RewardView], info: strawberry.Info
    ) -> Tier | None:
        if root.reward.min_tier_id is None:
            return None
        return await info.context.loaders.tier.load(root.reward.min_tier_id)

    @strawberry.field(
        description=(
            "Segments whose members alone may redeem it (NOT_IN_SEGMENT for others); "
            "empty: every member."
        )
    )
    def segment_ids(self, root: Parent[rewards.RewardView]) -> list[strawberry.ID]:
        return [strawberry.ID(encode_id("Segment", i)) for i in root.reward.segment_ids or ()]

    @strawberry.field(
        description="For a member token: why the member cannot redeem this now; null if they can."
    )
    def ineligible_reason(self, root: Parent[rewards.RewardView]) -> ErrorCode | None:
        return None if root.ineligible is None else root.ineligible.code

    @strawberry.field(description="A readable explanation of ineligibleReason.")
    def ineligible_message(self, root: Parent[rewards.RewardView]) -> str | None:
        return None if root.ineligible is None else root.ineligible.message


@strawberry.type(description="A reward a member redeemed: the code to present, and its state.")
class Redemption:
    points_spent: int = strawberry.field(
        description="Points it took; a cancellation gives them back."
    )
    code: str = strawberry.field(
        description="The coupon code the till or web shop accepts; unique."
    )
    status: RedemptionStatus = strawberry.field(description="Whether the code is still usable.")
    channel: Channel = strawberry.field(description="Where it was redeemed.")
    created_at: datetime = strawberry.field(description="When it was redeemed.")
    used_at: datetime | None = strawberry.field(
        description="When the code was consumed; null until then."
    )
    cancelled_at: datetime | None = strawberry.field(
        description="When it was cancelled; null unless cancelled."
    )

    @strawberry.field(description="Opaque identifier of the redemption; use it as redemptionId.")
    def id(self, root: Parent[RedemptionRow]) -> strawberry.ID:
        return strawberry.ID(encode_id("Redemption", root.id))

    @strawberry.field(description="What was redeemed.", graphql_type=Reward)
    async def reward(
        self, root: Parent[RedemptionRow], info: strawberry.Info
    ) -> rewards.RewardView:
        return rewards.RewardView(reward=await info.context.loaders.reward.load(root.reward_id))

    @strawberry.field(description="Who redeemed it.")
    async def member(self, root: Parent[RedemptionRow], info: strawberry.Info) -> Member:
        return await info.context.loaders.member.load(root.member_id)


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
class RewardPayload(Payload):
    reward: Reward | None = strawberry.field(default=None, description="The reward as saved.")


@strawberry.type(description="The result of addRewardCodes.")
class AddRewardCodesPayload(Payload):
    reward: Reward | None = strawberry.field(
        default=None, description="The reward, its stock including the new codes."
    )
    added: int | None = strawberry.field(default=None, description="How many codes were added.")


@strawberry.type(description="The result of redeemReward or cancelRedemption.")
class RedemptionPayload(Payload):
    redemption: Redemption | None = strawberry.field(
        default=None, description="The redemption, with its code and status."
    )
    member: Member | None = strawberry.field(
        default=None, description="The member with the new balances."
    )


@strawberry.type(description="The result of markRedemptionUsed.")
class MarkRedemptionUsedPayload(Payload):
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
        principal = info.context.principal

        async def load(session: AsyncSession, request: PageRequest) -> Page[RewardView]:
            member = None
            if principal.role == Role.MEMBER:
                member = await members.find_member(session, member_id=principal.member_id)
            return await rewards.list_rewards(
                session, page=request, available_only=bool(available_only), member=member
            )

        return await paged(
            info, first, after, lambda request: info.context.read(lambda s: load(s, request))
        )

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
        extensions=[OwnMember(lambda args: args["input"].member_id)],
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
