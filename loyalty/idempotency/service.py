"""Idempotency: a key is claimed by inserting it, inside the same transaction as the work.

The claim is ``INSERT ... ON CONFLICT DO NOTHING``: a unique constraint, never a
check-then-insert. On PostgreSQL a second request with a key that is in flight waits on the
first's transaction; when that commits, the second finds the stored result and replays it;
when it rolls back (a business failure writes nothing), the second proceeds as if first.
"""

import hashlib
import json
from dataclasses import dataclass
from typing import Any

from sqlalchemy import bindparam, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from loyalty.db import PerDialect, insert_ignoring_conflicts, utcnow
from loyalty.errors import DomainError, ErrorCode
from loyalty.idempotency.models import IdempotencyKey
from loyalty.validation import required_text


@dataclass(frozen=True)
class Claim:
    """This request owns the key: it does the work and then stores its result."""

    key_id: int


@dataclass(frozen=True)
class Replay:
    """The key was used before with the same input: answer with the stored result."""

    result: dict[str, Any]


REPLAYED = "idempotency.replayed"
"""Set in ``session.info`` when a transaction replays a stored result (and so writes nothing)."""

_KEYS = IdempotencyKey.__table__
_CLAIM = PerDialect(lambda session: insert_ignoring_conflicts(session, _KEYS).returning(_KEYS.c.id))
_COMPLETE = update(_KEYS).where(_KEYS.c.id == bindparam("key_id"))


def request_hash(operation: str, request: dict[str, Any]) -> str:
    canonical = json.dumps([operation, request], sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


async def claim(
    session: AsyncSession, *, scope: str, key: str, operation: str, request: dict[str, Any]
) -> Claim | Replay:
    key = required_text(key, 255, "idempotencyKey")
    fingerprint = request_hash(operation, request)
    key_id = await session.scalar(
        _CLAIM(session),
        {
            "scope": scope,
            "key": key,
            "operation": operation,
            "request_hash": fingerprint,
            "created_at": utcnow(),
        },
    )
    if key_id is not None:
        return Claim(key_id=key_id)
    stored = (
        await session.execute(
            select(IdempotencyKey.request_hash, IdempotencyKey.result).where(
                IdempotencyKey.scope == scope, IdempotencyKey.key == key
            )
        )
    ).one()
    if stored.request_hash != fingerprint or stored.result is None:
        raise DomainError(
            ErrorCode.IDEMPOTENCY_CONFLICT,
            "This idempotency key was already used with a different request.",
            ["idempotencyKey"],
        )
    session.info[REPLAYED] = True
    return Replay(result=stored.result)


async def complete(session: AsyncSession, *, claimed: Claim, result: dict[str, Any]) -> None:
    await session.execute(_COMPLETE, {"key_id": claimed.key_id, "result": result})
