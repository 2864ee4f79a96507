"""Rewards catalog and redemption."""

from datetime import datetime

import strawberry
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
from loyalty.graphql.types import Channel, Member, Redemption, Reward, RewardKind
from loyalty.ids import decode_id, key_or_zero
from loyalty.members import service as members
from loyalty.members.models import Channel as DomainChannel
from loyalty.pagination import page_request
from loyalty.rewards import service as rewards
from loyalty.validation import UNSET as UNCHANGED


@strawberry.input
class CreateRewardInput:
    name: str
    cost_points: int
    description: str | None = None
    kind: RewardKind = RewardKind.GENERATED_CODE
    active: bool = True
    stock: int | None = strawberry.field(default=None, description="null: unlimited.")
    per_member_limit: int | None = None
    min_tier_id: strawberry.ID | None = None
    channels: list[Channel] | None = strawberry.field(
        default=None, description="Where it can be redeemed; empty or null: everywhere."
    )
    starts_at: datetime | None = None
    ends_at: datetime | None = None


@strawberry.input
class UpdateRewardInput:
    id: strawberry.ID
    name: str | None = UNSET
    description: str | None = UNSET
    cost_points: int | None = UNSET
    active: bool | None = UNSET
    stock: int | None = UNSET
    per_member_limit: int | None = UNSET
    min_tier_id: strawberry.ID | None = UNSET
    channels: list[Channel] | None = UNSET
    starts_at: datetime | None = UNSET
    ends_at: datetime | None = UNSET


@strawberry.input
class AddRewardCodesInput:
    idempotency_key: str
    reward_id: strawberry.ID
    codes: list[str]


@strawberry.input
class RedeemRewardInput:
    idempotency_key: str
    member_id: strawberry.ID
    reward_id: strawberry.ID
    channel: Channel


@strawberry.input
class CancelRedemptionInput:
    idempotency_key: str
    redemption_id: strawberry.ID


@strawberry.input
class MarkRedemptionUsedInput:
    redemption_id: strawberry.ID | None = None
    code: str | None = None


@strawberry.type
class RewardPayload:
    errors: list[UserError]
    reward: Reward | None = None


@strawberry.type
class AddRewardCodesPayload:
    errors: list[UserError]
    reward: Reward | None = None
    added: int | None = None


@strawberry.type
class RedemptionPayload:
    errors: list[UserError]
    redemption: Redemption | None = None
    member: Member | None = None


@strawberry.type
class MarkRedemptionUsedPayload:
    errors: list[UserError]
    redemption: Redemption | None = None


def _tier_key(value: strawberry.ID | None) -> int | None:
    return None if value is None else key_or_zero("Tier", value)


def _view(reward: object) -> rewards.RewardView:
    return rewards.RewardView(reward=reward)  # type: ignore[arg-type]


@strawberry.type
class RewardQueries:
    @strawberry.field(
        permission_classes=[IsAuthenticated],
        description=(
            "The catalog. With a member token, each reward says whether this member can "
            "redeem it now in the app (ineligibleReason), and availableOnly keeps only those."
        ),
    )
    async def rewards(
        self,
        info: strawberry.Info,
        first: First = None,
        after: After = None,
        available_only: bool | None = False,
    ) -> Connection[Reward]:
        request = page_request(first, after, max_size=info.context.settings.page_size_max)
        principal = info.context.principal

        async def load(session):  # type: ignore[no-untyped-def]
            member = None
            if principal.role == Role.MEMBER:
                member = await members.find_member(session, member_id=principal.member_id)
            return await rewards.list_rewards(
                session, page=request, available_only=bool(available_only), member=member
            )

        page = await info.context.read(load)
        return to_connection(page, after_given=after is not None)

    @strawberry.field(permission_classes=[IsAuthenticated])
    async def reward(self, info: strawberry.Info, id: strawberry.ID) -> Reward | None:
        reward_id = decode_id("Reward", id)
        if reward_id is None:
            return None
        found = await info.context.read(
            lambda session: rewards.get_reward(session, reward_id=reward_id)
        )
        return None if found is None else _view(found)

    @strawberry.field(permission_classes=[IsStaff], description="Look a code up at the till.")
    async def redemption_by_code(self, info: strawberry.Info, code: str) -> Redemption | None:
        return await info.context.read(lambda session: rewards.find_by_code(session, code=code))


@strawberry.type
class RewardMutations:
    @strawberry.mutation(permission_classes=[IsAdmin])
    async def create_reward(self, info: strawberry.Info, input: CreateRewardInput) -> RewardPayload:
        reward = rewards.RewardIn(
            name=input.name,
            cost_points=input.cost_points,
            description=input.description,
            kind=input.kind,
            active=input.active,
            stock=input.stock,
            per_member_limit=input.per_member_limit,
            min_tier_id=_tier_key(input.min_tier_id),
            channels=list(input.channels or []),
            starts_at=input.starts_at,
            ends_at=input.ends_at,
        )
        return await mutate(
            info,
            RewardPayload,
            lambda session: rewards.create_reward(session, reward=reward),
            lambda created: {"reward": _view(created)},
        )

    @strawberry.mutation(permission_classes=[IsAdmin])
    async def update_reward(self, info: strawberry.Info, input: UpdateRewardInput) -> RewardPayload:
        def sent(name: str) -> object:
            value = getattr(input, name)
            if value is UNSET:
                return UNCHANGED
            return _tier_key(value) if name == "min_tier_id" else value

        changes = rewards.RewardChanges(
            **{
                name: sent(name)
                for name in (
                    "name",
                    "description",
                    "cost_points",
                    "active",
                    "stock",
                    "per_member_limit",
                    "min_tier_id",
                    "channels",
                    "starts_at",
                    "ends_at",
                )
            }
        )
        return await mutate(
            info,
            RewardPayload,
            lambda session: rewards.update_reward(
                session, reward_id=key_or_zero("Reward", input.id), changes=changes
            ),
            lambda updated: {"reward": _view(updated)},
        )

    @strawberry.mutation(permission_classes=[IsAdmin])
    async def add_reward_codes(
        self, info: strawberry.Info, input: AddRewardCodesInput
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
        description="A till or admin for a member; a member token for itself.",
    )
    async def redeem_reward(
        self, info: strawberry.Info, input: RedeemRewardInput
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

    @strawberry.mutation(permission_classes=[IsStaff], description="The points come back.")
    async def cancel_redemption(
        self, info: strawberry.Info, input: CancelRedemptionInput
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
        description="A POS or web shop consumed the code: by redemption id or by code.",
    )
    async def mark_redemption_used(
        self, info: strawberry.Info, input: MarkRedemptionUsedInput
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
