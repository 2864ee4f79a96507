"""Tiers, a member's progress and tier history; tier configuration, admin overrides and the
what-if preview."""

from datetime import datetime
from typing import Annotated

import strawberry
from strawberry import UNSET, Parent

from loyalty.db import utcnow
from loyalty.errors import DomainError
from loyalty.graphql.errors import Payload, UserError, mutate
from loyalty.graphql.members import Member
from loyalty.graphql.permissions import IsAdmin, IsAuthenticated
from loyalty.graphql.scalars import DecimalString
from loyalty.ids import encode_id, key_or_zero
from loyalty.inputs import parse_indexed, sent_fields
from loyalty.money import plain
from loyalty.tiers import evaluation
from loyalty.tiers import service as tiers
from loyalty.tiers.models import Tier as TierRow
from loyalty.tiers.models import TierChange as TierChangeRow
from loyalty.tiers.models import TierChangeReason as DomainTierChangeReason


@strawberry.type(
    description="A status level: reached with qualifying points, it multiplies purchase points."
)
class Tier:
    name: str = strawberry.field(description="Shown to members, such as Gold.")
    rank: int = strawberry.field(
        description="Position in the ladder: higher is better; unique among tiers."
    )
    threshold: int = strawberry.field(
        description="Qualifying points within the program's tier window that reach this tier."
    )
    benefits: list[str] = strawberry.field(
        description="Perks to show members, as the admin wrote them; the API does not apply them."
    )
    retention_days: int = strawberry.field(
        description="How long a member keeps the tier after falling below its threshold."
    )

    @strawberry.field(description="Opaque identifier of the tier.")
    def id(self, root: Parent[TierRow]) -> strawberry.ID:
        return strawberry.ID(encode_id("Tier", root.id))

    @strawberry.field(description="Applied to points earned from purchases.")
    def multiplier(self, root: Parent[TierRow]) -> DecimalString:
        return DecimalString(plain(root.multiplier))


@strawberry.type(description="Where a member stands in the tier ladder now.")
class TierProgress:
    current: Tier | None = strawberry.field(
        description="The tier held now; null when the member holds none."
    )
    next: Tier | None = strawberry.field(
        description="The tier ranked just above the current one; null at the top."
    )
    qualifying_points: int = strawberry.field(
        description="Points that count toward tiers within the rolling window, as of now."
    )
    points_to_next: int | None = strawberry.field(
        description="Qualifying points still needed to reach next (0 if reached); null at the top."
    )
    window_starts_at: datetime = strawberry.field(
        description="Start of the rolling window: qualifying points earned before it do not count."
    )
    window_ends_at: datetime | None = strawberry.field(
        description="When the oldest points counted now leave the rolling window."
    )


TierChangeReason = DomainTierChangeReason
strawberry.enum(
    TierChangeReason,
    name="TierChangeReason",
    description=(
        "QUALIFIED: points reached the tier; EXPIRED: retention ran out below the threshold; "
        "ADMIN: setMemberTier; RULE_CHANGE: the tier was deleted and its members moved."
    ),
)


@strawberry.type(description="One move of a member from one tier to another, kept as history.")
class TierChange:
    from_name: str | None = strawberry.field(
        description="The old tier's name then (kept when the tier is renamed or deleted)."
    )
    to_name: str | None = strawberry.field(
        description="The new tier's name at the time; null when the member was left without one."
    )
    reason: TierChangeReason = strawberry.field(description="Why the tier changed.")
    qualifying_points: int | None = strawberry.field(
        description="Qualifying points when it changed; null for admin and rule changes."
    )
    note: str | None = strawberry.field(
        description="The admin's reason, or what happened (such as a deleted tier)."
    )
    at: datetime = strawberry.field(description="When the change took effect.")

    @strawberry.field(name="from", description="The old tier; null if none or since deleted.")
    async def from_tier(self, root: Parent[TierChangeRow], info: strawberry.Info) -> Tier | None:
        if root.from_tier_id is None:
            return None
        return await info.context.loaders.tier.load(root.from_tier_id)

    @strawberry.field(description="The new tier; null if none or since deleted.")
    async def to(self, root: Parent[TierChangeRow], info: strawberry.Info) -> Tier | None:
        if root.to_tier_id is None:
            return None
        return await info.context.loaders.tier.load(root.to_tier_id)


