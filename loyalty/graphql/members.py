"""Member queries and mutations."""

from datetime import date
from typing import Annotated

import strawberry
from sqlalchemy.ext.asyncio import AsyncSession
from strawberry import UNSET

from loyalty.auth.models import Role
from loyalty.db import utcnow
from loyalty.graphql.errors import UserError, mutate
from loyalty.graphql.pagination import After, Connection, First, to_connection
from loyalty.graphql.permissions import (
    CanEnroll,
    CanReadMembers,
    CanUpdateMembers,
    IsAdmin,
    IsMember,
    ensure_member_access,
    forbidden,
)
from loyalty.graphql.types import Channel, Member, MemberStatus, errors_field
from loyalty.ids import decode_id, key_or_zero
from loyalty.inputs import parse, sent_fields
from loyalty.members import service as members
from loyalty.members.models import Member as MemberRow
from loyalty.pagination import Page, page_request
from loyalty.segments import service as segments


@strawberry.input(description="A new member; only externalId is required.")
class EnrollMemberInput:
    external_id: str = strawberry.field(
        description="Your identifier for the member (card number, customer id), up to 128 chars."
    )
    email: str | None = strawberry.field(default=None, description="Contact email.")
    phone: str | None = strawberry.field(default=None, description="Contact phone number.")
    first_name: str | None = strawberry.field(
        default=None, description="Given name, up to 100 characters."
    )
    last_name: str | None = strawberry.field(
        default=None, description="Family name, up to 100 characters."
    )
    channel: Channel | None = strawberry.field(
        default=None, description="Where the member enrolled, for reporting."
    )
    date_of_birth: date | None = strawberry.field(
        default=None, description="For the birthday bonus; between 1900-01-01 and today."
    )
    referral_code: str | None = strawberry.field(
        default=None, description="A member's referral code: the new member is their referee."
    )


@strawberry.input(description="Marketing consents: those left out stay as they are; never null.")
class ConsentsInput:
    marketing_email: bool | None = strawberry.field(
        default=UNSET, description="Marketing by email."
    )
    marketing_sms: bool | None = strawberry.field(default=UNSET, description="Marketing by SMS.")
    marketing_push: bool | None = strawberry.field(
        default=UNSET, description="Marketing by app notifications."
    )


@strawberry.input(
    description="Changes to a member: fields left out stay as they are; null clears a field."
)
class UpdateMemberInput:
    id: strawberry.ID = strawberry.field(description="The member to change.")
    email: str | None = strawberry.field(default=UNSET, description="Contact email.")
    phone: str | None = strawberry.field(default=UNSET, description="Contact phone number.")
    first_name: str | None = strawberry.field(
        default=UNSET, description="Given name, up to 100 characters."
    )
    last_name: str | None = strawberry.field(
        default=UNSET, description="Family name, up to 100 characters."
    )
    date_of_birth: date | None = strawberry.field(
        default=UNSET, description="For the birthday bonus; between 1900-01-01 and today."
    )
    status: MemberStatus | None = strawberry.field(
        default=UNSET,
        description="Suspend, close or reactivate; admin only, and never null.",
    )
    consents: ConsentsInput | None = strawberry.field(
        default=UNSET,
        description="Marketing consents to change (a member token may set its own).",
    )


@strawberry.type(description="The result of enrollMember.")
class EnrollMemberPayload:
    errors: list[UserError] = errors_field()
    member: Member | None = strawberry.field(
        default=None, description="The new member; null when errors is not empty."
    )


@strawberry.type(description="The result of updateMember.")
class UpdateMemberPayload:
    errors: list[UserError] = errors_field()
    member: Member | None = strawberry.field(
        default=None, description="The member as changed; null when errors is not empty."
    )


def _changes(input: UpdateMemberInput) -> members.MemberChanges:
    """The one mapping of updateMember's input onto the profile change; every error at once."""
    values = sent_fields(input, members.MemberChanges, UNSET)
    given = values.get("consents")
    if given is not None:
        values["consents"] = sent_fields(given, members.ConsentsIn, UNSET)
    elif "consents" in values:
        values["consents"] = {}
    return parse(members.MemberChanges, **values)


