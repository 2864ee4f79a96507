"""Tier configuration, admin overrides and the what-if preview."""

import strawberry
from strawberry import UNSET

from loyalty.db import utcnow
from loyalty.errors import DomainError
from loyalty.graphql.errors import UserError, mutate
from loyalty.graphql.permissions import IsAdmin, IsAuthenticated
from loyalty.graphql.scalars import DecimalString
from loyalty.graphql.types import Member, Tier
from loyalty.ids import key_or_zero
from loyalty.tiers import evaluation
from loyalty.tiers import service as tiers
from loyalty.validation import UNSET as UNCHANGED


@strawberry.input
class CreateTierInput:
    name: str
    rank: int
    threshold: int
    multiplier: DecimalString = DecimalString("1")
    benefits: list[str] | None = None
    retention_days: int = 0


@strawberry.input
class UpdateTierInput:
    id: strawberry.ID
    name: str | None = UNSET
    rank: int | None = UNSET
    threshold: int | None = UNSET
    multiplier: DecimalString | None = UNSET
    benefits: list[str] | None = UNSET
    retention_days: int | None = UNSET


@strawberry.input
class DeleteTierInput:
    id: strawberry.ID
    move_members_to: strawberry.ID | None = strawberry.field(
        default=None, description="Required when members hold the tier."
    )


@strawberry.input
class SetMemberTierInput:
    member_id: strawberry.ID
    tier_id: strawberry.ID | None
    reason: str


@strawberry.input
class ProposedTierInput:
    rank: int
    threshold: int
    name: str | None = None


@strawberry.input
class PreviewTierChangeInput:
    tiers: list[ProposedTierInput]


@strawberry.type
class TierPayload:
    errors: list[UserError]
    tier: Tier | None = None


@strawberry.type
class DeleteTierPayload:
    errors: list[UserError]
    tier: Tier | None = None
    members_moved: int | None = None


@strawberry.type
class SetMemberTierPayload:
    errors: list[UserError]
    member: Member | None = None


@strawberry.type
class TierPreview:
    rank: int = strawberry.field(description="-1: below every proposed threshold.")
    name: str | None
    threshold: int
    members: int
    moved_up: int
    moved_down: int = strawberry.field(
        description="Would fall to this tier (after their current tier's retention)."
    )
    stayed: int


@strawberry.type
class TierChangePreviewPayload:
    errors: list[UserError]
    tiers: list[TierPreview] | None = None


@strawberry.type
class TierQueries:
    @strawberry.field(permission_classes=[IsAuthenticated], description="Ordered by rank.")
    async def tiers(self, info: strawberry.Info) -> list[Tier]:
        return await info.context.read(tiers.list_tiers)

    @strawberry.field(
        permission_classes=[IsAdmin],
        description=(
            "How many members would move up, down or stay in each tier if the proposed "
            "thresholds applied now, from their current qualifying points. Writes nothing."
        ),
    )
    async def preview_tier_change(
        self, info: strawberry.Info, input: PreviewTierChangeInput
    ) -> TierChangePreviewPayload:
        proposed = [
            tiers.ProposedTier(rank=t.rank, threshold=t.threshold, name=t.name) for t in input.tiers
        ]
        try:
            rows = await info.context.read(
                lambda session: evaluation.preview_tier_change(
                    session, proposed=proposed, now=utcnow()
                )
            )
        except DomainError as error:
            return TierChangePreviewPayload(errors=[UserError.of(error)])
        return TierChangePreviewPayload(
            errors=[],
            tiers=[
                TierPreview(
                    rank=r.rank,
                    name=r.name,
                    threshold=r.threshold,
                    members=r.members,
                    moved_up=r.moved_up,
                    moved_down=r.moved_down,
                    stayed=r.stayed,
                )
                for r in rows
            ],
        )


@strawberry.type
class TierMutations:
    @strawberry.mutation(permission_classes=[IsAdmin])
    async def create_tier(self, info: strawberry.Info, input: CreateTierInput) -> TierPayload:
        tier = tiers.TierIn(
            name=input.name,
            rank=input.rank,
            threshold=input.threshold,
            multiplier=input.multiplier,
            benefits=input.benefits,
            retention_days=input.retention_days,
        )
        return await mutate(
            info,
            TierPayload,
            lambda session: tiers.create_tier(session, tier=tier),
            lambda created: {"tier": created},
        )

    @strawberry.mutation(permission_classes=[IsAdmin])
    async def update_tier(self, info: strawberry.Info, input: UpdateTierInput) -> TierPayload:
        changes = tiers.TierChanges(
            **{
                name: UNCHANGED if getattr(input, name) is UNSET else getattr(input, name)
                for name in (
                    "name",
                    "rank",
                    "threshold",
                    "multiplier",
                    "benefits",
                    "retention_days",
                )
            }
        )
        return await mutate(
            info,
            TierPayload,
            lambda session: tiers.update_tier(
                session, tier_id=key_or_zero("Tier", input.id), changes=changes
            ),
            lambda updated: {"tier": updated},
        )

    @strawberry.mutation(permission_classes=[IsAdmin])
    async def delete_tier(self, info: strawberry.Info, input: DeleteTierInput) -> DeleteTierPayload:
        move_to = (
            None if input.move_members_to is None else key_or_zero("Tier", input.move_members_to)
        )
        return await mutate(
            info,
            DeleteTierPayload,
            lambda session: tiers.delete_tier(
                session, tier_id=key_or_zero("Tier", input.id), move_members_to=move_to
            ),
            lambda result: {"tier": result[0], "members_moved": result[1]},
        )

    @strawberry.mutation(permission_classes=[IsAdmin], description="An admin override.")
    async def set_member_tier(
        self, info: strawberry.Info, input: SetMemberTierInput
    ) -> SetMemberTierPayload:
        tier_id = None if input.tier_id is None else key_or_zero("Tier", input.tier_id)
        return await mutate(
            info,
            SetMemberTierPayload,
            lambda session: tiers.set_member_tier(
                session,
                member_id=key_or_zero("Member", input.member_id),
                tier_id=tier_id,
                reason=input.reason,
            ),
            lambda member: {"member": member},
        )
