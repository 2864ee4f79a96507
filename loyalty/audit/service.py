"""Recording and reading the audit log.

An entry is added in the transaction of the change it describes, so a change that rolls back
(a business failure) leaves no entry, and a committed change always has one. Summaries keep the
caller's input small and safe: idempotency keys are dropped, secrets and personal data are
masked (the log is append-only, so it must never hold what an erasure has to remove), and
strings, lists, depth and total size are bounded.
"""

import getpass
import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from enum import Enum
from typing import Any

from sqlalchemy import JSON as JSONType
from sqlalchemy import BigInteger, String, cast, func, insert, literal, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql.elements import ColumnElement
from sqlalchemy.sql.selectable import Select

from loyalty import held_writes
from loyalty.audit.models import ActorKind, AuditEntry
from loyalty.auth.service import Principal
from loyalty.db import UTCDateTime, utcnow
from loyalty.idempotency.service import REPLAYED
from loyalty.pagination import Page, PageRequest, make_page

OMITTED = frozenset({"idempotencyKey"})
"""Input fields left out of summaries: they say nothing about the change."""
MASKED = frozenset(
    {
        "codes",
        "secret",
        "token",
        "password",
        "email",
        "phone",
        "firstName",
        "lastName",
        "dateOfBirth",
        "comment",
        "externalId",
        "memberExternalId",
        "referralCode",
        "sku",
        "attributes",
    }
)
"""Secrets (reward codes are bearer codes) and what identifies or describes a person: recorded
as sent, never kept. The log is append-only, so what it kept would outlive an erasure."""
REDACTED = "[redacted]"
MAX_STRING = 200
MAX_ITEMS = 20
MAX_DEPTH = 4
MAX_SUMMARY_BYTES = 4096
MAX_TARGETS = 20
MAX_REQUEST_ID = 128


@dataclass(frozen=True)
class Actor:
    kind: ActorKind
    role: str | None = None
    key_id: int | None = None
    name: str | None = None


def actor_of(principal: Principal) -> Actor:
    """The caller as the log names it; an API key's name is copied, as it may change later
    (authentication read it with the key, so this costs no query)."""
    if principal.api_key_id is None:
        return Actor(kind=ActorKind.MEMBER_TOKEN, role=principal.role.value)
    return Actor(
        kind=ActorKind.API_KEY,
        role=principal.role.value,
        key_id=principal.api_key_id,
        name=principal.api_key_name,
    )


def cli_actor() -> Actor:
    """Whoever ran the ``loyalty`` command, named by the OS user when the OS can say."""
    try:
        user: str | None = getpass.getuser()[:100]
    except (KeyError, OSError):
        user = None
    return Actor(kind=ActorKind.CLI, name=user)


def replayed(session: AsyncSession) -> bool:
    """The transaction only replayed an idempotency key's stored result: it changed nothing."""
    return bool(session.info.get(REPLAYED))


def summarize(values: Mapping[str, Any]) -> dict[str, Any]:
    """The input, JSON-ready, without idempotency keys, secrets or personal data, bounded."""
    summary = {key: _bounded(key, value, 1) for key, value in values.items() if key not in OMITTED}
    if len(json.dumps(summary)) > MAX_SUMMARY_BYTES:
        return {"truncated": True, "fields": sorted(summary)[:MAX_ITEMS]}
    return summary


def _bounded(key: str, value: Any, depth: int) -> Any:
    if value is None:
        return None
    if key in MASKED:
        return f"[{len(value)} redacted]" if isinstance(value, list) else REDACTED
    if isinstance(value, bool | int | float):
        return value
    if isinstance(value, Enum):
        return value.name
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, str | Decimal):
        text = str(value)
        return text if len(text) <= MAX_STRING else text[:MAX_STRING] + "…"
    if depth > MAX_DEPTH:
        return "…"
    if isinstance(value, Mapping):
        return {
            str(k): _bounded(str(k), v, depth + 1)
            for k, v in list(value.items())[:MAX_ITEMS]
            if str(k) not in OMITTED
        }
    if isinstance(value, list | tuple):
        items = [_bounded(key, item, depth + 1) for item in value[:MAX_ITEMS]]
        if len(value) > MAX_ITEMS:
            items.append(f"… {len(value) - MAX_ITEMS} more")
        return items
    return _bounded(key, str(value), depth)


