"""The role matrix of API.md §2, as permission classes attached to fields, and ``OwnMember``,
the one check that a member token reaches only its own member."""

from collections.abc import Callable
from typing import Any, ClassVar

import strawberry
from graphql import GraphQLError
from strawberry.extensions import FieldExtension
from strawberry.extensions.field_extension import AsyncExtensionResolver
from strawberry.permission import BasePermission

from loyalty.auth.models import Role
from loyalty.ids import decode_id

FORBIDDEN = "FORBIDDEN"


class RolePermission(BasePermission):
    roles: ClassVar[frozenset[Role]]
    message = "Your credentials do not allow this operation."
    error_extensions: dict[str, Any] | None = {"code": FORBIDDEN}

    def has_permission(self, source: Any, info: strawberry.Info, **kwargs: Any) -> bool:
        return info.context.principal.role in self.roles


class IsAdmin(RolePermission):
    roles = frozenset({Role.ADMIN})


class IsStaff(RolePermission):
    """Admins and points of sale."""

    roles = frozenset({Role.ADMIN, Role.POS})


class CanReadMembers(RolePermission):
    """Staff, and member tokens (each limited to its own member by ``OwnMember``)."""

    roles = frozenset({Role.ADMIN, Role.POS, Role.MEMBER})


class CanRedeem(RolePermission):
    """Staff for a member at the till, and member tokens for themselves."""

    roles = frozenset({Role.ADMIN, Role.POS, Role.MEMBER})


class CanPreview(RolePermission):
    """Staff for any member; a member token for itself."""

    roles = frozenset({Role.ADMIN, Role.POS, Role.MEMBER})


class CanRecordEvents(RolePermission):
    """Staff, and the app's backend (app installed, review written): not member tokens."""

    roles = frozenset({Role.ADMIN, Role.POS, Role.APP})


class CanUpdateMembers(RolePermission):
    """Admins, and member tokens for their own profile."""

    roles = frozenset({Role.ADMIN, Role.MEMBER})


class CanEnroll(RolePermission):
    roles = frozenset({Role.ADMIN, Role.POS, Role.APP})


class CanIssueTokens(RolePermission):
    roles = frozenset({Role.ADMIN, Role.APP})


class IsMember(RolePermission):
    roles = frozenset({Role.MEMBER})
    message = "Only a member token has a member of its own."


class IsAuthenticated(RolePermission):
    roles = frozenset(Role)


def forbidden() -> GraphQLError:
    return GraphQLError(RolePermission.message, extensions={"code": FORBIDDEN})


MemberNamed = Callable[[dict[str, Any]], str | None]
"""Picks the member's ID from a field's arguments (None: a member named another way)."""


class OwnMember(FieldExtension):
    """Object-level ownership, declared on the field: a member token reaches its own member only.

    Other roles passed the field's role permission (which runs first) and are not checked here.
    With ``named``, the member the arguments name is checked before the resolver runs, so a
    member token learns nothing about other members; a member named another way (None) is
    refused. Without it, the member the resolver returns must be the token's own; null is
    refused too, so a token cannot tell whether some other member exists.
    """

    def __init__(self, named: MemberNamed | None = None) -> None:
        super().__init__()
        self.named = named

    async def resolve_async(
        self,
        next_: AsyncExtensionResolver,
        source: Any,
        info: strawberry.Info,
        **kwargs: Any,
    ) -> Any:
        principal = info.context.principal
        if principal.role != Role.MEMBER:
            return await next_(source, info, **kwargs)
        if self.named is not None:
            given = self.named(kwargs)
            if given is None or decode_id("Member", given) != principal.member_id:
                raise forbidden()
            return await next_(source, info, **kwargs)
        result = await next_(source, info, **kwargs)
        if result is None or result.id != principal.member_id:
            raise forbidden()
        return result