@strawberry.input(description="A new tier; a higher rank must need strictly more points.")
class CreateTierInput:
    name: str = strawberry.field(description="Shown to members, up to 100 characters.")
    rank: int = strawberry.field(description="Position in the ladder, 0 to 1000; unique.")
    threshold: int = strawberry.field(
        description="Qualifying points in the tier window that reach it; 0 for the base tier."
    )
    multiplier: DecimalString = strawberry.field(
        default=DecimalString("1"), description="Applied to purchase points, 1 to 100."
    )
    benefits: list[str] | None = strawberry.field(
        default=None, description="Perks to show members, at most 20."
    )
    retention_days: int = strawberry.field(
        default=0, description="Days a member keeps it after falling below, 0 to 3650."
    )


@strawberry.input(description="Changes to a tier: fields left out stay as they are.")
class UpdateTierInput:
    id: strawberry.ID = strawberry.field(description="The tier to change.")
    name: str | None = strawberry.field(
        default=UNSET, description="Shown to members, up to 100 characters."
    )
    rank: int | None = strawberry.field(
        default=UNSET, description="Position in the ladder, 0 to 1000; unique."
    )
    threshold: int | None = strawberry.field(
        default=UNSET,
        description="Raising it demotes nobody at once: retention applies, then evaluate-tiers.",
    )
    multiplier: DecimalString | None = strawberry.field(
        default=UNSET, description="Applied to purchase points from now, 1 to 100."
    )
    benefits: list[str] | None = strawberry.field(
        default=UNSET, description="Perks to show members, at most 20; null: none."
    )
    retention_days: int | None = strawberry.field(
        default=UNSET, description="Days a member keeps it after falling below, 0 to 3650."
    )


@strawberry.input(description="A tier to delete, and where its members go.")
class DeleteTierInput:
    id: strawberry.ID = strawberry.field(
        description="The tier; refused while rewards or earning rules name it."
    )
    move_members_to: strawberry.ID | None = strawberry.field(
        default=None, description="Required when members hold the tier."
    )


@strawberry.input(description="An admin override of a member's tier.")
class SetMemberTierInput:
    member_id: strawberry.ID = strawberry.field(description="The member.")
    tier_id: strawberry.ID | None = strawberry.field(
        description="The tier to give; null leaves the member without a tier."
    )
    reason: str = strawberry.field(
        description="Why, kept in the member's tier history; up to 500 characters."
    )


@strawberry.input(description="One tier of a proposed ladder.")
class ProposedTierInput:
    rank: int = strawberry.field(description="Its rank; unique in the proposal.")
    threshold: int = strawberry.field(
        description="Its qualifying points; must rise with rank and not be negative."
    )
    name: str | None = strawberry.field(
        default=None, description="A label echoed back in the preview."
    )


@strawberry.input(description="A ladder of thresholds to try out.")
class PreviewTierChangeInput:
    tiers: list[ProposedTierInput] = strawberry.field(description="1 to 50 proposed tiers.")


@strawberry.type(description="The result of createTier or updateTier.")
class TierPayload(Payload):
    tier: Tier | None = strawberry.field(default=None, description="The tier as saved.")


@strawberry.type(description="The result of deleteTier.")
class DeleteTierPayload(Payload):
    tier: Tier | None = strawberry.field(default=None, description="The tier deleted.")
    members_moved: int | None = strawberry.field(
        default=None, description="How many members moved to moveMembersTo."
    )


