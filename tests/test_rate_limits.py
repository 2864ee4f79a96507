"""Per-credential rate limits (API.md §6): member tokens, API keys with a rate, Redis sharing."""

import asyncio
import logging
import socket
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
import pytest
from alembic.script import ScriptDirectory
from pydantic import ValidationError
from sqlalchemy import inspect, text
from sqlalchemy.ext.asyncio import create_async_engine

from loyalty import migrate
from loyalty.app import create_app
from loyalty.auth import service as auth
from loyalty.config import Settings
from loyalty.db import Database
from loyalty.errors import DomainError, ErrorCode
from tests.cli import arun_cli, run_cli
from tests.conftest import GraphQLClient, make_key
from tests.helpers import enroll
from tests.test_roles import issue_token

ME = "{ me { id } }"
PROGRAM = "{ program { name } }"
REDIS_HOST, REDIS_PORT = "127.0.0.1", 6379


@asynccontextmanager
async def http_for(settings: Settings, db: Database) -> AsyncIterator[httpx.AsyncClient]:
    """A client of an app instance of its own (its own limiter), over the given database."""
    transport = httpx.ASGITransport(app=create_app(settings, db=db))
    async with httpx.AsyncClient(transport=transport, base_url="http://loyalty.test") as http:
        yield http


async def statuses(caller: GraphQLClient, query: str, times: int) -> list[int]:
    return [(await caller.post(query)).status_code for _ in range(times)]


def assert_rate_limited(response: httpx.Response, window_seconds: int = 60) -> None:
    assert response.status_code == 429, response.text
    assert 1 <= int(response.headers["Retry-After"]) <= window_seconds
    body = response.json()
    assert body["data"] is None
    assert [error["extensions"]["code"] for error in body["errors"]] == ["RATE_LIMITED"]
    assert body["errors"][0]["message"]


def redis_problem() -> str | None:
    try:
        socket.create_connection((REDIS_HOST, REDIS_PORT), timeout=2).close()
    except OSError as error:
        return f"Redis not reachable at {REDIS_HOST}:{REDIS_PORT}: {error}"
    return None


def redis_settings(settings: Settings, rate: str) -> Settings:
    """Settings sharing counts through Redis, under a key prefix no other test run uses."""
    if problem := redis_problem():
        pytest.skip(problem)
    return settings.model_copy(
        update={
            "rate_limit_member": rate,
            "redis_url": f"redis://{REDIS_HOST}:{REDIS_PORT}/0",
            "redis_key_prefix": f"loyalty-test-{uuid.uuid4().hex}",
        }
    )


async def test_a_member_over_the_limit_gets_429_and_no_one_else_does(settings, db):
    limited = settings.model_copy(update={"rate_limit_member": "3/minute"})
    admin_key = await make_key(db, "admin")
    async with http_for(limited, db) as http:
        admin = GraphQLClient(http, admin_key)
        ann = admin.as_(await issue_token(admin, await enroll(admin, "ann")))
        bob = admin.as_(await issue_token(admin, await enroll(admin, "bob")))

        assert await statuses(ann, ME, 3) == [200, 200, 200]
        assert_rate_limited(await ann.post(ME))
        assert_rate_limited(await ann.post(ME))

        assert await statuses(bob, ME, 3) == [200, 200, 200]
        assert await statuses(admin, PROGRAM, 10) == [200] * 10


async def test_a_key_created_with_a_rate_limit_is_limited_and_others_are_not(client, database_url):
    created = await arun_cli(
        database_url,
        *("apikey", "create", "--role", "pos", "--name", "busy till", "--rate-limit", "2/minute"),
    )
    assert created.returncode == 0, created.stderr
    limited = GraphQLClient(client, created.stdout.strip().splitlines()[-1])
    other = await arun_cli(database_url, "apikey", "create", "--role", "pos", "--name", "till 2")
    unlimited = GraphQLClient(client, other.stdout.strip().splitlines()[-1])

    assert await statuses(limited, PROGRAM, 2) == [200, 200]
    assert_rate_limited(await limited.post(PROGRAM))
    assert await statuses(unlimited, PROGRAM, 10) == [200] * 10

    listed = (await arun_cli(database_url, "apikey", "list")).stdout.splitlines()
    assert "rate limit" in listed[0]
    assert "2/minute" in next(line for line in listed if line.endswith("busy till"))
    assert "/minute" not in next(line for line in listed if line.endswith("till 2"))


