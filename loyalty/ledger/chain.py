"""The ledger's hash chain: tamper evidence for edits made behind the triggers' back.

Each ledger transaction stores ``hash``, the SHA-256 (hex) of its canonical text, and
``prev_hash``, the hash of the member's previous transaction: one chain per member, extended
while the member row is locked (every posting locks it), so members never wait on a shared
chain head. The canonical text is built from ``FIELDS`` in one of two ways that give the same
bytes: ``canonical_text`` in Python (the services, ``ledger verify``, the migration) and
``canonical_sql`` in SQL (the set-based jobs' ``INSERT ... SELECT``, hashed there by
``ledger_sha256``: a SQL function on PostgreSQL, a Python function registered on each SQLite
connection).

Each field is written as ``<length>:<text>`` (``-`` for NULL) and the fields are joined by
``|``, so no value can pass for another. Postings are ``ACCOUNT:points`` sorted by account and
points and joined by ``,``; times are UTC with microseconds.
"""

import hashlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import String, case, cast, func, literal, select, tuple_
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.elements import ColumnElement
from sqlalchemy.sql.functions import FunctionElement
from sqlalchemy.sql.selectable import Select

FIELDS = (
    "id",
    "kind",
    "member_id",
    "occurred_at",
    "created_at",
    "reason",
    "purchase_id",
    "redemption_id",
    "qualifying_points",
    "qualifying_at",
    "postings",
    "prev_hash",
)
SQL_FUNCTION = "ledger_sha256"
_POSTGRES_BODY = "encode(sha256(convert_to({}, 'UTF8')), 'hex')"
POSTGRES_FUNCTION = (
    f"CREATE OR REPLACE FUNCTION {SQL_FUNCTION}(text) RETURNS text LANGUAGE sql IMMUTABLE STRICT "
    f"AS $$ SELECT {_POSTGRES_BODY.format('$1')} $$"
)


class _Sha256Hex(FunctionElement[str]):
    """``ledger_sha256(text)``; on PostgreSQL its body, written in place. PostgreSQL never
    inlines the function (it is declared IMMUTABLE and ``convert_to`` is only STABLE), so a
    call runs the SQL-function executor for every row: most of the hashing's cost in a
    set-based insert. The body in place gives the same bytes."""

    type = String()
    name = SQL_FUNCTION
    inherit_cache = True


@compiles(_Sha256Hex)
def _call_sha256(element: _Sha256Hex, compiler: SQLCompiler, **kw: Any) -> str:
    return f"{SQL_FUNCTION}({compiler.process(element.clauses, **kw)})"


@compiles(_Sha256Hex, "postgresql")
def _inline_sha256(element: _Sha256Hex, compiler: SQLCompiler, **kw: Any) -> str:
    return _POSTGRES_BODY.format(compiler.process(element.clauses, **kw))


def sha256_hex(text: str | None) -> str | None:
    """``ledger_sha256`` for SQLite connections (STRICT like the PostgreSQL function)."""
    return None if text is None else hashlib.sha256(text.encode()).hexdigest()


def stamp(moment: datetime | None) -> str | None:
    """A time as the canonical text writes it."""
    return None if moment is None else moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def postings_text(postings: Iterable[tuple[str, int]]) -> str:
    """(account, points) pairs in canonical order."""
    return ",".join(f"{account}:{points}" for account, points in sorted(postings))


def _field(value: str | None) -> str:
    return "-" if value is None else f"{len(value)}:{value}"


def _text_field(name: str, value: Any) -> str:
    """One field of the canonical text, from its Python value."""
    if name == "postings":
        return _field(postings_text(value))
    if isinstance(value, datetime):
        return _field(stamp(value))
    return _field(None if value is None else str(value))


def canonical_text(values: Mapping[str, Any]) -> str:
    """The canonical text of a transaction: ``values`` maps every name of ``FIELDS`` to an
    int, str, datetime, None, or (postings) a list of (account, points) pairs."""
    return "|".join(_text_field(name, values[name]) for name in FIELDS)


