"""Writes held back until commit, and sent then in one statement on PostgreSQL.

A mutation ends with writes that nothing in its transaction reads back: its outbox events,
the earning rules' awards, the idempotency key's stored result, its audit entry. Each used to
be a statement and a round trip of its own. Held here instead, they go at commit: on
PostgreSQL as one statement of writable CTEs (``WITH w0 AS (INSERT ...), w1 AS (UPDATE ...)
SELECT 1``), on SQLite one by one (an embedded database has no round trip to save). They
commit or roll back with the transaction like any other write; ``write_now`` sends them
earlier for a statement that must see them.
"""

import functools
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Result, TextClause, bindparam, event, text
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session
from sqlalchemy.types import TypeEngine

from loyalty.hot_statements import HotStatement

HELD = "loyalty_held_writes"
"""``Session.info`` key: the transaction's held writes and their values, in order."""
WRITES_PER_STATEMENT = 100
"""A transaction holding more sends them in several statements, in order: PostgreSQL takes at
most 32,767 parameters a statement, and a statement per shape is cached."""
_PARAMETER = re.compile(r"(?<![:\w]):(\w+)")


@dataclass(frozen=True, eq=False)
class HeldWrite:
    """One INSERT of a row (``insert``) or one UPDATE, its parameters written ``:name`` and
    typed in ``types`` (so JSON and UTC times bind as the columns expect). ``returned`` gets
    the result where the write runs alone (SQLite), for a write that returns what it made."""

    sql: str
    types: Mapping[str, TypeEngine[Any]]
    returned: Callable[[Session, Result[Any]], None] | None = None
    table: str | None = None
    """Set for an INSERT: the rows a transaction holds for it go in one multi-row INSERT, in
    the order they were held (writable CTEs run in no set order; a VALUES list does)."""
    suffix: str = ""

    @classmethod
    def insert(
        cls,
        table: str,
        types: Mapping[str, TypeEngine[Any]],
        *,
        suffix: str = "",
        returned: Callable[[Session, Result[Any]], None] | None = None,
    ) -> "HeldWrite":
        """A row of ``table``, one parameter per column named in ``types``; ``suffix`` such as
        ``RETURNING id``."""
        return cls(
            f"INSERT INTO {table} ({', '.join(types)}) {_values(types, '')} {suffix}".strip(),
            types,
            returned,
            table,
            suffix,
        )


def _values(types: Mapping[str, TypeEngine[Any]], prefix: str) -> str:
    return "VALUES (" + ", ".join(f":{prefix}{name}" for name in types) + ")"


def hold(session: AsyncSession, write: HeldWrite, values: Mapping[str, Any]) -> None:
    """Add ``write`` with ``values`` to the session's transaction, to be sent at commit."""
    held: list[tuple[HeldWrite, Mapping[str, Any]]] = session.info.setdefault(HELD, [])
    held.append((write, values))


async def write_now(session: AsyncSession) -> None:
    """Send the held writes now: before a statement that reads or changes what they write,
    and (``Database.transaction``) before committing, as hot statements on PostgreSQL."""
    if not session.info.get(HELD):
        return
    if session.get_bind().dialect.name != "postgresql":
        await session.run_sync(_write)
        return
    for shape, values in _statements(session.info.pop(HELD)):
        await _hot(shape).rows(session, values)


@event.listens_for(Session, "before_commit")
def _write_before_commit(session: Session) -> None:
    """Whatever a session commits without ``Database.transaction`` (which sends them first)."""
    _write(session)


@event.listens_for(Session, "after_transaction_end")
def _forget(session: Session, transaction: Any) -> None:
    if transaction.parent is None:
        session.info.pop(HELD, None)


def _write(session: Session) -> None:
    held: list[tuple[HeldWrite, Mapping[str, Any]]] = session.info.pop(HELD, None) or []
    if not held:
        return
    if session.get_bind().dialect.name != "postgresql":
        for write, given in held:
            result = session.execute(_alone(write), given)
            if write.returned is not None:
                write.returned(session, result)
        return
    for shape, values in _statements(held):
        session.execute(_together(shape), values)


Shape = tuple[tuple[HeldWrite, int], ...]


def _statements(
    held: list[tuple[HeldWrite, Mapping[str, Any]]],
) -> Iterator[tuple[Shape, dict[str, Any]]]:
    """The held writes in statements of at most WRITES_PER_STATEMENT, in order."""
    for start in range(0, len(held), WRITES_PER_STATEMENT):
        yield _grouped(held[start : start + WRITES_PER_STATEMENT])


def _grouped(held: list[tuple[HeldWrite, Mapping[str, Any]]]) -> tuple[Shape, dict[str, Any]]:
    """The statement's shape (each write and its rows) and its values."""
    groups: list[tuple[HeldWrite, list[Mapping[str, Any]]]] = []
    inserts: dict[HeldWrite, list[Mapping[str, Any]]] = {}
    for write, given in held:
        if write.table is not None and write in inserts:
            inserts[write].append(given)
            continue
        rows = [given]
        groups.append((write, rows))
        if write.table is not None:
            inserts[write] = rows
    shape = tuple((write, len(rows)) for write, rows in groups)
    values = {
        f"w{n}_{r}_{name}": value
        for n, (_, rows) in enumerate(groups)
        for r, row in enumerate(rows)
        for name, value in row.items()
    }
    return shape, values


@functools.cache
def _alone(write: HeldWrite) -> TextClause:
    return text(write.sql).bindparams(
        *(bindparam(name, type_=type_) for name, type_ in write.types.items())
    )


def _prefixed(sql: str, prefix: str) -> str:
    return _PARAMETER.sub(lambda match: f":{prefix}{match.group(1)}", sql)


def _cte_sql(write: HeldWrite, rows: int, n: int) -> str:
    if write.table is None:
        return _prefixed(write.sql, f"w{n}_0_")
    values = ", ".join(_values(write.types, f"w{n}_{r}_")[len("VALUES ") :] for r in range(rows))
    return f"INSERT INTO {write.table} ({', '.join(write.types)}) VALUES {values} {write.suffix}"


@functools.cache
def _hot(shape: Shape) -> HotStatement:
    statement = _together(shape)
    return HotStatement(lambda _: statement)


@functools.cache
def _together(shape: Shape) -> TextClause:
    """One statement for a transaction's held writes, built once per shape (a mutation's are
    always the same few): each write a CTE, each INSERT with all its rows, parameters
    prefixed with their place."""
    parts = [f"w{n} AS ({_cte_sql(write, rows, n)})" for n, (write, rows) in enumerate(shape)]
    return text(f"WITH {', '.join(parts)} SELECT 1").bindparams(
        *(
            bindparam(f"w{n}_{r}_{name}", type_=type_)
            for n, (write, rows) in enumerate(shape)
            for r in range(rows)
            for name, type_ in write.types.items()
        )
    )
