"""Program settings (the Program type, read and changed) and Money, the amount type."""

from typing import Annotated

import strawberry
from strawberry import UNSET, Parent

from loyalty.graphql.errors import Payload, mutate
from loyalty.graphql.permissions import IsAdmin, IsAuthenticated
from loyalty.graphql.scalars import DecimalString
from loyalty.inputs import parse, sent_fields
from loyalty.money import plain
from loyalty.program import service as program_service
from loyalty.program.models import Program as ProgramRow


@strawberry.type(description="An amount of money; exact, never a float.")
class Money:
    amount: DecimalString = strawberry.field(
        description='Decimal string in the currency\'s major unit, such as "12.50".'
    )
    currency: str = strawberry.field(description="ISO 4217 code, such as EUR.")


@strawberry.type(
    description="The loyalty program's settings: one per deployment, changed with updateProgram."
)
class Program:
    name: str = strawberry.field(description="The program's name, as shown to members.")
    currency: str = strawberry.field(
        description="ISO 4217 code every purchase and refund must be in."
    )
    pending_days: int = strawberry.field(
        description=(
            "Days after a purchase's occurredAt before its points become available "
            "(0: at once); refunds in that time take them back first."
        )
    )
    points_expire_after_days: int | None = strawberry.field(
        description="Days after they are earned that points expire; null: they never expire."
    )
    tier_window_days: int = strawberry.field(
        description="Length of the rolling window in which qualifying points count toward tiers."
    )
    time_zone: str = strawberry.field(
        description="Where days, weeks and hours are counted (rules, caps, birthdays)."
    )
    max_backdate_days: int = strawberry.field(
        description="How far back a purchase's occurredAt may lie."
    )
    referrer_points: int = strawberry.field(
        description="What a referrer earns when a referee's first purchase earns points."
    )
    referee_points: int = strawberry.field(
        description="What the referee earns on that first purchase, on top of its points."
    )
    referral_limit: int | None = strawberry.field(
        description="Referrals rewarded per referrer (null: no limit)."
    )
    idempotency_retention_days: int = strawberry.field(
        description=(
            "How long idempotency keys are kept; the retention job deletes older ones, and a "
            "retry after that is treated as a new request."
        )
    )
    expiry_warning_days: int = strawberry.field(
        description=(
            "How many days before they expire points are announced by a points.expiring "
            "event (the warn-expiring job; once per earned lot); 0: never."
        )
    )
    closed_member_retention_days: int | None = strawberry.field(
        description=(
            "Days a CLOSED member's personal data is kept; then the retention job erases it "
            "as eraseMember would. null: kept until eraseMember."
        )
    )

    @strawberry.field(description="Points earned per 1.00 of the program's currency.")
    def points_per_unit(self, root: Parent[ProgramRow]) -> DecimalString:
        return DecimalString(plain(root.points_per_unit))


@strawberry.input(description="Program settings to change; fields left out stay as they are.")
class UpdateProgramInput:
    name: str | None = strawberry.field(
        default=UNSET, description="The program's name, up to 200 characters."
    )
    currency: str | None = strawberry.field(
        default=UNSET,
        description="ISO 4217 code; cannot change once any purchase is recorded.",
    )
    points_per_unit: DecimalString | None = strawberry.field(
        default=UNSET, description="Points per 1.00 of the currency, 0 to 10000."
    )
    pending_days: int | None = strawberry.field(
        default=UNSET,
        description="Days points stay pending after a purchase, 0 to 365; never null.",
    )
    points_expire_after_days: int | None = strawberry.field(
        default=UNSET,
        description=(
            "Days until earned points expire (1 to 36500, above pendingDays); null: never."
        ),
    )
    tier_window_days: int | None = strawberry.field(
        default=UNSET,
        description="Length of the rolling qualifying window for tiers, 1 to 3650 days.",
    )
    time_zone: str | None = strawberry.field(
        default=UNSET, description="IANA name; rules' days and hours and the caps' periods."
    )
    max_backdate_days: int | None = strawberry.field(
        default=UNSET, description="How far back a purchase's occurredAt may lie (0-3650)."
    )
    referrer_points: int | None = strawberry.field(
        default=UNSET,
        description="What a referrer earns per rewarded referral, 0 to 1000000; 0: nothing.",
    )
    referee_points: int | None = strawberry.field(
        default=UNSET,
        description="What a referee earns on the first purchase, 0 to 1000000; 0: nothing.",
    )
    referral_limit: int | None = strawberry.field(
        default=UNSET, description="Referrals rewarded per referrer; null: no limit."
    )
    idempotency_retention_days: int | None = strawberry.field(
        default=UNSET,
        description="How long idempotency keys are kept, 1 to 3650 days (the retention job).",
    )
    expiry_warning_days: int | None = strawberry.field(
        default=UNSET,
        description=(
            "Days before expiry that points.expiring announces points, 0 to 365 (0: never); "
            "never null."
        ),
    )
    closed_member_retention_days: int | None = strawberry.field(
        default=UNSET,
        description=(
            "Days after closing that a CLOSED member is erased by the retention job, 1 to "
            "36500; null: never."
        ),
    )


@strawberry.type(description="The result of updateProgram.")
class UpdateProgramPayload(Payload):
    program: Program | None = strawberry.field(
        default=None, description="The program with the changes applied."
    )


@strawberry.type
class ProgramQueries:
    @strawberry.field(
        permission_classes=[IsAuthenticated],
        description="The program's settings; any caller may read them.",
    )
    async def program(self, info: strawberry.Info) -> Program:
        return await info.context.read(program_service.get_program)


@strawberry.type
class ProgramMutations:
    @strawberry.mutation(
        permission_classes=[IsAdmin],
        description="Change program settings; they apply to what happens from now. Admin only.",
    )
    async def update_program(
        self,
        info: strawberry.Info,
        input: Annotated[
            UpdateProgramInput, strawberry.argument(description="The settings to change.")
        ],
    ) -> UpdateProgramPayload:
        return await mutate(
            info,
            UpdateProgramPayload,
            lambda session: program_service.update_program(
                session,
                changes=parse(
                    program_service.ProgramChanges,
                    **sent_fields(input, program_service.ProgramChanges, UNSET),
                ),
            ),
            lambda program: {"program": program},
        )
