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

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy.engine import Dialect
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql import Executable
from sqlalchemy.sql.compiler import SQLCompiler

Processor = Callable[[Any], Any]


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
        self._build = build
        self._built: dict[str, Executable] = {}
        self._compiled: dict[tuple[str, ...], _Compiled] = {}
        self._processors: tuple[tuple[str, Processor | None], ...] | None = None

    def statement(self, session: AsyncSession) -> Executable:
        dialect = session.get_bind().dialect.name
        if dialect not in self._built:
            self._built[dialect] = self._build(session)
        return self._built[dialect]

    async def rows(
        self, session: AsyncSession, params: Mapping[str, Any]
    ) -> Sequence[Mapping[str, Any]]:
        """The rows the statement returns (none for one that returns nothing)."""
        statement = self.statement(session)
        connection = await session.connection()
        dialect = connection.dialect
        adapter = connection.sync_connection.connection.dbapi_connection  # type: ignore[union-attr]  # the session's connection is checked out
        if dialect.name != "postgresql" or not hasattr(adapter, "_start_transaction"):
            result = await session.execute(statement, params)
            return result.mappings().all() if result.returns_rows else []
        compiled = self._compile(statement, dialect, tuple(params))
        values = [
            (value if processor is None else processor(value))
            for name, default, processor in compiled.binds
            for value in (params.get(name, default),)
        ]
        listeners = connection.sync_connection.dispatch.before_cursor_execute
        if listeners:
            listeners(connection.sync_connection, None, compiled.sql, values, None, False)
        async with adapter._execute_mutex:
            if adapter._transaction is None:
                await adapter._start_transaction()
            driver = adapter.driver_connection
            try:
                if self._processors is None and compiled.results:
                    prepared = await driver.prepare(compiled.sql)
                    self._processors = _result_processors(
                        compiled.results, dialect, prepared.get_attributes()
                    )
                records = await driver.fetch(compiled.sql, *values)
            except Exception as error:
                adapter._handle_exception(error)
        processors = self._processors
        if not records or not processors:
            return records
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
            compiler = statement.compile(dialect=dialect, column_keys=list(names))
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