def transaction_hash(values: Mapping[str, Any]) -> str:
    return hashlib.sha256(canonical_text(values).encode()).hexdigest()


@dataclass(frozen=True)
class Same:
    """A field with the same value in every row of a set-based insert (kind, times, reason):
    ``canonical_sql`` writes its canonical text once, in Python, instead of building it in SQL
    for every row."""

    value: Any


def _sql_field(value: ColumnElement[Any]) -> ColumnElement[str]:
    as_text = cast(value, String)
    return case(
        (value.is_(None), literal("-")),
        else_=cast(func.length(as_text), String) + literal(":") + as_text,
    )


def canonical_sql(values: Mapping[str, ColumnElement[Any] | Same]) -> ColumnElement[str]:
    """``canonical_text`` as a SQL expression: ``values`` maps every name of ``FIELDS`` to a
    SQL expression or to ``Same`` (a Python value, as ``canonical_text`` takes it); in SQL,
    times and postings must already be canonical text (``stamp``, ``postings_sql``), the
    others are integers or text. Adjacent ``Same`` fields become one literal."""
    parts: list[ColumnElement[str] | str] = []
    for name in FIELDS:
        value = values[name]
        if isinstance(value, Same):
            parts.append(_text_field(name, value.value))
        else:
            parts.append(_sql_field(value))
    text: ColumnElement[str] | None = None
    pending = ""
    for index, part in enumerate(parts):
        separator = "|" if index else ""
        if isinstance(part, str):
            pending += separator + part
            continue
        prefix = pending + separator
        if prefix:
            text = literal(prefix) if text is None else text + literal(prefix)
        text = part if text is None else text + part
        pending = ""
    if pending:
        text = literal(pending) if text is None else text + literal(pending)
    assert text is not None
    return text


def hash_sql(values: Mapping[str, ColumnElement[Any] | Same]) -> ColumnElement[str]:
    return _Sha256Hex(canonical_sql(values))


def postings_sql(postings: Sequence[tuple[str, int, ColumnElement[int]]]) -> ColumnElement[str]:
    """Canonical postings text in SQL for postings (account, sign, amount) whose amounts are
    positive: sorting by account and sign is then sorting by account and points."""
    text: ColumnElement[str] | None = None
    for account, sign, amount in sorted(postings, key=lambda p: (p[0], p[1])):
        part = literal(f"{account}:") + cast(amount * sign, String)
        text = part if text is None else text + literal(",") + part
    assert text is not None
    return text


def chain_rows(
    transactions: Any, entries: Any, *, after: tuple[int, int], limit: int
) -> Select[*tuple[Any, ...]]:
    """The next ``limit`` transactions in chain order (member, then id) after ``after``, with
    their postings as ``ACCOUNT:points`` joined by ``,`` (any order: see ``parse_postings``)."""
    t, e = transactions.c, entries.c
    postings = (
        select(func.aggregate_strings(e.account + literal(":") + cast(e.points, String), ","))
        .where(e.transaction_id == t.id)
        .scalar_subquery()
    )
    return (
        select(
            *(t[name] for name in FIELDS if name != "postings"), t.hash, postings.label("postings")
        )
        .where(tuple_(t.member_id, t.id) > tuple_(*after))
        .order_by(t.member_id, t.id)
        .limit(limit)
    )


def parse_postings(text: str | None) -> list[tuple[str, int]]:
    if not text:
        return []
    pairs = (part.rsplit(":", 1) for part in text.split(","))
    return [(account, int(points)) for account, points in pairs]


def row_hash(row: Any, *, prev_hash: str | None) -> str:
    """The hash a ``chain_rows`` row should have, after the given previous hash."""
    values = dict(row._mapping)
    values["postings"] = parse_postings(row.postings)
    values["prev_hash"] = prev_hash
    return transaction_hash(values)
