"""Statements every purchase runs, sent straight to asyncpg on PostgreSQL.

SQLAlchemy's execution of a Core statement (execution context, parameter processing, result
wrapper, the greenlet hop) costs this server about 0.1 ms of CPU above asyncpg's own, and a
purchase runs seven statements. A ``HotStatement`` is still written as a SQLAlchemy statement
and built once per dialect. On PostgreSQL it is compiled once per set of parameter names;
each call binds its values with the column types' own processors and runs on the asyncpg
connection that the session's transaction holds. On SQLite it runs through the session.

The transaction is the session's. The statement takes the connection's execution lock and
starts the transaction as SQLAlchemy's asyncpg adapter would (it begins lazily, on the first
statement), so the session's commit or rollback ends what it wrote. Those are the adapter
internals of SQLAlchemy 2.1, which pyproject.toml pins; with another adapter every statement
goes through the session. SQLAlchemy's ``before_cursor_execute`` listeners still see each
statement: the tests' posting guard and statement counts rely on them.
"""

import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, cast

from sqlalchemy.engine import Connection, Dialect
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql import Executable
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.elements import ClauseElement

Processor = Callable[[Any], Any]
_CONNECTION = "loyalty_hot_connection"
"""``Session.info`` key: the transaction, its connection and the asyncpg adapter."""


class PerDialect:
    """A statement built once per dialect, for hot paths that only bind values."""

    def __init__(self, build: Callable[[AsyncSession], Any]) -> None:
        self._build = build
        self._built: dict[str, Any] = {}

    def __call__(self, session: AsyncSession) -> Any:
        dialect = session.get_bind().dialect.name
        if dialect not in self._built:
            self._built[dialect] = self._build(session)
        return self._built[dialect]


@dataclass(frozen=True)
class _Compiled:
    sql: str
    binds: tuple[tuple[str, Any, Processor | None], ...]
    """Each positional parameter: its name, its default (for values built into the statement)
    and the bind processor of its type."""
    results: dict[str, Any]
    """Each returned column's type, by key, for the result processors."""


class HotStatement:
    """A statement built once per dialect by ``build``; ``rows`` runs it."""

    def __init__(self, build: Callable[[AsyncSession], Executable]) -> None:
        self.statement = PerDialect(build)
        self._compiled: dict[tuple[str, ...], _Compiled] = {}
        self._processors: tuple[tuple[str, Processor | None], ...] | None = None

    async def rows(
        self, session: AsyncSession, params: Mapping[str, Any]
    ) -> Sequence[Mapping[Any, Any]]:
        """The rows the statement returns: every hot statement returns rows (``RETURNING``,
        or ``SELECT 1`` after writable CTEs), so that both databases answer alike."""
        statement = self.statement(session)
        connection, adapter = await _connection(session)
        dialect = connection.dialect
        if adapter is None:
            return (await session.execute(statement, params)).mappings().all()
        compiled = self._compile(statement, dialect, tuple(params))
        values = [
            (value if processor is None else processor(value))
            for name, default, processor in compiled.binds
            for value in (params.get(name, default),)
        ]
        listeners = connection.dispatch.before_cursor_execute
        if listeners:
            listeners(connection, None, compiled.sql, values, None, False)
        async with adapter._execute_mutex:
            if adapter._transaction is None:
                await adapter._start_transaction()
            driver = adapter.driver_connection
            try:
                if self._processors is None and compiled.results:
                    # Prepared once, only to learn the result's column types; a unique name,
                    # as LOYALTY_DB_PGBOUNCER asks of every prepared statement.
                    prepared = await driver.prepare(
                        compiled.sql, name=f"__loyalty_hot_{uuid.uuid4().hex}__"
                    )
                    self._processors = _result_processors(
                        compiled.results, dialect, prepared.get_attributes()
                    )
                records = await driver.fetch(compiled.sql, *values)
            except Exception as error:
                adapter._handle_exception(error)
        processors = self._processors
        if not records or not processors:
            return cast(list[Mapping[Any, Any]], records)
        return [
            {
                key: (value if processor is None else processor(value))
                for (key, processor), value in zip(processors, record.values(), strict=True)
            }
            for record in records
        ]

    def _compile(
        self, statement: Executable, dialect: Dialect, names: tuple[str, ...]
    ) -> _Compiled:
        compiled = self._compiled.get(names)
        if compiled is None:
            compiler = cast(ClauseElement, statement).compile(
                dialect=dialect, column_keys=list(names)
            )
            assert isinstance(compiler, SQLCompiler)
            self._compiled[names] = compiled = _Compiled(
                sql=compiler.string,
                binds=tuple(
                    (
                        name,
                        None if bind.required else bind.effective_value,
                        bind.type.dialect_impl(dialect).bind_processor(dialect),
                    )
                    for name in compiler.positiontup or ()
                    for bind in (compiler.binds[name],)
                ),
                results={key: column.type for key, column in _returned(statement)},
            )
        return compiled


async def _connection(session: AsyncSession) -> tuple[Connection, Any]:
    """The session's connection and, on PostgreSQL with SQLAlchemy's asyncpg adapter, that
    adapter; kept for the session's transaction (asking the session costs a greenlet hop)."""
    kept = session.info.get(_CONNECTION)
    if kept is not None and kept[0] is session.sync_session.get_transaction():
        return kept[1], kept[2]
    connection = (await session.connection()).sync_connection
    assert connection is not None, "the session has just connected"
    adapter = connection.connection.dbapi_connection
    if connection.dialect.name != "postgresql" or not hasattr(adapter, "_start_transaction"):
        adapter = None
    session.info[_CONNECTION] = (session.sync_session.get_transaction(), connection, adapter)
    return connection, adapter


def _returned(statement: Executable) -> list[tuple[str, Any]]:
    columns = getattr(statement, "exported_columns", None)
    return [] if columns is None else list(columns.items())


def _result_processors(
    types: Mapping[str, Any], dialect: Dialect, attributes: Sequence[Any]
) -> tuple[tuple[str, Processor | None], ...]:
    """Each returned column's key and result processor, by its PostgreSQL type; empty when no
    column needs one (the records are returned as they are)."""
    processors = tuple(
        (
            attribute.name,
            None
            if attribute.name not in types
            else types[attribute.name]
            .dialect_impl(dialect)
            .result_processor(dialect, attribute.type.oid),
        )
        for attribute in attributes
    )
    return processors if any(processor for _, processor in processors) else ()
