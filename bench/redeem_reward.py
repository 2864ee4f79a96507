"""Benchmark of redeemReward: the full HTTP path against the bare SQL it issues, with and
without contention on the reward's stock row.

Two scenarios, each measured on two paths:

(a) **No contention.** A GENERATED_CODE reward with unlimited stock (``stock`` null); each
    request redeems it for a random member among the N enrolled. Every request must succeed.
(b) **Contention.** A GENERATED_CODE reward with a limited stock S (default M/2); M requests
    from random members race for it. Exactly S must succeed and the other M - S must be
    refused with ``OUT_OF_STOCK``; both outcomes are counted, and the reward's stock (0) and
    its redemption rows (S) are checked afterwards. Every successful redemption takes the
    reward row's lock with ``UPDATE rewards SET stock = stock - 1 ... WHERE stock > 0`` and
    keeps it until commit, so the successful half is serialised on that one row.

The paths, as in ``bench/record_purchase.py`` (whose helpers this script imports):

1. **HTTP.** A real ``loyalty serve`` (uvicorn) in a subprocess on a free port of 127.0.0.1,
   driven by C concurrent httpx clients with a ``pos`` API key, one ``redeemReward`` mutation
   per request with its own idempotencyKey. Each response is checked (HTTP 200, no GraphQL
   errors, an ``ISSUED`` redemption or an allowed error code).
2. **Raw asyncpg.** The same work with no HTTP, GraphQL or ORM: C tasks sharing a pool of C
   asyncpg connections, each issuing the statements ``rewards.service.redeem_reward`` issues,
   in the same order and as SQLAlchemy renders them (echo the engine to see them): the API key
   lookup in autocommit, then BEGIN, claim the idempotency key, lock the member, read the
   reward, [take one unit of stock], insert the redemption, update the balances, insert the
   REDEEM transaction and its two postings, read the member's available lots, take the points
   from the oldest, record the consumption, store the idempotency result, COMMIT. A refusal
   rolls back, as the service's DomainError does. The reward has no tier and no per-member
   limit, so the tier-rank and redemption-count reads are skipped on both paths. When the
   service changes what a redemption issues, change the statements here too.

Scenario (a) runs W warm-up requests first on each path (not counted); (b) runs after (a) on
the same, warm, server or pool. Each phase reports redemptions/s, p50/p99/max latency (client
side, per request, C concurrent clients) and, for (b), per outcome; then the ratio HTTP / raw
and CPU time per request (client, server, the bench database's PostgreSQL backends, rest of
the machine). Finally ``loyalty ledger verify`` checks what both paths wrote.

Setup: the database named in --database-url (default ``loyalty_bench_redeem``; the name must
contain "bench", so that a typo cannot drop a real database) is dropped, recreated, migrated,
given an admin and a pos key and N members (``record_purchase.prepare``), then each member is
credited through ``ledger.adjustments.adjust_points`` (one balanced ADJUST transaction and one
point lot each, so the balances, ledger and lots agree), and the rewards are created through
``rewards.service.create_reward``. It is dropped at the end unless --keep.

Run it from the project root with the project's virtualenv::

    python bench/redeem_reward.py [--members 1000] [--redemptions 3000] [--concurrency 16]
        [--warmup 200] [--stock N] [--keep]
        [--database-url postgresql+asyncpg://postgres@127.0.0.1:5432/loyalty_bench_redeem]

The load generator, the server and PostgreSQL share the machine's cores: the figures are
those of one small box under a local load generator, not of a deployment. The exit status is
0 only when every request had an allowed outcome, exactly S contended redemptions succeeded
and the ledger verifies.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import math
import os
import random
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import asyncpg
import httpx
from sqlalchemy.engine import URL, make_url

PROJECT_ROOT = Path(__file__).resolve().parent.parent
if str(PROJECT_ROOT) not in sys.path:
    sys.path.insert(0, str(PROJECT_ROOT))

from bench.common import asyncpg_dsn, check_database_url, connect, recreate_database  # noqa: E402
from bench.record_purchase import (  # noqa: E402
    FAILURE_SAMPLES,
    MEMBER_COLUMNS,
    REQUEST_TIMEOUT_SECONDS,
    SQL_API_KEY,
    SQL_AT_COMMIT,
    SQL_CLAIM,
    SQL_UPDATE_BALANCES,
    CpuUsage,
    Fixture,
    PhaseResult,
    Server,
    _columns,
    _ms,
    _no_reset,
    cpu_sample,
    cpu_usage,
    drop_unless_kept,
    graphql_payload,
    ledger_rows_sql,
    prepare,
    run_async,
    say,
    server_version,
    tail,
    verify_ledger,
)
from loyalty import migrate  # noqa: E402
from loyalty.db import Database  # noqa: E402
from loyalty.idempotency.service import request_hash  # noqa: E402
from loyalty.ids import encode_id  # noqa: E402
from loyalty.ledger.adjustments import AdjustmentIn, adjust_points  # noqa: E402
from loyalty.ledger.chain import FIELDS, transaction_hash  # noqa: E402
from loyalty.ledger.service import LOTS_PER_READ  # noqa: E402
from loyalty.outbox.service import event_id  # noqa: E402
from loyalty.rewards.models import Redemption, Reward  # noqa: E402
from loyalty.rewards.service import RewardDraft, create_reward, generate_code  # noqa: E402

DEFAULT_URL = "postgresql+asyncpg://postgres@127.0.0.1:5432/loyalty_bench_redeem"
PHASE_TIMEOUT_SECONDS = 900.0
"""Upper bound on one phase (warm-up and measured requests of one scenario on one path)."""
WAIT_LIMITS = {"statement_timeout": "60s", "idle_in_transaction_session_timeout": "60s"}
"""Bounds on every statement of the bench database, the server's included."""
STARTING_POINTS = 10_000_000
COST_POINTS = 100
CHANNEL = "IN_STORE"
ISSUED = "ISSUED"
OUT_OF_STOCK = "OUT_OF_STOCK"