def test_bad_rate_limits_are_refused_on_the_command_line_and_nothing_is_written(database_url):
    for bad in ("fast", "0/minute"):
        refused = run_cli(
            database_url,
            *("apikey", "create", "--role", "pos", "--name", "till", "--rate-limit", bad),
        )
        assert refused.returncode == 2, (bad, refused.stdout, refused.stderr)
        assert "rate limit" in refused.stderr, refused.stderr
        assert "lyk_" not in refused.stdout
    listed = run_cli(database_url, "apikey", "list")
    assert listed.returncode == 0, listed.stderr
    assert listed.stdout.strip().splitlines()[1:] == []


@pytest.mark.parametrize(
    "bad", ["fast", "0/minute", "10/minute;100/hour", "5/fortnight", "-1/minute", "1000000/second"]
)
async def test_the_service_refuses_what_is_not_one_sane_rate(db, bad):
    async with db.transaction() as session:
        with pytest.raises(DomainError) as refused:
            await auth.create_api_key(session, role="pos", name="till", rate_limit=bad)
    assert refused.value.code == ErrorCode.INVALID
    assert refused.value.field == ["rateLimit"]


def test_a_bad_member_rate_is_a_configuration_error():
    with pytest.raises(ValidationError, match="not a rate limit"):
        Settings(rate_limit_member="lots")
    assert Settings(rate_limit_member="10 per second").rate_limit_member == "10 per second"


async def test_two_app_instances_share_counts_through_redis(settings, db):
    shared = redis_settings(settings, "3/minute")
    admin_key = await make_key(db, "admin")
    async with db.transaction() as session:
        till_key = (
            await auth.create_api_key(session, role="pos", name="till", rate_limit="2/minute")
        ).secret
    async with http_for(shared, db) as first, http_for(shared, db) as second:
        admin = GraphQLClient(first, admin_key)
        token = await issue_token(admin, await enroll(admin, "ann"))
        on_first, on_second = GraphQLClient(first, token), GraphQLClient(second, token)

        assert await statuses(on_first, ME, 2) == [200, 200]
        assert await statuses(on_second, ME, 1) == [200]
        assert_rate_limited(await on_second.post(ME))
        assert_rate_limited(await on_first.post(ME))

        assert (await GraphQLClient(first, till_key).post(PROGRAM)).status_code == 200
        assert (await GraphQLClient(second, till_key).post(PROGRAM)).status_code == 200
        assert_rate_limited(await GraphQLClient(first, till_key).post(PROGRAM))


async def test_requests_are_served_when_redis_is_down_with_one_warning(settings, db, caplog):
    unreachable = settings.model_copy(
        update={"rate_limit_member": "1/minute", "redis_url": "redis://127.0.0.1:1/0"}
    )
    admin_key = await make_key(db, "admin")
    async with http_for(unreachable, db) as http:
        admin = GraphQLClient(http, admin_key)
        member = admin.as_(await issue_token(admin, await enroll(admin, "ann")))
        with caplog.at_level(logging.WARNING, logger="loyalty.ratelimit"):
            assert await statuses(member, ME, 4) == [200] * 4
    warnings = [r for r in caplog.records if r.name == "loyalty.ratelimit"]
    assert len(warnings) == 1
    assert "unreachable" in warnings[0].getMessage()


def _api_key_columns(url: str, *statements: str) -> tuple[set[str], list]:
    """The columns of api_keys and its rows, after running ``statements``."""

    async def read() -> tuple[set[str], list]:
        engine = create_async_engine(url)
        try:
            async with engine.begin() as connection:
                for statement in statements:
                    await connection.execute(text(statement))
                columns = await connection.run_sync(
                    lambda sync: {c["name"] for c in inspect(sync).get_columns("api_keys")}
                )
                rows = (await connection.execute(text("SELECT * FROM api_keys"))).mappings()
                return columns, [dict(row) for row in rows]
        finally:
            await engine.dispose()

    return asyncio.run(read())


def test_the_migration_adds_and_drops_the_column_and_old_keys_stay_unlimited(empty_database):
    previous = (
        ScriptDirectory.from_config(migrate.alembic_config("")).get_revision("0010").down_revision
    )
    migrate.upgrade(empty_database, str(previous))
    columns, _ = _api_key_columns(
        empty_database,
        "INSERT INTO api_keys (name, role, prefix, secret_hash, created_at) "
        "VALUES ('old till', 'pos', 'lyk_old', 'hash', CURRENT_TIMESTAMP)",
    )
    assert "rate_limit" not in columns

    migrate.upgrade(empty_database)
    columns, rows = _api_key_columns(empty_database)
    assert "rate_limit" in columns
    assert [(row["name"], row["rate_limit"]) for row in rows] == [("old till", None)]

    migrate.downgrade(empty_database, str(previous))
    assert "rate_limit" not in _api_key_columns(empty_database)[0]
    migrate.upgrade(empty_database)
    assert "rate_limit" in _api_key_columns(empty_database)[0]