async def record(
    session: AsyncSession,
    *,
    actor: Actor,
    operation: str,
    summary: dict[str, Any],
    target_ids: list[str] | None = None,
    member_id: int | None = None,
    request_id: str | None = None,
) -> None:
    """Add an entry to the caller's transaction: it commits or rolls back with the change.

    A held write (``loyalty.held_writes``), not ``session.add``: every mutation writes one,
    and it goes in the statement that ends the transaction."""
    held_writes.hold(
        session,
        _INSERT_ENTRY,
        {
            "occurred_at": utcnow(),
            "actor_kind": actor.kind.value,
            "actor_role": actor.role,
            "actor_key_id": actor.key_id,
            "actor_name": actor.name,
            "member_id": member_id,
            "operation": operation[:64],
            "target_ids": list(dict.fromkeys(target_ids or []))[:MAX_TARGETS],
            "summary": summary,
            "request_id": None if request_id is None else request_id[:MAX_REQUEST_ID],
        },
    )


_ENTRY_COLUMNS = (
    "occurred_at",
    "actor_kind",
    "actor_role",
    "actor_key_id",
    "actor_name",
    "member_id",
    "operation",
    "target_ids",
    "summary",
    "request_id",
)
_INSERT_ENTRY = held_writes.HeldWrite.insert(
    "audit_log", {name: AuditEntry.__table__.c[name].type for name in _ENTRY_COLUMNS}
)


async def record_select(
    session: AsyncSession,
    *,
    actor: Actor,
    operation: str,
    summary: dict[str, Any],
    rows: Select[*tuple[Any, ...]],
) -> None:
    """One entry per row of ``rows`` (which selects ``member_id`` and ``target_id``, the
    member's API id), in one ``INSERT ... SELECT``: a job's change to many members."""
    chosen = rows.subquery()
    postgres = session.get_bind().dialect.name == "postgresql"
    targets = (func.json_build_array if postgres else func.json_array)(chosen.c.target_id)
    await session.execute(
        insert(AuditEntry).from_select(
            list(_ENTRY_COLUMNS),
            select(
                literal(utcnow(), UTCDateTime()),
                literal(actor.kind.value),
                literal(actor.role, String()),
                literal(actor.key_id, BigInteger()),
                literal(actor.name, String()),
                chosen.c.member_id,
                literal(operation[:64]),
                targets,
                _json_literal(postgres, summarize(summary)),
                literal(None, String()),
            ).order_by(chosen.c.member_id),
        )
    )


def _json_literal(postgres: bool, value: dict[str, Any]) -> ColumnElement[Any]:
    text = literal(json.dumps(value), String())
    return cast(text, JSONType) if postgres else text


async def record_cli(
    session: AsyncSession, *, command: str, options: Mapping[str, Any], target_ids: list[str]
) -> None:
    """An entry for a ``loyalty`` command that changed keys or the program."""
    await record(
        session,
        actor=cli_actor(),
        operation=command,
        summary=summarize(options),
        target_ids=target_ids,
    )


async def list_entries(
    session: AsyncSession,
    *,
    page: PageRequest,
    member_id: int | None = None,
    actor_key_id: int | None = None,
    operation: str | None = None,
) -> Page[AuditEntry]:
    """Newest first; each filter is served by an index on (filter column, id)."""
    statement = select(AuditEntry).order_by(AuditEntry.id.desc()).limit(page.first + 1)
    if member_id is not None:
        statement = statement.where(AuditEntry.member_id == member_id)
    if actor_key_id is not None:
        statement = statement.where(AuditEntry.actor_key_id == actor_key_id)
    if operation is not None:
        statement = statement.where(AuditEntry.operation == operation)
    if page.after is not None:
        statement = statement.where(AuditEntry.id < page.after)
    rows = list((await session.scalars(statement)).all())
    return make_page(rows, [row.id for row in rows], page)