# --------------------------------------------------------------------------------------------
# The HTTP request and the SQL redeem_reward issues (as SQLAlchemy renders it, PostgreSQL);
# the API key lookup, the idempotency claim and result, and the ledger transaction insert are
# the statements recordPurchase issues too, imported from bench/record_purchase.py.
# --------------------------------------------------------------------------------------------

MUTATION = """
mutation RedeemReward($input: RedeemRewardInput!) {
  redeemReward(input: $input) {
    redemption { id code status }
    member { id points { available } }
    errors { code field message }
  }
}
"""

# members.service.lock_member
SQL_LOCK_MEMBER = f"SELECT {MEMBER_COLUMNS} FROM members WHERE members.id = $1::BIGINT FOR UPDATE"
# session.get(Reward, id), then, for a reward of unlimited stock, the same with a shared lock
SQL_GET_REWARD = f"SELECT {_columns(Reward)} FROM rewards WHERE rewards.id = $1::BIGINT"
SQL_SHARE_REWARD = f"{SQL_GET_REWARD} FOR SHARE"
# the conditional stock update, when the reward's stock is limited
SQL_TAKE_STOCK = (
    "UPDATE rewards SET stock=(rewards.stock - $1::BIGINT) WHERE rewards.id = $2::BIGINT "
    "AND rewards.stock > $3::BIGINT RETURNING rewards.stock"
)
SQL_INSERT_REDEMPTION = (
    "INSERT INTO redemptions (reward_id, member_id, points_spent, code, status, channel, "
    "created_at) VALUES ($1::BIGINT, $2::BIGINT, $3::BIGINT, $4::VARCHAR, $5::VARCHAR, "
    f"$6::VARCHAR, $7::TIMESTAMP WITH TIME ZONE) RETURNING {_columns(Redemption)}"
)
# ledger.service.post with member_locked: the balances returning the chain head
# (SQL_UPDATE_BALANCES, as ledger.service.earn), the transaction and its postings in one
# statement, then _consume: the lots, oldest first, and what was taken
SQL_LEDGER_ROWS = ledger_rows_sql(lot=False)
SQL_SELECT_LOTS = (
    "SELECT point_lots.id, point_lots.remaining FROM point_lots "
    "WHERE point_lots.member_id = $1::BIGINT AND point_lots.state = $2::VARCHAR "
    "AND point_lots.remaining > $3::BIGINT ORDER BY point_lots.earned_at, point_lots.id "
    "LIMIT $4::INTEGER OFFSET $5::INTEGER"
)
SQL_TAKE_FROM_LOT = (
    "UPDATE point_lots SET remaining=(point_lots.remaining - $1::BIGINT) "
    "WHERE point_lots.id = $2::BIGINT"
)
SQL_INSERT_CONSUMPTION = (
    "INSERT INTO lot_consumptions (lot_id, transaction_id, amount) "
    "VALUES ($1::BIGINT, $2::BIGINT, $3::BIGINT) RETURNING lot_consumptions.id"
)

