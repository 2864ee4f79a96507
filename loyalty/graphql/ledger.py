"""adjustPoints."""

import strawberry

from loyalty.graphql.errors import UserError, mutate
from loyalty.graphql.permissions import IsAdmin
from loyalty.graphql.types import LedgerEntry, Member
from loyalty.ids import key_or_zero
from loyalty.ledger import adjustments


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
