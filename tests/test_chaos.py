"""Crash safety: SIGKILL a real server under concurrent purchases and redemptions, restart it,
retry every unanswered request with its idempotency key; each took effect exactly once.

PostgreSQL only (the production database; SQLite is one process). ``bench/chaos.py`` runs the
same harness for longer and prints figures.
"""

import asyncio
import random
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.chaos_harness import (
    check,
    fresh_database,
    plan_round,
    replay_answered,
    run_round,
    started,
    verify,
)
from tests.conftest import POSTGRES_URL, REQUIRE_POSTGRES, _postgres_problem

KILLS = 2
REQUESTS = 90
CONCURRENCY = 6
MEMBERS = 12


@pytest.fixture
async def chaos_database() -> AsyncIterator[str]:
    problem = await asyncio.to_thread(_postgres_problem)
    if problem:
        if REQUIRE_POSTGRES:
            pytest.fail(f"LOYALTY_REQUIRE_POSTGRES=1 but {problem}")
        pytest.skip(problem)
    async with fresh_database(POSTGRES_URL, f"loyalty_test_chaos_{uuid.uuid4().hex[:10]}") as url:
        yield url


async def test_every_request_takes_effect_once_across_server_kills(
    chaos_database: str, tmp_path: Path
) -> None:
    async with started(chaos_database, tmp_path / "server.log", MEMBERS, seed=11) as chaos:
        chaos_round = plan_round(chaos, 1, REQUESTS, random.Random(11), KILLS)
        await run_round(chaos, chaos_round, CONCURRENCY)
        assert chaos.server.starts == 1 + KILLS
        assert all(kill.in_flight for kill in chaos_round.kills)
        assert all(call.answer is not None for call in chaos_round.calls)
        problems = await replay_answered(chaos, chaos_round, CONCURRENCY)
        problems += await check(chaos)
        assert not problems, "\n".join(problems) + "\n" + chaos.server.log_tail()
    code, output = await verify(chaos_database)
    assert code == 0, output