# --------------------------------------------------------------------------------------------
# Measurement
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RedeemSpec:
    """One redemption to attempt."""

    idempotency_key: str
    member_id: int


@dataclass(frozen=True)
class Scenario:
    name: str
    reward_id: int
    allowed: frozenset[str]
    """Outcomes that are not failures: ISSUED, and OUT_OF_STOCK under contention."""


@dataclass
class Measured:
    """One scenario on one path: the phase figures and each request's outcome."""

    scenario: Scenario
    phase: PhaseResult
    by_outcome: dict[str, list[float]] = field(default_factory=dict)
    """Measured latencies per outcome, sorted."""

    def count(self, outcome: str) -> int:
        return len(self.by_outcome.get(outcome, []))


Operation = Callable[[RedeemSpec], Awaitable[str]]
"""Attempts one redemption; returns ISSUED, an ErrorCode, or what else went wrong."""


async def drive(
    operation: Operation, specs: Sequence[RedeemSpec], concurrency: int
) -> tuple[float, list[tuple[str, float]]]:
    """Run ``operation`` over ``specs`` from ``concurrency`` workers: the wall time, and each
    request's outcome and latency."""
    pending = iter(specs)  # shared: each worker takes the next spec, so each runs exactly once
    results: list[tuple[str, float]] = []

    async def worker() -> None:
        for spec in pending:
            started = time.perf_counter()
            try:
                outcome = await operation(spec)
            except Exception as error:
                outcome = f"{type(error).__name__}: {error}"
            results.append((outcome, time.perf_counter() - started))

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return time.perf_counter() - started, results


async def measure(
    path: str,
    scenario: Scenario,
    operation: Operation,
    warmup: Sequence[RedeemSpec],
    measured: Sequence[RedeemSpec],
    concurrency: int,
    url: URL,
    server_pid: int | None = None,
) -> Measured:
    async with asyncio.timeout(PHASE_TIMEOUT_SECONDS):
        _, warmup_results = await drive(operation, warmup, concurrency)
        before = await cpu_sample(url, server_pid)
        seconds, results = await drive(operation, measured, concurrency)
        after = await cpu_sample(url, server_pid)
    failures = [
        f"warm-up: {outcome}" for outcome, _ in warmup_results if outcome not in scenario.allowed
    ] + [outcome for outcome, _ in results if outcome not in scenario.allowed]
    by_outcome: dict[str, list[float]] = {}
    for outcome, latency in results:
        key = outcome if outcome in scenario.allowed else "failed"
        by_outcome.setdefault(key, []).append(latency)
    for latencies in by_outcome.values():
        latencies.sort()
    phase = PhaseResult(
        name=f"({scenario.name[0]}) {path}",
        seconds=seconds,
        latencies=[latency for _, latency in results],
        failures=failures,
        cpu=cpu_usage(before, after),
    )
    return Measured(scenario=scenario, phase=phase, by_outcome=by_outcome)


def make_specs(
    prefix: str, count: int, member_ids: Sequence[int], rng: random.Random
) -> list[RedeemSpec]:
    return [
        RedeemSpec(idempotency_key=f"{prefix}-{index:07d}", member_id=rng.choice(member_ids))
        for index in range(count)
    ]


