"""Fixtures: every database test runs on SQLite and on PostgreSQL, against a real database.

PostgreSQL tests use a database created for this test session and dropped after it. Where
PostgreSQL cannot be reached they skip with the reason, unless LOYALTY_REQUIRE_POSTGRES=1
(as in CI), which turns the skip into a failure. After every test, ``ledger verify`` must
find nothing wrong; over the whole session, no module outside ``loyalty/ledger/`` may write the
ledger's tables or the balances (``tests/posting_guard.py``).
"""

import asyncio
import os
import shutil
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
from sqlalchemy import text

from loyalty import migrate
from loyalty.app import create_app
from loyalty.auth import service as auth
from loyalty.config import Settings
from loyalty.db import Database
from loyalty.ledger.verify import verify
from tests.posting_guard import GUARD

POSTGRES_URL = os.environ.get(
    "LOYALTY_TEST_POSTGRES_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/test"
)
REQUIRE_POSTGRES = os.environ.get("LOYALTY_REQUIRE_POSTGRES") == "1"
BACKENDS = ["sqlite", "postgres"]
TEST_SECRET_KEY = "test-secret-that-signs-member-tokens-in-tests"
TABLES_TO_EMPTY = (
    "feedback, purchase_refunds, lot_consumptions, point_lots, ledger_entries, "
    "ledger_transactions, reward_codes, "
    "redemptions, rewards, rule_awards, earning_rule_versions, earning_rules, member_events, "
    "referrals, purchases, tier_changes, members, tiers, idempotency_keys, api_keys, audit_log, "
    "instance_secrets, webhook_deliveries, webhooks, events, member_rfm, segments, stats_rollup, "
    "stats_member_months, stats_months, stats_days"
)


def _asyncpg_dsn(url: str) -> str:
    return url.replace("postgresql+asyncpg://", "postgresql://")


def _postgres_problem() -> str | None:
    async def probe() -> None:
        connection = await asyncpg.connect(_asyncpg_dsn(POSTGRES_URL), timeout=5)
        await connection.close()

    try:
        asyncio.run(probe())
    except (OSError, asyncpg.PostgresError, TimeoutError) as error:
        return f"PostgreSQL not reachable at {POSTGRES_URL}: {error}"
    return None


