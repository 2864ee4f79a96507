"""adjustPoints and the liability report."""

from datetime import datetime

import strawberry

from loyalty.db import utcnow
from loyalty.graphql.errors import UserError, mutate
from loyalty.graphql.permissions import IsAdmin
from loyalty.graphql.types import LedgerEntry, Member, Tier
from loyalty.ids import key_or_zero
from loyalty.ledger import adjustments, balances
from loyalty.validation import instant


@strawberry.input
class AdjustPointsInput:
    idempotency_key: str
    member_id: strawberry.ID
    points: int = strawberry.field(description="Signed: positive credits, negative debits.")
    reason: str
    qualifying: bool = strawberry.field(
        default=False, description="Count a credit toward tier qualification."
    )


@strawberry.type
class AdjustPointsPayload:
    errors: list[UserError]
    entry: LedgerEntry | None = None
    member: Member | None = None


@strawberry.type
class LiabilityByTier:
    tier: Tier | None
    members: int
    available: int
    pending: int
    total: int


@strawberry.type
class PointsLiability:
    as_of: datetime
    members: int
    available: int
    pending: int
    total: int = strawberry.field(description="Outstanding points: available + pending.")
    by_tier: list[LiabilityByTier]


@strawberry.type
class LedgerQueries:
    @strawberry.field(
        permission_classes=[IsAdmin],
        description="Outstanding points at an instant (default now), replayed from the ledger.",
    )
    async def points_liability(
        self, info: strawberry.Info, as_of: datetime | None = None
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
    @strawberry.mutation(permission_classes=[IsAdmin])
    async def adjust_points(
        self, info: strawberry.Info, input: AdjustPointsInput
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