# --------------------------------------------------------------------------------------------
# Setup: points for every member, the rewards
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Rewards:
    unlimited: int
    limited_http: int
    limited_raw: int


async def give_points_and_rewards(url: str, member_ids: Sequence[int], stock: int) -> Rewards:
    """STARTING_POINTS to each member through adjust_points (ledger, lot and balances agree),
    then an unlimited reward and one limited reward per path."""
    db = Database(url)
    try:
        async with db.transaction() as session:
            for member_id in member_ids:
                await adjust_points(
                    session,
                    scope="bench-setup",
                    idempotency_key=f"setup-{member_id}",
                    adjustment=AdjustmentIn(
                        member_id=member_id, points=STARTING_POINTS, reason="Benchmark credit"
                    ),
                )

            async def reward(name: str, stock: int | None) -> int:
                created = await create_reward(
                    session, reward=RewardDraft(name=name, cost_points=COST_POINTS, stock=stock)
                )
                return created.id

            return Rewards(
                unlimited=await reward("Bench unlimited", None),
                limited_http=await reward("Bench limited (HTTP)", stock),
                limited_raw=await reward("Bench limited (raw)", stock),
            )
    finally:
        await db.dispose()


async def reward_state(url: URL, reward_id: int) -> tuple[int | None, int]:
    """The reward's stock and its number of redemptions."""
    conn = await connect(url)
    try:
        row = await conn.fetchrow(
            "SELECT stock, (SELECT count(*) FROM redemptions WHERE reward_id = $1) AS issued "
            "FROM rewards WHERE id = $1",
            reward_id,
        )
    finally:
        await conn.close()
    assert row is not None
    return row["stock"], int(row["issued"])


async def other_activity(url: URL) -> list[str]:
    """Active queries on other databases of the server (another benchmark, tests)."""
    conn = await connect(url, "postgres")
    try:
        rows = await conn.fetch(
            "SELECT datname, left(query, 50) AS query FROM pg_stat_activity "
            "WHERE state = 'active' AND pid <> pg_backend_pid() "
            "AND datname IS DISTINCT FROM $1",
            url.database,
        )
    finally:
        await conn.close()
    return [f"{row['datname']}: {row['query']}" for row in rows]


# --------------------------------------------------------------------------------------------
# Path 1: HTTP through a real server
# --------------------------------------------------------------------------------------------


def http_client(base_url: str, fixture: Fixture, concurrency: int) -> httpx.AsyncClient:
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    return httpx.AsyncClient(
        base_url=base_url,
        headers={"Authorization": f"Bearer {fixture.pos_secret}"},
        limits=limits,
        timeout=REQUEST_TIMEOUT_SECONDS,
    )


def http_redeemer(client: httpx.AsyncClient, reward_id: int) -> Operation:
    reward = encode_id("Reward", reward_id)

    async def redeem(spec: RedeemSpec) -> str:
        variables = {
            "input": {
                "idempotencyKey": spec.idempotency_key,
                "memberId": encode_id("Member", spec.member_id),
                "rewardId": reward,
                "channel": CHANNEL,
            }
        }
        response = await client.post("/graphql", json={"query": MUTATION, "variables": variables})
        payload = graphql_payload(response, "redeemReward")
        if isinstance(payload, str):
            return payload
        if payload["errors"]:
            return str(payload["errors"][0]["code"])
        status = payload["redemption"]["status"]
        return ISSUED if status == ISSUED else f"redemption status {status}"

    return redeem


# --------------------------------------------------------------------------------------------
# Path 2: the same statements over raw asyncpg
# --------------------------------------------------------------------------------------------


class Refused(Exception):
    """The redemption is refused (an ErrorCode, or a case not mirrored): roll back."""


