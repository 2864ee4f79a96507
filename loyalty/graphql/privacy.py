"""exportMemberData: everything stored about a member, for the member or an admin."""

from typing import Annotated

import strawberry
from strawberry.scalars import JSON

from loyalty.auth.models import Role
from loyalty.errors import DomainError
from loyalty.graphql.errors import UserError
from loyalty.graphql.permissions import RolePermission, ensure_member_access
from loyalty.graphql.types import errors_field
from loyalty.ids import key_or_zero
from loyalty.privacy.export import export_member


class CanExport(RolePermission):
    """Admins, and member tokens for their own data (``ensure_member_access``)."""

    roles = frozenset({Role.ADMIN, Role.MEMBER})


@strawberry.type(description="A member's data export, or why there is none.")
class ExportMemberDataPayload:
    errors: list[UserError] = errors_field()
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
        ensure_member_access(info, key)
        try:
            document = await info.context.read(
                lambda session: export_member(session, member_id=key)
            )
        except DomainError as error:
            return ExportMemberDataPayload(errors=[UserError.of(error)])
        return ExportMemberDataPayload(errors=[], export=document)
