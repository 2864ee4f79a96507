"""Member queries and mutations."""

from datetime import date

import strawberry
from strawberry import UNSET

from loyalty.auth.models import Role
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
from loyalty.graphql.types import Channel, Member, MemberStatus
from loyalty.ids import decode_id, key_or_zero
from loyalty.members import service as members
from loyalty.pagination import page_request
from loyalty.validation import UNSET as UNCHANGED


@strawberry.input
class EnrollMemberInput:
    external_id: str
    email: str | None = None
    phone: str | None = None
    first_name: str | None = None
    last_name: str | None = None
    channel: Channel | None = None
    date_of_birth: date | None = None
    referral_code: str | None = strawberry.field(
        default=None, description="A member's referral code: the new member is their referee."
    )


@strawberry.input
class UpdateMemberInput:
    id: strawberry.ID
    email: str | None = UNSET
    phone: str | None = UNSET
    first_name: str | None = UNSET
    last_name: str | None = UNSET
    date_of_birth: date | None = UNSET
    status: MemberStatus | None = UNSET


@strawberry.type
class EnrollMemberPayload:
    errors: list[UserError]
    member: Member | None = None


@strawberry.type
class UpdateMemberPayload:
    errors: list[UserError]
    member: Member | None = None


def _sent(value: object) -> object:
    return UNCHANGED if value is UNSET else value


@strawberry.type
class MemberQueries:
    @strawberry.field(permission_classes=[CanReadMembers])
    async def member(self, info: strawberry.Info, id: strawberry.ID) -> Member | None:
        member_id = decode_id("Member", id)
        if member_id is not None:
            ensure_member_access(info, member_id)
        elif info.context.principal.role == Role.MEMBER:
            raise forbidden()
        return await info.context.read(
            lambda session: members.find_member(session, member_id=member_id)
        )

    @strawberry.field(permission_classes=[CanReadMembers])
    async def member_by_external_id(self, info: strawberry.Info, external_id: str) -> Member | None:
        member = await info.context.read(
            lambda session: members.find_member_by_external_id(session, external_id=external_id)
        )
        if info.context.principal.role == Role.MEMBER and (
            member is None or member.id != info.context.principal.member_id
        ):
            raise forbidden()
        return member

    @strawberry.field(permission_classes=[IsAdmin])
    async def members(
        self,
        info: strawberry.Info,
        first: First = None,
        after: After = None,
        search: str | None = None,
    ) -> Connection[Member]:
        request = page_request(first, after, max_size=info.context.settings.page_size_max)
        page = await info.context.read(
            lambda session: members.search_members(session, search=search, page=request)
        )
        return to_connection(page, after_given=after is not None)

    @strawberry.field(permission_classes=[IsMember], description="The member a token names.")
    async def me(self, info: strawberry.Info) -> Member | None:
        return await info.context.read(
            lambda session: members.find_member(session, member_id=info.context.principal.member_id)
        )


@strawberry.type
class MemberMutations:
    @strawberry.mutation(permission_classes=[CanEnroll])
    async def enroll_member(
        self, info: strawberry.Info, input: EnrollMemberInput
    ) -> EnrollMemberPayload:
        enrollment = members.Enrollment(
            external_id=input.external_id,
            email=input.email,
            phone=input.phone,
            first_name=input.first_name,
            last_name=input.last_name,
            channel=input.channel,
            date_of_birth=input.date_of_birth,
            referral_code=input.referral_code,
        )
        return await mutate(
            info,
            EnrollMemberPayload,
            lambda session: members.enroll_member(session, enrollment=enrollment),
            lambda member: {"member": member},
        )

    @strawberry.mutation(
        permission_classes=[CanUpdateMembers],
        description="Admins change any member; a member token changes its own profile.",
    )
    async def update_member(
        self, info: strawberry.Info, input: UpdateMemberInput
    ) -> UpdateMemberPayload:
        principal = info.context.principal
        member_id = key_or_zero("Member", input.id)
        if principal.role == Role.MEMBER and (
            principal.member_id != member_id or input.status is not UNSET
        ):
            raise forbidden()
        changes = members.MemberChanges(
            email=_sent(input.email),
            phone=_sent(input.phone),
            first_name=_sent(input.first_name),
            last_name=_sent(input.last_name),
            date_of_birth=_sent(input.date_of_birth),
            status=_sent(input.status),
        )
        return await mutate(
            info,
            UpdateMemberPayload,
            lambda session: members.update_member(session, member_id=member_id, changes=changes),
            lambda member: {"member": member},
        )