def ineligible(member: asyncpg.Record, reward: asyncpg.Record, now: datetime) -> str | None:
    """rewards.service.ineligibility for a reward without tier or per-member limit."""
    if reward["min_tier_id"] is not None or reward["per_member_limit"] is not None:
        return "tier or per-member limit: not mirrored here"
    if member["status"] != "ACTIVE":
        return "MEMBER_INACTIVE"
    if not reward["active"]:
        return "NOT_ELIGIBLE"
    if reward["starts_at"] is not None and now < reward["starts_at"]:
        return "NOT_ELIGIBLE"
    if reward["ends_at"] is not None and now >= reward["ends_at"]:
        return "NOT_ELIGIBLE"
    channels = json.loads(reward["channels"])
    if channels and CHANNEL not in channels:
        return "NOT_ELIGIBLE"
    if reward["stock"] is not None and reward["stock"] <= 0:
        return OUT_OF_STOCK
    if member["points_available"] < reward["cost_points"]:
        return "INSUFFICIENT_POINTS"
    return None


def raw_redeemer(pool: asyncpg.Pool, fixture: Fixture, reward_id: int) -> Operation:
    scope = f"key:{fixture.pos_key_id}"
    digest = hashlib.sha256(fixture.pos_secret.encode()).hexdigest()

    async def redeem(spec: RedeemSpec) -> str:
        request = {"member_id": spec.member_id, "reward_id": reward_id, "channel": CHANNEL}
        async with pool.acquire(timeout=REQUEST_TIMEOUT_SECONDS) as conn:
            # The server authenticates with one SELECT in autocommit.
            if await conn.fetchrow(SQL_API_KEY, digest) is None:
                return "API key not found"
            try:
                async with conn.transaction():
                    now = datetime.now(UTC)
                    key_id = await conn.fetchval(
                        SQL_CLAIM,
                        *(scope, spec.idempotency_key, "redeemReward"),
                        *(request_hash("redeemReward", request), now),
                    )
                    if key_id is None:
                        raise Refused("idempotency key already claimed")
                    member = await conn.fetchrow(SQL_LOCK_MEMBER, spec.member_id)
                    reward = await conn.fetchrow(SQL_GET_REWARD, reward_id)
                    if member is None or reward is None:
                        raise Refused("NOT_FOUND")
                    problem = ineligible(member, reward, datetime.now(UTC))
                    if problem is not None:
                        raise Refused(problem)
                    cost = reward["cost_points"]
                    if reward["stock"] is None:
                        await conn.fetchrow(SQL_SHARE_REWARD, reward_id)
                    elif await conn.fetchval(SQL_TAKE_STOCK, 1, reward_id, 0) is None:
                        raise Refused(OUT_OF_STOCK)
                    issued = await conn.fetchrow(
                        SQL_INSERT_REDEMPTION,
                        *(reward_id, spec.member_id, cost, generate_code(), ISSUED, CHANNEL),
                        datetime.now(UTC),
                    )
                    updated = await conn.fetchrow(
                        SQL_UPDATE_BALANCES,
                        *(-cost, 0, 0, cost, 0, spec.member_id, 0, 0),
                        "ledger_transactions_id_seq",
                        1,
                    )
                    if updated is None:
                        raise Refused("INSUFFICIENT_POINTS")
                    transaction_id, head = updated["id0"], updated["chain_head"]
                    values = (
                        *(transaction_id, "REDEEM", spec.member_id, issued["created_at"]),
                        *(datetime.now(UTC), reward["name"], None, issued["id"], 0, None),
                    )
                    postings = [("MEMBER_AVAILABLE", -cost), ("PROGRAM_REDEMPTION", cost)]
                    chained = transaction_hash(
                        {
                            **dict(zip(FIELDS, values, strict=False)),
                            "postings": postings,
                            "prev_hash": head,
                        }
                    )
                    await conn.fetch(
                        SQL_LEDGER_ROWS,
                        *(*values, head, chained),
                        *(transaction_id, "MEMBER_AVAILABLE", spec.member_id, -cost),
                        updated["points_available"],
                        *(transaction_id, "PROGRAM_REDEMPTION", None, cost, None),
                    )
                    lots = await conn.fetch(
                        SQL_SELECT_LOTS, spec.member_id, "AVAILABLE", 0, LOTS_PER_READ, 0
                    )
                    if not lots or lots[0]["remaining"] < cost:
                        # the service would take from several lots (executemany): not mirrored
                        raise Refused("the oldest lot does not cover the cost")
                    await conn.execute(SQL_TAKE_FROM_LOT, cost, lots[0]["id"])
                    await conn.fetch(SQL_INSERT_CONSUMPTION, lots[0]["id"], transaction_id, cost)
                    result = {"redemption_id": issued["id"], "member_id": spec.member_id}
                    event = {"redemption": {"id": issued["id"], "code": issued["code"]}}
                    await conn.execute(
                        SQL_AT_COMMIT,
                        *(event_id(now), "redemption.issued", now, spec.member_id),
                        json.dumps(event),
                        *(event_id(now), "points.redeemed", json.dumps({"points": -cost})),
                        *(json.dumps(result), key_id),
                        *("API_KEY", "pos", fixture.pos_key_id, "bench pos", "redeemReward"),
                        *(json.dumps([]), json.dumps({}), None),
                    )
            except Refused as refusal:
                return str(refusal)
        return ISSUED

    return redeem


