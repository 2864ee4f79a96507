"""Engines, sessions and column types shared by every domain.

Reads and writes use separate session factories. On SQLite a write transaction starts with
``BEGIN IMMEDIATE``, taking the write lock up front so concurrent writers queue on the busy
timeout instead of failing half-way with "database is locked". On PostgreSQL both factories
share one pool (reads in autocommit) and writers lock the rows they change.
"""

import uuid
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar, cast

from sqlalchemy import BigInteger, DateTime, Integer, MetaData, Table, event, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Dialect, make_url
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.orm import DeclarativeBase, make_transient_to_detached
from sqlalchemy.orm.attributes import set_committed_value
from sqlalchemy.sql.dml import Insert
from sqlalchemy.sql.elements import ColumnElement
from sqlalchemy.types import TypeDecorator

from loyalty import held_writes
from loyalty.errors import not_found
from loyalty.ids import GLOBAL_ID_FUNCTION, global_id_sqlite
from loyalty.ledger.chain import SQL_FUNCTION, sha256_hex

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

BigIntPK = BigInteger().with_variant(Integer(), "sqlite")
"""64-bit keys on PostgreSQL; INTEGER on SQLite so the key is the rowid."""


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)

    if TYPE_CHECKING:
        # Every model declares its own table, so ``__table__`` is a Table (typed FromClause).
        __table__: ClassVar[Table]


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes on both databases (SQLite stores naive UTC text)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    @property
    def python_type(self) -> type[datetime]:
        return datetime

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTCDateTime column")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def utcnow() -> datetime:
    return datetime.now(UTC)


def insert_ignoring_conflicts(session: AsyncSession, table: Any) -> Insert:
    """``INSERT ... ON CONFLICT DO NOTHING`` in the session's dialect.

    On PostgreSQL a conflicting insert waits for the transaction that holds the key, so two
    concurrent requests with one key never both proceed.
    """
    if session.get_bind().dialect.name == "postgresql":
        return postgresql.insert(table).on_conflict_do_nothing()
    return sqlite.insert(table).on_conflict_do_nothing()


ModelT = TypeVar("ModelT", bound=Base)


async def lock_by_id(session: AsyncSession, model: type[ModelT], pk: int, *, field: str) -> ModelT:
    """The row of ``model`` with key ``pk``, locked for this transaction (``FOR UPDATE`` on
    PostgreSQL) and freshly read; ``NOT_FOUND`` naming ``field`` when there is none."""
    row = await session.scalar(
        select(model)
        .where(model.__table__.c.id == pk)
        .with_for_update()
        .execution_options(populate_existing=True)
    )
    if row is None:
        raise not_found(model.__name__, field)
    return row


def attach(
    session: AsyncSession, model: type[ModelT], row: Mapping[Any, Any], prefix: str = ""
) -> ModelT:
    """The ``model`` instance for a row that a Core statement returned, in the session as if
    the ORM had loaded it (``populate_existing``): the instance the session already holds,
    refreshed, or a new clean one. Core with this costs a fraction of an ORM-enabled
    ``UPDATE ... RETURNING`` or entity ``SELECT`` on the hot path.

    ``row`` holds every column of the model keyed by attribute name, as ``columns_of`` selects.
    """
    mapper = model.__mapper__
    held = session.identity_map.get(mapper.identity_key_from_primary_key((row[prefix + "id"],)))
    if held is not None:
        for attribute in mapper.column_attrs:
            set_committed_value(held, attribute.key, row[prefix + attribute.key])
        return cast(ModelT, held)
    instance = cast(ModelT, mapper.class_manager.new_instance())
    # A new instance has no history to keep: its dict is filled as the ORM's loader fills it,
    # and make_transient_to_detached commits every value.
    values = instance.__dict__
    for attribute in mapper.column_attrs:
        values[attribute.key] = row[prefix + attribute.key]
    make_transient_to_detached(instance)
    session.add(instance)
    return instance


async def flush_changes(session: AsyncSession) -> None:
    """Write pending ORM changes first, as the ORM's autoflush would before its own statement:
    a Core statement does not autoflush, and ``attach`` would overwrite unflushed values."""
    if session.new or session.dirty or session.deleted:
        await session.flush()


def columns_of(model: type[Base], prefix: str = "") -> list[ColumnElement[Any]]:
    """Every column of ``model`` labelled with its attribute name (after ``prefix``, to tell
    two models apart in one row), for ``attach``."""
    return [
        attribute.columns[0].label(prefix + attribute.key)
        for attribute in model.__mapper__.column_attrs
    ]


def _configure_sqlite(engine: AsyncEngine, *, begin: str, busy_timeout: float) -> None:
    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute(f"PRAGMA busy_timeout={int(busy_timeout * 1000)}")
        cursor.close()
        # The ledger jobs hash their transactions in SQL (PostgreSQL has it built in).
        dbapi_connection.create_function(SQL_FUNCTION, 1, sha256_hex, deterministic=True)
        dbapi_connection.create_function(
            GLOBAL_ID_FUNCTION, 2, global_id_sqlite, deterministic=True
        )

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(connection: Any) -> None:
        connection.exec_driver_sql(begin)


_PGBOUNCER_CONNECT_ARGS: dict[str, Any] = {
    "statement_cache_size": 0,
    "prepared_statement_cache_size": 0,
    "prepared_statement_name_func": lambda: f"__asyncpg_{uuid.uuid4().hex}__",
}
"""For a PgBouncer older than 1.21 in transaction mode, which may hand each statement of a
connection to another server: no statement cache, and names that never collide."""


class Database:
    """The engines of one deployment and the session factories built on them."""

    def __init__(
        self, url: str, *, pool_size: int = 10, busy_timeout: float = 30.0, pgbouncer: bool = False
    ) -> None:
        self.url = make_url(url)
        self.dialect = self.url.get_backend_name()
        if self.dialect == "sqlite":
            connect_args = {"timeout": busy_timeout}
            self.write_engine = create_async_engine(self.url, connect_args=connect_args)
            self.read_engine = create_async_engine(self.url, connect_args=connect_args)
            _configure_sqlite(self.write_engine, begin="BEGIN IMMEDIATE", busy_timeout=busy_timeout)
            _configure_sqlite(self.read_engine, begin="BEGIN", busy_timeout=busy_timeout)
        else:
            self.write_engine = create_async_engine(
                self.url,
                pool_size=pool_size,
                max_overflow=pool_size,
                pool_pre_ping=False,
                connect_args=_PGBOUNCER_CONNECT_ARGS if pgbouncer else {},
            )
            # Reads need no transaction on PostgreSQL (READ COMMITTED gives each statement a
            # fresh snapshot anyway): autocommit spares a BEGIN and a ROLLBACK per request.
            self.read_engine = self.write_engine.execution_options(isolation_level="AUTOCOMMIT")
        self._writes = async_sessionmaker(self.write_engine, expire_on_commit=False)
        self._reads = async_sessionmaker(self.read_engine, expire_on_commit=False)

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[AsyncSession]:
        """One write transaction: committed when the block ends, rolled back on any exception."""
        async with self._writes() as session, session.begin():
            yield session
            await held_writes.write_now(session)

    def read_session(self) -> AsyncSession:
        return self._reads()

    async def dispose(self) -> None:
        await self.write_engine.dispose()
        if self.dialect == "sqlite":
            await self.read_engine.dispose()
