"""adjustPoints and the liability report."""

from datetime import datetime
from typing import Annotated

import strawberry

from loyalty.db import utcnow
from loyalty.graphql.errors import UserError, mutate
from loyalty.graphql.permissions import IsAdmin
from loyalty.graphql.types import LedgerEntry, Member, Tier, errors_field
from loyalty.ids import key_or_zero
from loyalty.ledger import adjustments, balances
from loyalty.validation import instant


@strawberry.input(description="A manual correction of a member's available points.")
class AdjustPointsInput:
    idempotency_key: str = strawberry.field(
        description="Your unique key for this adjustment: a retry with it writes nothing twice."
    )
    member_id: strawberry.ID = strawberry.field(description="The member to credit or debit.")
    points: int = strawberry.field(description="Signed: positive credits, negative debits.")
    reason: str = strawberry.field(
        description="Why, for the ledger and the member's history; required."
    )
    qualifying: bool = strawberry.field(
        default=False, description="Count a credit toward tier qualification."
    )


@strawberry.type(description="The result of adjustPoints.")
class AdjustPointsPayload:
    errors: list[UserError] = errors_field()
    entry: LedgerEntry | None = strawberry.field(
        default=None, description="The ADJUST ledger entry written."
    )
    member: Member | None = strawberry.field(
        default=None, description="The member with the new balances."
    )


@strawberry.type(description="Outstanding points of the members who held one tier at the instant.")
class LiabilityByTier:
    tier: Tier | None = strawberry.field(
        description="The tier; null for members without one (or whose tier was deleted)."
    )
    members: int = strawberry.field(description="Members counted in this line.")
    available: int = strawberry.field(description="Their available points.")
    pending: int = strawberry.field(description="Their pending points.")
    total: int = strawberry.field(description="available + pending.")


@strawberry.type(
    description="Points the program owes its members at an instant, for finance. Admin only."
)
class PointsLiability:
    as_of: datetime = strawberry.field(description="The instant the figures hold for.")
    members: int = strawberry.field(description="Members counted, over all tiers.")
    available: int = strawberry.field(description="Available points of all members.")
    pending: int = strawberry.field(description="Pending points of all members.")
    total: int = strawberry.field(description="Outstanding points: available + pending.")
    by_tier: list[LiabilityByTier] = strawberry.field(
        description="The same figures by the tier each member held at the instant."
    )


@strawberry.type
class LedgerQueries:
    @strawberry.field(
        permission_classes=[IsAdmin],
        description=(
            "Outstanding points at an instant (default now), replayed from the ledger. Admin only."
        ),
    )
    async def points_liability(
        self,
        info: strawberry.Info,
        as_of: Annotated[
            datetime | None,
            strawberry.argument(description="The instant, with its offset; omitted: now."),
        ] = None,
    ) -> PointsLiability:
        at = as_of or utcnow()
        instant(at, "asOf")
        lines = await info.context.read(lambda session: balances.liability(session, as_of=at))
        by_tier = [
            LiabilityByTier(
                tier=line.tier,
                members=line.members,
                available=line.available,
                pending=line.pending,
                total=line.available + line.pending,
            )
            for line in lines
        ]
        return PointsLiability(
            as_of=at,
            members=sum(line.members for line in by_tier),
            available=sum(line.available for line in by_tier),
            pending=sum(line.pending for line in by_tier),
            total=sum(line.total for line in by_tier),
            by_tier=by_tier,
        )


@strawberry.type
class LedgerMutations:
    @strawberry.mutation(
        permission_classes=[IsAdmin],
        description=(
            "Credit or debit a member's available points by hand (goodwill, corrections). "
            "Admin only; idempotent per idempotencyKey."
        ),
    )
    async def adjust_points(
        self,
        info: strawberry.Info,
        input: Annotated[
            AdjustPointsInput, strawberry.argument(description="The member, points and reason.")
        ],
    ) -> AdjustPointsPayload:
        adjustment = adjustments.AdjustmentIn(
            member_id=key_or_zero("Member", input.member_id),
            points=input.points,
            reason=input.reason,
            qualifying=input.qualifying,
        )
        return await mutate(
            info,
            AdjustPointsPayload,
            lambda session: adjustments.adjust_points(
                session,
                scope=info.context.principal.scope,
                idempotency_key=input.idempotency_key,
                adjustment=adjustment,
            ),
            lambda result: {"entry": result.entry, "member": result.member},
        )