# --------------------------------------------------------------------------------------------
# Reporting and the command line
# --------------------------------------------------------------------------------------------


def percentile_ms(latencies: Sequence[float], fraction: float) -> float:
    """Nearest-rank percentile of sorted latencies, in milliseconds."""
    if not latencies:
        return math.nan
    return latencies[max(1, math.ceil(fraction * len(latencies))) - 1] * 1000


def report(pairs: Sequence[tuple[Measured, Measured]]) -> None:
    say("")
    say(
        f"{'scenario / path':<20}{'requests/s':>11}{'p50 ms':>9}{'p99 ms':>9}{'max ms':>9}"
        f"{'issued':>8}{'out of stock':>14}{'failed':>8}"
    )
    for pair in pairs:
        for measured in pair:
            phase = measured.phase
            say(
                f"{phase.name:<20}{phase.throughput:>11.1f}{phase.percentile_ms(0.5):>9.2f}"
                f"{phase.percentile_ms(0.99):>9.2f}{phase.percentile_ms(1.0):>9.2f}"
                f"{measured.count(ISSUED):>8}{measured.count(OUT_OF_STOCK):>14}"
                f"{phase.failure_count:>8}"
            )
    say("")
    for http, raw in pairs:
        h, r = http.phase, raw.phase
        say(
            f"ratio HTTP / raw, {http.scenario.name}: throughput {h.throughput / r.throughput:.2f}x"
            f", p50 latency {h.percentile_ms(0.5) / r.percentile_ms(0.5):.1f}x"
            f", p99 latency {h.percentile_ms(0.99) / r.percentile_ms(0.99):.1f}x"
        )
    contended = [m for pair in pairs for m in pair if OUT_OF_STOCK in m.scenario.allowed]
    if contended:
        say("")
        say("under contention, latency per outcome (ms)      p50      p99      max")
        for measured in contended:
            for outcome in (ISSUED, OUT_OF_STOCK):
                latencies = measured.by_outcome.get(outcome, [])
                say(
                    f"  {measured.phase.name:<20}{outcome:<14}{len(latencies):>6}"
                    f"{percentile_ms(latencies, 0.5):>9.2f}{percentile_ms(latencies, 0.99):>9.2f}"
                    f"{percentile_ms(latencies, 1.0):>9.2f}"
                )
    say("")
    say("CPU ms per request      client  server  PostgreSQL   other*  machine")
    for pair in pairs:
        for measured in pair:
            cpu: CpuUsage = measured.phase.cpu
            n = measured.phase.count
            say(
                f"  {measured.phase.name:<20}{_ms(cpu.client, n)} {_ms(cpu.server, n)}    "
                f"{_ms(cpu.postgres, n)}  {_ms(cpu.other, n)}  {_ms(cpu.machine, n)}"
            )
    say(
        "  * other = machine busy time minus the three: kernel (loopback networking, "
        "scheduling) and any other process running meanwhile"
    )
    for pair in pairs:
        for measured in pair:
            failures = measured.phase.failures
            if failures:
                say(f"\n{measured.phase.name}: {len(failures)} failed; the most frequent:")
                for failure, count in Counter(failures).most_common(FAILURE_SAMPLES):
                    say(f"  - {count} x {failure[:500]}")


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Benchmark redeemReward over HTTP against the same SQL on raw asyncpg, "
        "without and with contention on the reward's stock."
    )
    parser.add_argument("--members", type=int, default=1000, help="members to enroll (1000)")
    parser.add_argument(
        "--redemptions", type=int, default=3000, help="measured per scenario and path (3000)"
    )
    parser.add_argument("--concurrency", type=int, default=16, help="concurrent clients (16)")
    parser.add_argument(
        "--warmup", type=int, default=200, help="uncounted first requests of (a) (200)"
    )
    parser.add_argument(
        "--stock", type=int, default=None, help="stock of the contended reward (redemptions/2)"
    )
    parser.add_argument("--database-url", default=DEFAULT_URL, help=f"default {DEFAULT_URL}")
    parser.add_argument("--seed", type=int, default=1, help="random seed (1)")
    parser.add_argument("--keep", action="store_true", help="keep the database afterwards")
    args = parser.parse_args(argv)
    for name in ("members", "redemptions", "concurrency"):
        if getattr(args, name) < 1:
            parser.error(f"--{name} must be at least 1")
    if args.warmup < 0:
        parser.error("--warmup must not be negative")
    if args.stock is None:
        args.stock = args.redemptions // 2
    if not 0 <= args.stock <= args.redemptions:
        parser.error("--stock must be between 0 and --redemptions")
    spent = (args.warmup + 2 * args.redemptions) * 2 * COST_POINTS
    if spent > STARTING_POINTS:  # the unluckiest member must still afford every draw
        parser.error("too many redemptions for the points each member is given")
    check_database_url(parser, args.database_url)
    return args