@pytest.fixture(scope="session")
def postgres_template() -> Iterator[str]:
    """A migrated database of its own for this test session."""
    problem = _postgres_problem()
    if problem:
        if REQUIRE_POSTGRES:
            pytest.fail(f"LOYALTY_REQUIRE_POSTGRES=1 but {problem}")
        pytest.skip(problem)
    name = f"loyalty_test_{uuid.uuid4().hex[:10]}"
    admin_dsn = _asyncpg_dsn(POSTGRES_URL)

    async def execute(sql: str) -> None:
        connection = await asyncpg.connect(admin_dsn)
        try:
            await connection.execute(sql)
        finally:
            await connection.close()

    asyncio.run(execute(f'CREATE DATABASE "{name}"'))
    url = POSTGRES_URL.rsplit("/", 1)[0] + f"/{name}"
    try:
        migrate.upgrade(url)
        yield url
    finally:
        asyncio.run(execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture
def empty_database(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[str]:
    """A database with no tables at all, for tests that migrate it themselves."""
    if backend == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path / 'empty.db'}"
        return
    request.getfixturevalue("postgres_template")  # skips or fails when PostgreSQL is absent
    with postgres_database("loyalty_empty") as url:
        yield url


@contextmanager
def postgres_database(prefix: str) -> Iterator[str]:
    """A new, empty PostgreSQL database named ``prefix`` and a random suffix; dropped after."""
    name = f"{prefix}_{uuid.uuid4().hex[:8]}"

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


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("template") / "template.db"
    migrate.upgrade(f"sqlite+aiosqlite:///{path}")
    return path


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture
def database_url(backend: str, request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if backend == "postgres":
        url = request.getfixturevalue("postgres_template")
        asyncio.run(_reset_postgres(url))
        yield url
    else:
        path = tmp_path / "loyalty.db"
        shutil.copy(request.getfixturevalue("sqlite_template"), path)
        yield f"sqlite+aiosqlite:///{path}"


async def _reset_postgres(url: str) -> None:
    connection = await asyncpg.connect(_asyncpg_dsn(url))
    try:
        await connection.execute(
            f"TRUNCATE {TABLES_TO_EMPTY} RESTART IDENTITY CASCADE;"
            "UPDATE program SET name = 'Loyalty', currency = 'USD', points_per_unit = 1, "
            "pending_days = 0, points_expire_after_days = NULL, tier_window_days = 365, "
            "time_zone = 'UTC', max_backdate_days = 30, rules_token = NULL, "
            "referrer_points = 0, referee_points = 0, referral_limit = NULL, "
            "idempotency_retention_days = 30, expiry_warning_days = 30, "
            "closed_member_retention_days = NULL"
        )
    finally:
        await connection.close()


@pytest.fixture
def settings(database_url: str) -> Settings:
    # The concurrency tests queue hundreds of requests on one row on a shared 2-core machine:
    # the production timeout would cut them, and tests/test_security.py checks it on its own.
    return Settings(
        database_url=database_url,
        secret_key=TEST_SECRET_KEY,
        debug=False,
        request_timeout_seconds=300,
    )


@pytest.fixture
async def db(settings: Settings, request: pytest.FixtureRequest) -> AsyncIterator[Database]:
    database = Database(settings.database_url, busy_timeout=settings.sqlite_busy_timeout_seconds)
    yield database
    if request.node.get_closest_marker("corrupts_ledger"):
        await database.dispose()
        return
    async with database.read_engine.connect() as connection:
        violations = await verify(connection)
    await database.dispose()
    assert not violations, "ledger verify after the test:\n" + "\n".join(map(str, violations))


@pytest.fixture
async def client(settings: Settings, db: Database) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(settings, db=db)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://loyalty.test") as http:
        yield http


async def make_key(db: Database, role: str, name: str | None = None) -> str:
    async with db.transaction() as session:
        created = await auth.create_api_key(session, role=role, name=name or f"test {role}")
    return created.secret


@pytest.fixture
async def admin_key(db: Database) -> str:
    return await make_key(db, "admin")


@pytest.fixture
async def pos_key(db: Database) -> str:
    return await make_key(db, "pos")


@pytest.fixture
async def app_key(db: Database) -> str:
    return await make_key(db, "app")


class GraphQLClient:
    """Sends documents as a given caller and returns the decoded response."""

    def __init__(self, http: httpx.AsyncClient, token: str | None) -> None:
        self.http = http
        self.token = token

    async def post(self, query: str, **variables: Any) -> httpx.Response:
        headers = {"Authorization": f"Bearer {self.token}"} if self.token else {}
        return await self.http.post(
            "/graphql", json={"query": query, "variables": variables}, headers=headers
        )

    async def __call__(self, query: str, **variables: Any) -> dict[str, Any]:
        response = await self.post(query, **variables)
        assert response.status_code == 200, response.text
        return response.json()

    async def data(self, query: str, **variables: Any) -> dict[str, Any]:
        body = await self(query, **variables)
        assert not body.get("errors"), body["errors"]
        return body["data"]

    def as_(self, token: str | None) -> "GraphQLClient":
        return GraphQLClient(self.http, token)


@pytest.fixture
def admin(client: httpx.AsyncClient, admin_key: str) -> GraphQLClient:
    return GraphQLClient(client, admin_key)


@pytest.fixture
def pos(client: httpx.AsyncClient, pos_key: str) -> GraphQLClient:
    return GraphQLClient(client, pos_key)


@pytest.fixture
def app_client(client: httpx.AsyncClient, app_key: str) -> GraphQLClient:
    return GraphQLClient(client, app_key)


async def execute_sql(db: Database, sql: str) -> None:
    async with db.write_engine.begin() as connection:
        await connection.execute(text(sql))


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Tests marked ``postgres_only`` (scale tests) run on PostgreSQL alone."""
    kept, dropped = [], []
    for item in items:
        callspec = getattr(item, "callspec", None)
        on_sqlite = callspec is not None and callspec.params.get("backend") == "sqlite"
        if on_sqlite and item.get_closest_marker("postgres_only"):
            dropped.append(item)
        else:
            kept.append(item)
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = kept


def pytest_sessionstart(session: pytest.Session) -> None:
    GUARD.install()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem: pytest.Item | None) -> Iterator[None]:
    GUARD.test = item.nodeid
    try:
        return (yield)
    finally:
        GUARD.test = "(outside a test)"


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """A write to the ledger or the balances from outside ``loyalty/ledger/`` fails the run."""
    GUARD.uninstall()
    if GUARD.violations and exitstatus == pytest.ExitCode.OK:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if GUARD.violations:
        terminalreporter.section("posting path: writes from outside loyalty/ledger/", red=True)
        for violation in dict.fromkeys(GUARD.violations):
            terminalreporter.line(str(violation))
