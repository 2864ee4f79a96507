"""exportMemberData (everything stored about a member) and eraseMember (its personal data
removed, the books kept)."""

from typing import Annotated

import strawberry
from strawberry.scalars import JSON

from loyalty.auth.models import Role
from loyalty.errors import DomainError
from loyalty.graphql.errors import Payload, UserError, mutate
from loyalty.graphql.members import Member
from loyalty.graphql.permissions import IsAdmin, OwnMember, RolePermission
from loyalty.ids import key_or_zero
from loyalty.privacy.erasure import ErasureIn, erase_member
from loyalty.privacy.export import export_member


class CanExport(RolePermission):
    """Admins, and member tokens for their own data (``OwnMember``)."""

    roles = frozenset({Role.ADMIN, Role.MEMBER})


@strawberry.type(description="A member's data export, or why there is none.")
class ExportMemberDataPayload(Payload):
    export: JSON | None = strawberry.field(
        default=None,
        description=(
            "One JSON document: version, generatedAt, the member's personal fields, ledger, "
            "point lots, purchases with lines, refunds, redemptions, events, feedback, "
            "referrals, tier history and audit entries (docs/privacy.md describes each)."
        ),
    )


@strawberry.type
class PrivacyQueries:
    @strawberry.field(
        permission_classes=[CanExport],
        extensions=[OwnMember(lambda args: args["member_id"])],
        description=(
            "Everything stored about a member, as one JSON document (right of access and "
            "portability). Admin; a member token for itself only."
        ),
    )
    async def export_member_data(
        self,
        info: strawberry.Info,
        member_id: Annotated[strawberry.ID, strawberry.argument(description="The member's id.")],
    ) -> ExportMemberDataPayload:
        key = key_or_zero("Member", member_id)
        try:
            document = await info.context.read(
                lambda session: export_member(session, member_id=key)
            )
        except DomainError as error:
            return ExportMemberDataPayload(errors=[UserError.of(error)])
        return ExportMemberDataPayload(errors=[], export=document)


@strawberry.input(description="Which member to erase, and why (kept in the audit log).")
class EraseMemberInput:
    idempotency_key: str = strawberry.field(
        description="Your unique key for this erasure: a retry with it writes nothing twice."
    )
    member_id: strawberry.ID = strawberry.field(description="The member to erase.")
    reason: str = strawberry.field(
        description="Why, e.g. the request's reference; kept in the audit log (500 at most)."
    )


@strawberry.type(description="The result of eraseMember.")
class EraseMemberPayload(Payload):
    member: Member | None = strawberry.field(
        default=None, description="The member as it now is: status ERASED, no personal data."
    )


@strawberry.type
class PrivacyMutations:
    @strawberry.mutation(
        permission_classes=[IsAdmin],
        description=(
            "Erase a member's personal data (right to erasure): contact details, names, "
            "birthday, external id, referral code, event attributes, feedback comments and "
            "purchase SKUs go; amounts, points and the ledger stay, and points still held are "
            "forfeited (FORFEIT). The member can no longer earn, redeem or sign in. Admin only; "
            "idempotent per idempotencyKey."
        ),
    )
    async def erase_member(
        self,
        info: strawberry.Info,
        input: Annotated[
            EraseMemberInput, strawberry.argument(description="The member, a key and the reason.")
        ],
    ) -> EraseMemberPayload:
        erasure = ErasureIn(member_id=key_or_zero("Member", input.member_id), reason=input.reason)
        return await mutate(
            info,
            EraseMemberPayload,
            lambda session: erase_member(
                session,
                scope=info.context.principal.scope,
                idempotency_key=input.idempotency_key,
                erasure=erasure,
            ),
            lambda member: {"member": member},
        )