@strawberry.type(description="The result of setMemberTier.")
class SetMemberTierPayload(Payload):
    member: Member | None = strawberry.field(
        default=None, description="The member in the new tier."
    )


@strawberry.type(description="How one proposed tier would be populated if it applied now.")
class TierPreview:
    rank: int = strawberry.field(description="-1: below every proposed threshold.")
    name: str | None = strawberry.field(description="The name proposed; null if none given.")
    threshold: int = strawberry.field(description="The threshold proposed.")
    members: int = strawberry.field(description="Members who would hold it.")
    moved_up: int = strawberry.field(description="Of those, members who would rise to it.")
    moved_down: int = strawberry.field(
        description="Would fall to this tier (after their current tier's retention)."
    )
    stayed: int = strawberry.field(description="Of those, members at the same rank as now.")


@strawberry.type(description="The result of previewTierChange.")
class TierChangePreviewPayload(Payload):
    tiers: list[TierPreview] | None = strawberry.field(
        default=None,
        description="One line per proposed tier by rank, then rank -1 for members below all.",
    )


@strawberry.type
class TierQueries:
    @strawberry.field(
        permission_classes=[IsAuthenticated],
        description="The tier ladder, lowest rank first. Any caller.",
    )
    async def tiers(self, info: strawberry.Info) -> list[Tier]:
        return await info.context.read(tiers.list_tiers)

    @strawberry.field(
        permission_classes=[IsAdmin],
        description=(
            "How many members would move up, down or stay in each tier if the proposed "
            "thresholds applied now, from their current qualifying points. Writes nothing. "
            "Admin only."
        ),
    )
    async def preview_tier_change(
        self,
        info: strawberry.Info,
        input: Annotated[
            PreviewTierChangeInput, strawberry.argument(description="The proposed ladder.")
        ],
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
    @strawberry.mutation(
        permission_classes=[IsAdmin],
        description="Add a tier to the ladder; members reach it as they earn. Admin only.",
    )
    async def create_tier(
        self,
        info: strawberry.Info,
        input: Annotated[CreateTierInput, strawberry.argument(description="The new tier.")],
    ) -> TierPayload:
        return await mutate(
            info,
            TierPayload,
            lambda session: tiers.create_tier(
                session,
                tier=parse_indexed(tiers.TierDraft, **sent_fields(input, tiers.TierDraft, UNSET)),
            ),
            lambda created: {"tier": created},
        )

    @strawberry.mutation(
        permission_classes=[IsAdmin],
        description="Change a tier; nobody is demoted at once. Admin only.",
    )
    async def update_tier(
        self,
        info: strawberry.Info,
        input: Annotated[
            UpdateTierInput, strawberry.argument(description="The tier and its changes.")
        ],
    ) -> TierPayload:
        return await mutate(
            info,
            TierPayload,
            lambda session: tiers.update_tier(
                session,
                tier_id=key_or_zero("Tier", input.id),
                changes=parse_indexed(
                    tiers.TierDraft, **sent_fields(input, tiers.TierDraft, UNSET)
                ),
            ),
            lambda updated: {"tier": updated},
        )

    @strawberry.mutation(
        permission_classes=[IsAdmin],
        description="Delete a tier, moving its members to another. Admin only.",
    )
    async def delete_tier(
        self,
        info: strawberry.Info,
        input: Annotated[
            DeleteTierInput, strawberry.argument(description="The tier and where members go.")
        ],
    ) -> DeleteTierPayload:
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

    @strawberry.mutation(
        permission_classes=[IsAdmin],
        description=(
            "An admin override of one member's tier; the next evaluate-tiers run treats it "
            "like any other tier. Admin only."
        ),
    )
    async def set_member_tier(
        self,
        info: strawberry.Info,
        input: Annotated[
            SetMemberTierInput, strawberry.argument(description="The member, tier and reason.")
        ],
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
