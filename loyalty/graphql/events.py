"""recordEvent: a member's non-purchase action, rewarded by the event rules in force, and the
MemberEvent type it records."""

from datetime import datetime
from typing import Annotated

import strawberry
from strawberry import Parent
from strawberry.scalars import JSON

from loyalty.events import service as events
from loyalty.events.models import MemberEvent as MemberEventRow
from loyalty.graphql.errors import Payload, mutate
from loyalty.graphql.members import Member
from loyalty.graphql.permissions import CanRecordEvents
from loyalty.ids import encode_id, key_or_zero


@strawberry.type(description="A non-purchase action recorded with recordEvent, and what it earned.")
class MemberEvent:
    type: str = strawberry.field(description="What happened, such as app_installed.")
    occurred_at: datetime = strawberry.field(description="When it happened.")
    created_at: datetime = strawberry.field(description="When it was recorded.")
    points_awarded: int = strawberry.field(
        description="Points the event rules in force gave for it (0: none applied)."
    )
    attributes: JSON = strawberry.field(
        description="The JSON object sent with the event, as sent ({} when none)."
    )

    @strawberry.field(description="Opaque identifier of the event.")
    def id(self, root: Parent[MemberEventRow]) -> strawberry.ID:
        return strawberry.ID(encode_id("MemberEvent", root.id))


@strawberry.input(description="A non-purchase action of a member, such as installing the app.")
class RecordEventInput:
    idempotency_key: str = strawberry.field(
        description="Your unique key for this event: a retry with it records nothing twice."
    )
    member_id: strawberry.ID = strawberry.field(description="The member who acted.")
    type: str = strawberry.field(
        description=(
            "e.g. app_installed, review_written: lower-case letters, digits and _ . : - "
            "(at most 64); not birthday, which a job awards."
        )
    )
    occurred_at: datetime | None = strawberry.field(
        default=None,
        description="When it happened; omitted: now. At most 5 minutes ahead.",
    )
    attributes: JSON | None = strawberry.field(
        default=None,
        description="Your details about it: a JSON object, at most 4096 bytes, 8 levels deep.",
    )


@strawberry.type(description="The result of recordEvent.")
class RecordEventPayload(Payload):
    event: MemberEvent | None = strawberry.field(default=None, description="The event recorded.")
    points_awarded: int | None = strawberry.field(
        default=None, description="Points the event rules in force gave for it (0: none)."
    )
    member: Member | None = strawberry.field(
        default=None,
        description="The member with the new balances; app keys may not read it.",
    )


@strawberry.type
class EventMutations:
    @strawberry.mutation(
        permission_classes=[CanRecordEvents],
        description=(
            "A non-purchase action; the event rules in force reward it. Admin, POS and app "
            "keys (not member tokens); idempotent per idempotencyKey."
        ),
    )
    async def record_event(
        self,
        info: strawberry.Info,
        input: Annotated[RecordEventInput, strawberry.argument(description="The event.")],
    ) -> RecordEventPayload:
        event = events.EventIn(
            member_id=key_or_zero("Member", input.member_id),
            type=input.type,
            occurred_at=input.occurred_at,
            attributes=input.attributes,
        )
        return await mutate(
            info,
            RecordEventPayload,
            lambda session: events.record_event(
                session,
                scope=info.context.principal.scope,
                idempotency_key=input.idempotency_key,
                event=event,
            ),
            lambda result: {
                "event": result.event,
                "points_awarded": result.points_awarded,
                "member": result.member,
            },
        )
