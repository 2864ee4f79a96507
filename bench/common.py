"""What the benches share: the throwaway PostgreSQL database each one creates, fills and
drops, the refusal of any database whose name does not say it is one, the set-based fill of
``tests.tiers_data`` and ``loyalty ledger verify`` at the end.

Not a benchmark itself: the benches import it (after putting the project root on
``sys.path``, as each of them does, so ``python bench/x.py`` finds ``loyalty`` and ``tests``).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from datetime import datetime
from pathlib import Path

import asyncpg
from sqlalchemy import text
from sqlalchemy.engine import URL, make_url

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from loyalty import migrate  # noqa: E402
from loyalty.db import Database  # noqa: E402
from tests.tiers_data import generate_members_with_earnings, insert_tiers  # noqa: E402

CONNECT_TIMEOUT_SECONDS = 10.0
ADMIN_TIMEOUT_SECONDS = 120.0
MAINTENANCE_TIMEOUT_SECONDS = 1800.0
DATABASE_SETTINGS = {
    "statement_timeout": "30min",
    "lock_timeout": "60s",
    "idle_in_transaction_session_timeout": "10min",
}
"""Server-side bounds on every statement and lock of the set-based benches, so a runaway
statement ends instead of holding the shared machine."""


def asyncpg_dsn(url: URL, database: str | None = None) -> str:
    """The libpq-style DSN asyncpg takes, for ``url`` or another database on its server."""
    plain = url.set(drivername="postgresql")
    if database is not None:
        plain = plain.set(database=database)
    return plain.render_as_string(hide_password=False)


def identifier(name: str | None) -> str:
    return '"' + (name or "").replace('"', '""') + '"'


async def connect(url: URL, database: str | None = None) -> asyncpg.Connection:
    return await asyncpg.connect(asyncpg_dsn(url, database), timeout=CONNECT_TIMEOUT_SECONDS)


async def database_exists(url: URL) -> bool:
    admin = await connect(url, "postgres")
    try:
        found = await admin.fetchval(
            "SELECT 1 FROM pg_database WHERE datname = $1",
            url.database,
            timeout=ADMIN_TIMEOUT_SECONDS,
        )
    finally:
        await admin.close()
    return found is not None


async def recreate_database(url: URL, settings: Mapping[str, str] = DATABASE_SETTINGS) -> None:
    """Drop and create the database, with ``settings`` (server-side bounds) on it."""
    name = identifier(url.database)
    admin = await connect(url, "postgres")
    try:
        await admin.execute(
            f"DROP DATABASE IF EXISTS {name} WITH (FORCE)", timeout=ADMIN_TIMEOUT_SECONDS
        )
        await admin.execute(f"CREATE DATABASE {name}", timeout=ADMIN_TIMEOUT_SECONDS)
        for setting, value in settings.items():
            await admin.execute(
                f"ALTER DATABASE {name} SET {setting} = '{value}'", timeout=ADMIN_TIMEOUT_SECONDS
            )
    finally:
        await admin.close()


async def drop_database(url: URL) -> None:
    admin = await connect(url, "postgres")
    try:
        await admin.execute(
            f"DROP DATABASE IF EXISTS {identifier(url.database)} WITH (FORCE)",
            timeout=ADMIN_TIMEOUT_SECONDS,
        )
    finally:
        await admin.close()


async def settle(url: URL, tables: Sequence[str] = ()) -> None:
    """``VACUUM ANALYZE`` (outside a transaction: asyncpg runs a lone statement in autocommit),
    then a ``CHECKPOINT`` so that the next phase does not write the previous one's pages."""
    connection = await connect(url)
    try:
        target = ", ".join(tables)
        await connection.execute(f"VACUUM ANALYZE {target}", timeout=MAINTENANCE_TIMEOUT_SECONDS)
        await connection.execute("CHECKPOINT", timeout=MAINTENANCE_TIMEOUT_SECONDS)
    finally:
        await connection.close()


def check_database_url(parser: argparse.ArgumentParser, database_url: str) -> None:
    """Stop at the command line unless the URL is asyncpg's and names a bench database:
    the database is dropped and recreated."""
    url = make_url(database_url)
    if url.get_backend_name() != "postgresql" or url.get_driver_name() != "asyncpg":
        parser.error("--database-url must be a postgresql+asyncpg:// URL")
    if not url.database or "bench" not in url.database:
        parser.error("the database is dropped and recreated: its name must contain 'bench'")


def bench_url(database_url: str) -> URL | None:
    """The URL, or None (having said why) when its database's name does not contain 'bench':
    the database is dropped and recreated."""
    url = make_url(database_url)
    if "bench" not in (url.database or ""):
        print("refusing: the database name must contain 'bench'", file=sys.stderr)
        return None
    return url


@asynccontextmanager
async def fresh_database(url: URL, *, keep: bool, recreate: bool = True) -> AsyncIterator[Database]:
    """The database recreated (unless ``recreate`` is false) and migrated, for the block;
    dropped after it unless ``keep``."""
    plain_url = url.render_as_string(hide_password=False)
    if recreate:
        await recreate_database(url)
    try:
        await asyncio.to_thread(migrate.upgrade, plain_url)
        db = Database(plain_url)
        try:
            yield db
        finally:
            await db.dispose()
    finally:
        if not keep:
            await drop_database(url)


async def fill(
    db: Database,
    *,
    members: int,
    lots_per_member: int,
    now: datetime,
    profile: Sequence[str] = (),
    purchases: int = 0,
    pending_days: int = 0,
    expire_days: int | None = None,
) -> None:
    """The tiers and ``members`` members with their earnings (``tests.tiers_data``), then each
    statement of ``profile`` with ``:now`` and ``:purchases`` (per member) bound."""
    async with db.transaction() as session:
        await insert_tiers(session)
        await generate_members_with_earnings(
            session,
            members=members,
            per_member=lots_per_member,
            now=now,
            pending_days=pending_days,
            expire_days=expire_days,
        )
        for statement in profile:
            await session.execute(text(statement), {"now": now, "purchases": purchases})


async def verify_ledger(url: URL) -> int:
    """``loyalty ledger verify`` on the database, its exit code and output printed."""
    verify = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "loyalty", "ledger", "verify"],
        env={**os.environ, "LOYALTY_DATABASE_URL": url.render_as_string(hide_password=False)},
        capture_output=True,
        text=True,
        timeout=1800,
        check=False,
    )
    said = verify.stdout.strip() or verify.stderr.strip()[-300:]
    print(f"loyalty ledger verify: exit {verify.returncode}: {said[:300]}")
    return verify.returncode