def say_activity(url: URL, when: str) -> None:
    load = " ".join(f"{v:.2f}" for v in os.getloadavg()) if hasattr(os, "getloadavg") else "n/a"
    others = run_async(other_activity(url))
    say(
        f"{when}: load average {load}; active queries on other databases: "
        + ("; ".join(others) if others else "none")
    )


def check_contention(
    url: URL, measured: Measured, reward_id: int, stock: int, redemptions: int
) -> list[str]:
    """Exactly ``stock`` issued, the rest OUT_OF_STOCK, the stock at 0, ``stock`` rows."""
    left, rows = run_async(reward_state(url, reward_id))
    issued, refused = measured.count(ISSUED), measured.count(OUT_OF_STOCK)
    say(
        f"{measured.phase.name}: {issued} issued + {refused} OUT_OF_STOCK of {redemptions} "
        f"(stock {stock}); stock left {left}, {rows} redemption rows"
    )
    problems = []
    if issued != stock or rows != stock or left != 0 or issued + refused != redemptions:
        problems.append(
            f"{measured.phase.name}: expected {stock} issued, {redemptions - stock} "
            f"OUT_OF_STOCK, stock 0 and {stock} rows"
        )
    return problems


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    url = make_url(args.database_url)
    database_url = url.render_as_string(hide_password=False)
    run_started = time.monotonic()
    say(
        f"redeemReward benchmark: {args.members} members, {args.redemptions} redemptions per "
        f"scenario and path (+{args.warmup} warm-up in (a)), concurrency {args.concurrency}, "
        f"contended stock {args.stock}"
    )
    say(
        f"note: {os.cpu_count()} CPU cores shared by this load generator, the uvicorn server "
        "and PostgreSQL; figures are for this box, not a deployment"
    )
    pairs: list[tuple[Measured, Measured]] = []
    problems: list[str] = []
    verify_status = 1
    try:
        started = time.monotonic()
        run_async(recreate_database(url, settings=WAIT_LIMITS))
        migrate.upgrade(database_url)
        fixture = run_async(prepare(database_url, args.members, with_tier=False, rule_tiers=False))
        rewards = run_async(give_points_and_rewards(database_url, fixture.member_ids, args.stock))
        say(
            f"setup: database {url.database} (PostgreSQL {run_async(server_version(url))}) "
            f"migrated, keys created, {len(fixture.member_ids)} members credited "
            f"{STARTING_POINTS:,} points each, rewards created in "
            f"{time.monotonic() - started:.1f} s"
        )
        unlimited = Scenario("a: no contention", rewards.unlimited, frozenset({ISSUED}))
        limited = {
            path: Scenario("b: contention", reward_id, frozenset({ISSUED, OUT_OF_STOCK}))
            for path, reward_id in (("HTTP", rewards.limited_http), ("raw", rewards.limited_raw))
        }
        rng = random.Random(args.seed)

        def specs(prefix: str, count: int) -> list[RedeemSpec]:
            return make_specs(prefix, count, fixture.member_ids, rng)

        say_activity(url, "before measuring")
        with tempfile.TemporaryDirectory(prefix="loyalty-bench-") as scratch:
            server = Server(database_url, Path(scratch) / "server.log")
            try:
                ready_after = server.wait_ready()
                say(
                    f"server: pid {server.process.pid} on {server.base_url}, ready in "
                    f"{ready_after:.1f} s; HTTP phases running..."
                )

                async def http_phases() -> tuple[Measured, Measured]:
                    async with http_client(server.base_url, fixture, args.concurrency) as client:
                        a = await measure(
                            "HTTP",
                            unlimited,
                            http_redeemer(client, unlimited.reward_id),
                            specs("http-a-warmup", args.warmup),
                            specs("http-a", args.redemptions),
                            args.concurrency,
                            url,
                            server.process.pid,
                        )
                        b = await measure(
                            "HTTP",
                            limited["HTTP"],
                            http_redeemer(client, limited["HTTP"].reward_id),
                            [],
                            specs("http-b", args.redemptions),
                            args.concurrency,
                            url,
                            server.process.pid,
                        )
                    return a, b

                http_a, http_b = run_async(http_phases())
            finally:
                server.stop()
            if http_a.phase.failures or http_b.phase.failures:
                say(f"server log (last lines):\n{tail(server.log_path)}")
        say(
            f"HTTP phases: {http_a.phase.seconds:.1f} s + {http_b.phase.seconds:.1f} s; "
            "raw asyncpg phases running..."
        )

        async def raw_phases() -> tuple[Measured, Measured]:
            pool = await asyncpg.create_pool(
                asyncpg_dsn(url),
                min_size=args.concurrency,
                max_size=args.concurrency,
                max_queries=10_000_000,
                reset=_no_reset,
                command_timeout=REQUEST_TIMEOUT_SECONDS,
                timeout=10,
            )
            try:
                a = await measure(
                    "raw asyncpg",
                    unlimited,
                    raw_redeemer(pool, fixture, unlimited.reward_id),
                    specs("raw-a-warmup", args.warmup),
                    specs("raw-a", args.redemptions),
                    args.concurrency,
                    url,
                )
                b = await measure(
                    "raw asyncpg",
                    limited["raw"],
                    raw_redeemer(pool, fixture, limited["raw"].reward_id),
                    [],
                    specs("raw-b", args.redemptions),
                    args.concurrency,
                    url,
                )
            finally:
                await asyncio.wait_for(pool.close(), timeout=30)
            return a, b

        raw_a, raw_b = run_async(raw_phases())
        say(f"raw asyncpg phases: {raw_a.phase.seconds:.1f} s + {raw_b.phase.seconds:.1f} s")
        say_activity(url, "after measuring")
        pairs = [(http_a, raw_a), (http_b, raw_b)]
        report(pairs)

        say("")
        for measured in (http_b, raw_b):
            problems += check_contention(
                url, measured, measured.scenario.reward_id, args.stock, args.redemptions
            )
        verify_status = verify_ledger(database_url)
        for problem in problems:
            say(f"PROBLEM: {problem}")
    finally:
        drop_unless_kept(url, keep=args.keep)
        say(f"total run time {time.monotonic() - run_started:.1f} s")
    failed = any(m.phase.failures for pair in pairs for m in pair)
    return 0 if verify_status == 0 and not problems and not failed and pairs else 1


if __name__ == "__main__":
    sys.exit(main())
