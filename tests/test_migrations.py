"""Migrations: upgrade from empty, twice, down to base and up again, on both databases; and
the models never drift from what the migrations build."""

import asyncio
import uuid
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect
from sqlalchemy.ext.asyncio import create_async_engine

from loyalty import migrate
from loyalty.models import Base
from tests.conftest import POSTGRES_URL, _asyncpg_dsn


@pytest.fixture
def empty_database(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[str]:
    if backend == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path / 'empty.db'}"
        return
    request.getfixturevalue("postgres_template")  # skips or fails when PostgreSQL is absent
    name = f"loyalty_migrations_{uuid.uuid4().hex[:8]}"

    async def execute(sql: str) -> None:
        connection = await asyncpg.connect(_asyncpg_dsn(POSTGRES_URL))
        try:
            await connection.execute(sql)
        finally:
            await connection.close()

    asyncio.run(execute(f'CREATE DATABASE "{name}"'))
    try:
        yield POSTGRES_URL.rsplit("/", 1)[0] + f"/{name}"
    finally:
        asyncio.run(execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


async def _inspect(url: str) -> tuple[set[str], list]:
    engine = create_async_engine(url)
    try:
        async with engine.connect() as connection:

            def read(sync_connection):  # type: ignore[no-untyped-def]
                tables = set(inspect(sync_connection).get_table_names())
                context = MigrationContext.configure(sync_connection, opts={"compare_type": True})
                return tables, compare_metadata(context, Base.metadata)

            return await connection.run_sync(read)
    finally:
        await engine.dispose()


def test_upgrade_downgrade_upgrade(empty_database: str):
    migrate.upgrade(empty_database)
    migrate.upgrade(empty_database)
    tables, drift = asyncio.run(_inspect(empty_database))
    assert set(Base.metadata.tables) <= tables
    assert drift == [], f"models differ from the migrations: {drift}"

    migrate.downgrade(empty_database, "base")
    tables, _ = asyncio.run(_inspect(empty_database))
    assert tables <= {"alembic_version"}

    migrate.upgrade(empty_database)
    tables, drift = asyncio.run(_inspect(empty_database))
    assert set(Base.metadata.tables) <= tables
    assert drift == []
