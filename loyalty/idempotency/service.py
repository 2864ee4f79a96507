"""Idempotency: a key is claimed by inserting it, inside the same transaction as the work.

The claim is ``INSERT ... ON CONFLICT DO NOTHING``: a unique constraint, never a
check-then-insert. On PostgreSQL a second request with a key that is in flight waits on the
first's transaction; when that commits, the second finds the stored result and replays it;
when it rolls back (a business failure writes nothing), the second proceeds as if first.

Every idempotent mutation goes through one ``Idempotent`` operation: it claims the key, runs
the work, and stores what the work reported; a replay answers from that stored report, so its
figures (ids, points awarded or clawed back, a purchase's refunded amount and status, a
reward's stock...) are the first answer's whatever happened since. Objects are re-read by id
and only the stored figures are laid over them: the report never copies personal data (event
attributes, comments, SKUs, codes), so an erasure still erases what a replay shows.
"""

import hashlib
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, fields, is_dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any, Generic, TypeVar

from sqlalchemy import inspect, select
from sqlalchemy.ext.asyncio import AsyncSession

from loyalty import held_writes
from loyalty.db import Base, insert_ignoring_conflicts, utcnow
from loyalty.errors import DomainError, ErrorCode, not_found
from loyalty.hot_statements import HotStatement
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
_CLAIM = HotStatement(
    lambda session: insert_ignoring_conflicts(session, _KEYS).returning(_KEYS.c.id)
)
_COMPLETE = held_writes.HeldWrite(
    "UPDATE idempotency_keys SET result = :result WHERE id = :key_id",
    {"result": _KEYS.c.result.type, "key_id": _KEYS.c.id.type},
)
"""Held until commit: nothing in the transaction reads the stored result back."""


def request_of(value: Any) -> Any:
    """A request dataclass as ``dataclasses.asdict`` gives it, so stored hashes still match,
    without the deep copy of every value it makes (the hash only reads them)."""
    if is_dataclass(value) and not isinstance(value, type):
        return {field.name: request_of(getattr(value, field.name)) for field in fields(value)}
    if isinstance(value, list | tuple):
        return type(value)(request_of(item) for item in value)
    if isinstance(value, dict):
        return {key: request_of(item) for key, item in value.items()}
    return value


def request_hash(operation: str, request: dict[str, Any]) -> str:
    canonical = json.dumps([operation, request], sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


async def claim(
    session: AsyncSession, *, scope: str, key: str, operation: str, request: dict[str, Any]
) -> Claim | Replay:
    key = required_text(key, 255, "idempotencyKey")
    fingerprint = request_hash(operation, request)
    claimed = await _CLAIM.rows(
        session,
        {
            "scope": scope,
            "key": key,
            "operation": operation,
            "request_hash": fingerprint,
            "created_at": utcnow(),
        },
    )
    if claimed:
        return Claim(key_id=claimed[0]["id"])
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
    held_writes.hold(session, _COMPLETE, {"key_id": claimed.key_id, "result": result})


R = TypeVar("R")
M = TypeVar("M", bound=Base)


@dataclass(frozen=True)
class Reported(Generic[M]):
    """A row a payload reports, stored as its id under ``<name>_id`` and, under ``<name>``,
    the ``figures`` (columns) that may change later; a replay lays them back over the row."""

    model: type[M]
    name: str
    figures: tuple[str, ...] = ()

    def store(self, row: M) -> dict[str, Any]:
        identity = inspect(row).identity
        assert identity is not None, "a reported row is flushed before it is stored"
        stored: dict[str, Any] = {f"{self.name}_id": identity[0]}
        if self.figures:
            stored[self.name] = {name: _to_json(getattr(row, name)) for name in self.figures}
        return stored

    async def load(self, session: AsyncSession, result: dict[str, Any]) -> M:
        """The row as it is now with the stored figures laid over it, as a detached copy that
        no flush writes (a key stored before figures were kept: the row as it is)."""
        row = await session.get(self.model, result[f"{self.name}_id"])
        if row is None:
            raise not_found(self.model.__name__)
        stored = result.get(self.name)
        if not stored:
            return row
        mapper = inspect(self.model)
        values = {attr.key: getattr(row, attr.key) for attr in mapper.column_attrs}
        for name, value in stored.items():
            values[name] = _from_json(mapper.columns[name].type.python_type, value)
        return self.model(**values)


@dataclass(frozen=True)
class Idempotent(Generic[R]):
    """One idempotent mutation: ``report`` turns its result into the JSON stored under the
    key, ``replay`` turns that JSON back into the result a retry answers with."""

    operation: str
    report: Callable[[R], dict[str, Any]]
    replay: Callable[[AsyncSession, dict[str, Any]], Awaitable[R]]

    async def run(
        self,
        session: AsyncSession,
        *,
        scope: str,
        key: str,
        request: dict[str, Any],
        work: Callable[[], Awaitable[R]],
    ) -> R:
        """``work()`` once per key, in the caller's transaction; a same-input retry replays."""
        claimed = await claim(
            session, scope=scope, key=key, operation=self.operation, request=request
        )
        if isinstance(claimed, Replay):
            return await self.replay(session, claimed.result)
        result = await work()
        await complete(session, claimed=claimed, result=self.report(result))
        return result


def returning(operation: str, result_type: type[R], **rows: Reported[Any]) -> Idempotent[R]:
    """The operation whose result is the dataclass ``result_type``: its fields named in
    ``rows`` are stored as those rows, the others (points, counts) as they are."""
    if not is_dataclass(result_type):
        raise TypeError(f"{result_type!r} is not a dataclass")
    names = [f.name for f in fields(result_type)]

    def report(result: R) -> dict[str, Any]:
        stored: dict[str, Any] = {}
        for name in names:
            value = getattr(result, name)
            stored.update(rows[name].store(value) if name in rows else {name: value})
        return stored

    async def replay(session: AsyncSession, stored: dict[str, Any]) -> R:
        values = {
            name: await rows[name].load(session, stored) if name in rows else stored[name]
            for name in names
        }
        return result_type(**values)

    return Idempotent(operation, report=report, replay=replay)


def _to_json(value: Any) -> Any:
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, datetime):
        return value.isoformat()
    return value


def _from_json(python_type: type, value: Any) -> Any:
    if value is None:
        return None
    if python_type is Decimal:
        return Decimal(value)
    if python_type is datetime:
        return datetime.fromisoformat(value)
    return value
