"""The audit log over GraphQL: an entry for every mutation that commits, and ``auditLog``.

What an entry holds, derived from the GraphQL request alone so no mutation has to describe
itself: the operation is the mutation field's name; the targets are the IDs in the input plus
the ``id`` of every object the payload returns, as the API shows them; the summary is the input
as sent (see ``loyalty.audit.service.summarize`` for what is left out); the member is the one
among the targets, or the one a returned object (a purchase, a redemption) belongs to.
"""

import functools
import inspect
from collections.abc import Awaitable, Callable, Iterator, Mapping
from datetime import datetime
from typing import Annotated, Any, TypeVar

import strawberry
from graphql import (
    GraphQLField,
    GraphQLID,
    GraphQLInputObjectType,
    GraphQLInputType,
    GraphQLList,
    GraphQLNonNull,
    GraphQLObjectType,
    get_named_type,
)
from graphql.utilities import value_from_ast
from sqlalchemy.ext.asyncio import AsyncSession
from strawberry.scalars import JSON
from strawberry.utils.str_converters import to_camel_case

from loyalty.audit import service as audit
from loyalty.audit.models import ActorKind
from loyalty.audit.models import AuditEntry as AuditRow
from loyalty.auth.models import Role
from loyalty.graphql.pagination import After, Connection, First, paged
from loyalty.graphql.permissions import IsAdmin
from loyalty.ids import decode_id, encode_id, parse_key
from loyalty.pagination import Page, PageRequest

R = TypeVar("R")
MAX_ID_LENGTH = 64

# strawberry.enum registers the domain enum in place; the plain alias stays a type for mypy.
AuditActorKind = ActorKind
strawberry.enum(
    AuditActorKind,
    name="AuditActorKind",
    description="API_KEY: an admin, pos or app key; MEMBER_TOKEN: a member's app; CLI: the "
    "loyalty command.",
)


async def audited(
    info: strawberry.Info,
    session: AsyncSession,
    work: Callable[[AsyncSession], Awaitable[R]],
    shape: Callable[[R], dict[str, Any]],
) -> R:
    """Run ``work``, then add its audit entry to the same transaction, so the entry commits
    with the change and a rolled-back change leaves none. A replay of an idempotency key's
    stored result changed nothing and adds no entry (the first call's entry stands)."""
    result = await work(session)
    if not audit.replayed(session):
        await _record(info, session, shape(result))
    return result


async def _record(info: strawberry.Info, session: AsyncSession, returned: dict[str, Any]) -> None:
    raw = info._raw_info
    field = raw.parent_type.fields[raw.field_name]
    given, targets = _input(info, field)
    payload_type = get_named_type(field.type)
    returned_objects: list[Any] = []
    if isinstance(payload_type, GraphQLObjectType):
        for name, value in returned.items():
            payload_field = payload_type.fields.get(to_camel_case(name))
            node_type = None if payload_field is None else get_named_type(payload_field.type)
            if value is None or not isinstance(node_type, GraphQLObjectType):
                continue
            if "id" not in node_type.fields:
                continue
            for node in value if isinstance(value, list) else [value]:
                returned_objects.append(node)
                targets.append(await _resolve_id(node_type, node, raw))
    principal = info.context.principal
    member_id = principal.member_id if principal.role == Role.MEMBER else None
    member_id = member_id or _member_among(targets, returned_objects)
    await audit.record(
        session,
        actor=audit.actor_of(principal),
        operation=info.field_name,
        summary=audit.summarize(given),
        target_ids=targets,
        member_id=member_id,
        request_id=info.context.request_id,
    )


def _input(info: strawberry.Info, field: GraphQLField) -> tuple[Mapping[str, Any], list[str]]:
    """The mutation's ``input`` as coerced (defaults filled in), and the IDs it holds."""
    argument = field.args.get("input")
    node = next(
        (a for a in info._raw_info.field_nodes[0].arguments or () if a.name.value == "input"),
        None,
    )
    if argument is None or node is None:
        return {}, []
    given = value_from_ast(node.value, argument.type, info.variable_values)
    if not isinstance(given, Mapping):
        return {}, []
    return given, list(_input_ids(given, argument.type))


def _input_ids(value: Any, type_: GraphQLInputType) -> Iterator[str]:
    """Every ``ID`` the input holds, wherever it is nested."""
    if value is None or not _holds_ids(type_):
        return
    if isinstance(type_, GraphQLNonNull):
        yield from _input_ids(value, type_.of_type)
    elif isinstance(type_, GraphQLList):
        for item in value if isinstance(value, list) else [value]:
            yield from _input_ids(item, type_.of_type)
    elif isinstance(type_, GraphQLInputObjectType) and isinstance(value, Mapping):
        for name, field in type_.fields.items():
            yield from _input_ids(value.get(name), field.type)
    elif getattr(type_, "name", None) == GraphQLID.name and len(str(value)) <= MAX_ID_LENGTH:
        yield str(value)