@strawberry.type
class MemberQueries:
    @strawberry.field(
        permission_classes=[CanReadMembers],
        description=(
            "A member by id; null if none. Admin and POS; a member token for itself only."
        ),
    )
    async def member(
        self,
        info: strawberry.Info,
        id: Annotated[strawberry.ID, strawberry.argument(description="The member's id.")],
    ) -> Member | None:
        member_id = decode_id("Member", id)
        if member_id is not None:
            ensure_member_access(info, member_id)
        elif info.context.principal.role == Role.MEMBER:
            raise forbidden()
        return await info.context.read(
            lambda session: members.find_member(session, member_id=member_id)
        )

    @strawberry.field(
        permission_classes=[CanReadMembers],
        description=(
            "A member by your identifier (a scanned card); null if none. Admin and POS; "
            "a member token for itself only."
        ),
    )
    async def member_by_external_id(
        self,
        info: strawberry.Info,
        external_id: Annotated[
            str, strawberry.argument(description="The externalId given at enrollment.")
        ],
    ) -> Member | None:
        member = await info.context.read(
            lambda session: members.find_member_by_external_id(session, external_id=external_id)
        )
        if info.context.principal.role == Role.MEMBER and (
            member is None or member.id != info.context.principal.member_id
        ):
            raise forbidden()
        return member

    @strawberry.field(
        permission_classes=[IsAdmin],
        description="Members in enrollment order, oldest first, optionally searched. Admin only.",
    )
    async def members(
        self,
        info: strawberry.Info,
        first: First = None,
        after: After = None,
        search: Annotated[
            str | None,
            strawberry.argument(
                description=(
                    "Case-insensitive substring of externalId, email, phone or name "
                    "(at most 200 characters); omitted: every member."
                )
            ),
        ] = None,
        segment_id: Annotated[
            strawberry.ID | None,
            strawberry.argument(
                description=(
                    "Only the members of this segment now; one that names nothing: no members."
                )
            ),
        ] = None,
    ) -> Connection[Member]:
        request = page_request(first, after, max_size=info.context.settings.page_size_max)

        async def load(session: AsyncSession) -> Page[MemberRow]:
            within = None
            if segment_id is not None:
                within = await segments.condition_of(
                    session, segment_id=decode_id("Segment", segment_id), now=utcnow()
                )
                if within is None:
                    return Page(items=[], keys=[], has_next=False)
            return await members.search_members(session, search=search, page=request, within=within)

        page = await info.context.read(load)
        return to_connection(page, after_given=after is not None)

    @strawberry.field(
        permission_classes=[IsMember],
        description="The member a member token names; only member tokens may ask.",
    )
    async def me(self, info: strawberry.Info) -> Member | None:
        return await info.context.read(
            lambda session: members.find_member(session, member_id=info.context.principal.member_id)
        )


@strawberry.type
class MemberMutations:
    @strawberry.mutation(
        permission_classes=[CanEnroll],
        description=(
            "Enroll a member at the base tier. Admin, POS and app keys; a second enrollment of "
            "an externalId is ALREADY_EXISTS, so a retry never creates a duplicate."
        ),
    )
    async def enroll_member(
        self,
        info: strawberry.Info,
        input: Annotated[EnrollMemberInput, strawberry.argument(description="The new member.")],
    ) -> EnrollMemberPayload:
        return await mutate(
            info,
            EnrollMemberPayload,
            lambda session: members.enroll_member(
                session,
                enrollment=parse(
                    members.Enrollment, **sent_fields(input, members.Enrollment, UNSET)
                ),
            ),
            lambda member: {"member": member},
        )

    @strawberry.mutation(
        permission_classes=[CanUpdateMembers],
        description="Admins change any member; a member token changes its own profile.",
    )
    async def update_member(
        self,
        info: strawberry.Info,
        input: Annotated[
            UpdateMemberInput, strawberry.argument(description="The member and its changes.")
        ],
    ) -> UpdateMemberPayload:
        principal = info.context.principal
        member_id = key_or_zero("Member", input.id)
        if principal.role == Role.MEMBER and (
            principal.member_id != member_id or input.status is not UNSET
        ):
            raise forbidden()
        return await mutate(
            info,
            UpdateMemberPayload,
            lambda session: members.update_member(
                session, member_id=member_id, changes=_changes(input)
            ),
            lambda member: {"member": member},
        )
