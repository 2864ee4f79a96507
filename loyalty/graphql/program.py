"""Program settings and tiers."""

import strawberry
from strawberry import UNSET

from loyalty.graphql.errors import UserError, mutate
from loyalty.graphql.permissions import IsAdmin, IsAuthenticated
from loyalty.graphql.scalars import DecimalString
from loyalty.graphql.types import Program
from loyalty.program import service as program_service
from loyalty.validation import UNSET as UNCHANGED


@strawberry.input
class UpdateProgramInput:
    name: str | None = UNSET
    currency: str | None = UNSET
    points_per_unit: DecimalString | None = UNSET
    pending_days: int | None = UNSET
    points_expire_after_days: int | None = strawberry.field(
        default=UNSET, description="null: points never expire."
    )
    tier_window_days: int | None = UNSET


@strawberry.type
class UpdateProgramPayload:
    errors: list[UserError]
    program: Program | None = None


@strawberry.type
class ProgramQueries:
    @strawberry.field(permission_classes=[IsAuthenticated])
    async def program(self, info: strawberry.Info) -> Program:
        return await info.context.read(program_service.get_program)


@strawberry.type
class ProgramMutations:
    @strawberry.mutation(permission_classes=[IsAdmin])
    async def update_program(
        self, info: strawberry.Info, input: UpdateProgramInput
    ) -> UpdateProgramPayload:
        changes = program_service.ProgramChanges(
            **{
                name: UNCHANGED if getattr(input, name) is UNSET else getattr(input, name)
                for name in (
                    "name",
                    "currency",
                    "points_per_unit",
                    "pending_days",
                    "points_expire_after_days",
                    "tier_window_days",
                )
            }
        )
        return await mutate(
            info,
            UpdateProgramPayload,
            lambda session: program_service.update_program(session, changes=changes),
            lambda program: {"program": program},
        )
