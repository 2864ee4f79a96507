"""Who may read what, decided per object type whatever path reaches the object (API.md §2).

Root fields carry role permissions (``permissions.py``); that alone would let any payload or
nested field hand a caller an object its role may not see (``recordEvent { member { email } }``
for an ``app`` key). So every object a field returns is checked here against its type's
``ObjectAccess``, and every field of a type with ``FieldAccess`` against that. A type missing
from both tables is refused, so a new type cannot leak before someone decides who sees it;
``tests/test_field_access.py`` walks the schema for every role against a table of its own.
"""

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from inspect import isawaitable
from typing import Any

from graphql import GraphQLResolveInfo, get_named_type
from strawberry.extensions import SchemaExtension

from loyalty.auth.models import Role
from loyalty.auth.service import Principal
from loyalty.graphql.context import Context
from loyalty.graphql.permissions import forbidden

ANYONE = frozenset(Role)
STAFF_AND_OWNER = frozenset({Role.ADMIN, Role.POS, Role.MEMBER})
ADMIN_ONLY = frozenset({Role.ADMIN})


def _member_id(row: Any) -> int:
    member_id: int = row.member_id
    return member_id


@dataclass(frozen=True)
class ObjectAccess:
    """Which callers may receive an object of this type."""

    roles: frozenset[Role]
    owner: Callable[[Any], int] | None = None
    """For member tokens: the member the object belongs to (their own only)."""
    app_roots: frozenset[str] = field(default_factory=frozenset)
    """Root fields under which an ``app`` key may see the object (what it just created)."""

    def allows(self, principal: Principal, value: Any, root_field: Callable[[], str]) -> bool:
        if principal.role == Role.APP and self.app_roots:
            return root_field() in self.app_roots
        if principal.role not in self.roles:
            return False
        if principal.role == Role.MEMBER and self.owner is not None:
            return self.owner(value) == principal.member_id
        return True


@dataclass(frozen=True)
class FieldAccess:
    """Fields of a type that only some roles read; the ``open`` ones anyone who reaches it."""

    roles: frozenset[Role]
    open: frozenset[str] = field(default_factory=frozenset)


OBJECTS: dict[str, ObjectAccess] = {
    "Program": ObjectAccess(ANYONE),
    "Tier": ObjectAccess(ANYONE),
    "Reward": ObjectAccess(ANYONE),
    "Member": ObjectAccess(
        STAFF_AND_OWNER, owner=lambda member: member.id, app_roots=frozenset({"enrollMember"})
    ),
    "Purchase": ObjectAccess(STAFF_AND_OWNER, owner=_member_id),
    "LedgerEntry": ObjectAccess(STAFF_AND_OWNER, owner=_member_id),
    "Redemption": ObjectAccess(STAFF_AND_OWNER, owner=_member_id),
    "TierChange": ObjectAccess(STAFF_AND_OWNER, owner=_member_id),
    "MemberEvent": ObjectAccess(
        STAFF_AND_OWNER, owner=_member_id, app_roots=frozenset({"recordEvent"})
    ),
    "Feedback": ObjectAccess(STAFF_AND_OWNER, owner=_member_id),
    "Referral": ObjectAccess(ADMIN_ONLY),
    "AuditEntry": ObjectAccess(ADMIN_ONLY),
    "Webhook": ObjectAccess(ADMIN_ONLY),
    "WebhookDelivery": ObjectAccess(ADMIN_ONLY),
    "Event": ObjectAccess(ADMIN_ONLY),
    "EarningRuleVersion": ObjectAccess(ADMIN_ONLY),
    "EarningRuleConditions": ObjectAccess(ADMIN_ONLY),
    "EarningRuleEffect": ObjectAccess(ADMIN_ONLY),
    "EarningRuleLimits": ObjectAccess(ADMIN_ONLY),
    "Segment": ObjectAccess(ADMIN_ONLY),
    "SegmentFilter": ObjectAccess(ADMIN_ONLY),
}
"""Object types whose instances are checked wherever a field returns them."""

FIELDS: dict[str, FieldAccess] = {
    # A breakdown or a BONUS entry names its rule; budgets, usage and conditions are admin's.
    "EarningRule": FieldAccess(ADMIN_ONLY, open=frozenset({"id", "name"})),
}
"""Object types whose fields are checked one by one."""

CARRIERS = frozenset(
    {
        "Query",
        "Mutation",
        "Subscription",
        "PageInfo",
        "UserError",
        "Money",
        "Points",
        "PointBalances",
        "PendingRelease",
        "ExpiringPoints",
        "TierProgress",
        "ReferralCounts",
        "PurchaseLine",
        "PointsBreakdownItem",
        "PointsLiability",
        "LiabilityByTier",
        "TierPreview",
        "ProgramStats",
        "StatsPeriod",
        "MemberConsents",
        "RfmScores",
    }
)
"""Types that hold nothing of their own to protect: root types (whose fields carry role
permissions), payloads, connections and edges, and values reached only through a checked
object. Payloads, connections and edges are recognised by their names' suffixes."""

CARRIER_SUFFIXES = ("Payload", "Connection", "Edge")
ROOTS = frozenset({"Query", "Mutation", "Subscription"})


def is_carrier(type_name: str) -> bool:
    return type_name in CARRIERS or type_name.endswith(CARRIER_SUFFIXES)


def _root_field(info: GraphQLResolveInfo[Context]) -> Callable[[], str]:
    """The root field (not its alias) under which ``info`` resolves, looked up on demand."""

    def find() -> str:
        path = info.path
        while path.prev is not None:
            path = path.prev
        return info.context.root_fields.get(str(path.key), "")

    return find


def _check(access: ObjectAccess, info: GraphQLResolveInfo[Context], value: Any) -> Any:
    if value is None:
        return value
    principal = info.context.principal
    root_field = _root_field(info)
    items: Iterable[Any] = value if isinstance(value, list) else (value,)
    for item in items:
        if item is not None and not access.allows(principal, item, root_field):
            raise forbidden()
    return value


async def _check_later(
    access: ObjectAccess, info: GraphQLResolveInfo[Context], pending: Any
) -> Any:
    return _check(access, info, await pending)


class FieldAccessControl(SchemaExtension):
    """Applies ``OBJECTS`` and ``FIELDS`` to every field the executor resolves."""

    def resolve(
        self,
        _next: Callable[..., Any],
        root: Any,
        info: GraphQLResolveInfo[Context],
        *args: Any,
        **kwargs: Any,
    ) -> Any:
        parent = info.parent_type.name
        if parent in ROOTS:
            info.context.root_fields[str(info.path.key)] = info.field_name
        else:
            rule = FIELDS.get(parent)
            if rule is None:
                if parent not in OBJECTS and not is_carrier(parent):
                    raise forbidden()
            elif info.field_name not in rule.open and info.context.principal.role not in rule.roles:
                raise forbidden()
        access = OBJECTS.get(get_named_type(info.return_type).name)
        result = _next(root, info, *args, **kwargs)
        if access is None:
            return result
        if isawaitable(result):
            return _check_later(access, info, result)
        return _check(access, info, result)