@functools.cache
def _holds_ids(type_: GraphQLInputType) -> bool:
    """Whether a value of the type can hold an ``ID``: a purchase's lines, say, cannot, and
    are not walked on every recordPurchase."""
    return _reaches_id(get_named_type(type_), set())


def _reaches_id(named: Any, seen: set[str]) -> bool:
    if isinstance(named, GraphQLInputObjectType):
        if named.name in seen:  # an input that nests itself
            return False
        seen.add(named.name)
        return any(_reaches_id(get_named_type(f.type), seen) for f in named.fields.values())
    return getattr(named, "name", None) == GraphQLID.name


async def _resolve_id(node_type: GraphQLObjectType, node: Any, raw: Any) -> str:
    """The object's ``id`` as the API shows it: its type's own ``id`` resolver decides."""
    resolve = node_type.fields["id"].resolve
    value = node.id if resolve is None else resolve(node, raw)
    if inspect.isawaitable(value):
        value = await value
    return str(value)


def _member_among(targets: list[str], returned: list[Any]) -> int | None:
    for target in targets:
        member_id = decode_id("Member", target)
        if member_id is not None:
            return member_id
    for node in returned:
        member_id = getattr(node, "member_id", None)
        if isinstance(member_id, int):
            return member_id
    return None


@strawberry.type(
    description="One committed change: who made it, what it was, when, and under which request."
)
class AuditEntry:
    id: strawberry.ID = strawberry.field(description="The entry's own id.")
    occurred_at: datetime = strawberry.field(description="When the change committed.")
    actor_kind: AuditActorKind = strawberry.field(description="What kind of caller made it.")
    actor_role: str | None = strawberry.field(
        description="The caller's role: admin, pos, app or member; null for the CLI."
    )
    actor_key_id: strawberry.ID | None = strawberry.field(
        description="The API key's id as `loyalty apikey list` shows it; null otherwise."
    )
    actor_name: str | None = strawberry.field(
        description="The API key's name when the change was made, or the OS user for the CLI."
    )
    member_id: strawberry.ID | None = strawberry.field(
        description="The member the change concerns (a member token's own member), if any."
    )
    operation: str = strawberry.field(
        description="The mutation's field name (e.g. recordPurchase) or the CLI command "
        "(e.g. apikey create)."
    )
    target_ids: list[strawberry.ID] = strawberry.field(
        description="IDs the change names or returns (API key ids for key commands)."
    )
    summary: JSON = strawberry.field(
        description="The input as sent, without idempotency keys; secrets and personal data "
        'show as "[redacted]"; bounded in size.'
    )
    request_id: str | None = strawberry.field(
        description="The HTTP request's X-Request-Id; null for the CLI."
    )

    @classmethod
    def of(cls, row: AuditRow) -> "AuditEntry":
        return cls(
            id=strawberry.ID(encode_id("AuditEntry", row.id)),
            occurred_at=row.occurred_at,
            actor_kind=ActorKind(row.actor_kind),
            actor_role=row.actor_role,
            actor_key_id=None if row.actor_key_id is None else strawberry.ID(str(row.actor_key_id)),
            actor_name=row.actor_name,
            member_id=None
            if row.member_id is None
            else strawberry.ID(encode_id("Member", row.member_id)),
            operation=row.operation,
            target_ids=[strawberry.ID(target) for target in row.target_ids],
            summary=JSON(row.summary),
            request_id=row.request_id,
        )


EMPTY: Page[AuditRow] = Page(items=[], keys=[], has_next=False)


@strawberry.type
class AuditQueries:
    @strawberry.field(
        permission_classes=[IsAdmin],
        description="Who changed what, when, under which request: newest first.",
    )
    async def audit_log(
        self,
        info: strawberry.Info,
        first: First = None,
        after: After = None,
        member_id: Annotated[
            strawberry.ID | None,
            strawberry.argument(description="Only changes concerning this member."),
        ] = None,
        actor_key_id: Annotated[
            strawberry.ID | None,
            strawberry.argument(description="Only changes made with this API key."),
        ] = None,
        operation: Annotated[
            str | None,
            strawberry.argument(description="Only this mutation (e.g. adjustPoints) or command."),
        ] = None,
    ) -> Connection[AuditEntry]:
        member_key = None if member_id is None else decode_id("Member", member_id)
        key_id = None if actor_key_id is None else parse_key(actor_key_id)

        async def load(request: PageRequest) -> Page[AuditEntry]:
            if (member_id is not None and member_key is None) or (
                actor_key_id is not None and key_id is None
            ):
                page = EMPTY  # an ID that names nothing matches nothing
            else:
                page = await info.context.read(
                    lambda session: audit.list_entries(
                        session,
                        page=request,
                        member_id=member_key,
                        actor_key_id=key_id,
                        operation=operation,
                    )
                )
            return Page(
                items=[AuditEntry.of(row) for row in page.items],
                keys=page.keys,
                has_next=page.has_next,
            )

        return await paged(info, first, after, load)
