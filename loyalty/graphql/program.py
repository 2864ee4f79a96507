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
    time_zone: str | None = strawberry.field(
        default=UNSET, description="IANA name; rules' days and hours and the caps' periods."
    )
    max_backdate_days: int | None = strawberry.field(
        default=UNSET, description="How far back a purchase's occurredAt may lie (0-3650)."
    )
    referrer_points: int | None = UNSET
    referee_points: int | None = UNSET
    referral_limit: int | None = strawberry.field(
        default=UNSET, description="Referrals rewarded per referrer; null: no limit."
    )


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
                    "time_zone",
                    "max_backdate_days",
                    "referrer_points",
                    "referee_points",
                    "referral_limit",
                )
            }
        )
        return await mutate(
            info,
            UpdateProgramPayload,
            lambda session: program_service.update_program(session, changes=changes),
            lambda program: {"program": program},
        )
