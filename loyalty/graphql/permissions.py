"""The role matrix of API.md §2, as permission classes attached to fields."""

from typing import Any, ClassVar

import strawberry
from graphql import GraphQLError
from strawberry.permission import BasePermission

from loyalty.auth.models import Role

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
    """Staff, and member tokens (each limited to its own member by ``ensure_member_access``)."""

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


def ensure_member_access(info: strawberry.Info, member_id: int | None) -> None:
    """A member token reaches its own member only (None: a member named another way, which it
    may not); other roles passed their field permission."""
    principal = info.context.principal
    if principal.role == Role.MEMBER and principal.member_id != member_id:
        raise forbidden()
