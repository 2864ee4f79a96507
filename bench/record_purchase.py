"""Benchmark of recordPurchase: the full HTTP path against the bare SQL it issues.

What is measured, in one run:

1. **HTTP path.** A real ``loyalty serve`` (uvicorn, no ``--demo``) in a subprocess on a free
   port of 127.0.0.1, driven by C concurrent httpx clients with a ``pos`` API key. Each request
   is one ``recordPurchase`` mutation with its own idempotencyKey and orderId, a random member
   among the N enrolled and a random basket: lines (sku, category, quantity, unitPrice) of a
   latte, a bakery item and up to three other products, 1 to 3 of each, the total their sum
   (about 45 USD on average). Every response is checked: HTTP 200, no GraphQL errors, empty
   ``errors`` and the expected ``pointsAwarded``.
2. **Raw asyncpg.** The same work with no HTTP, GraphQL or ORM: C tasks sharing a pool of C
   asyncpg connections, each transaction issuing the statements one recordPurchase issues, in
   the same order (the API key lookup in its own transaction, as the server does, then claim
   the idempotency key, lock the member with the program, its tier and the next threshold,
   insert the purchase with its lines, update the balances (returning the chain head), insert
   the ledger transaction, its two postings and the point lot, then the statement that ends
   the transaction: the two outbox events, the idempotency result and the audit entry, as
   ``loyalty.held_writes`` sends them). There is no higher tier to
   qualify for, so the upgrade check (a qualifying-points sum and a tier change) is in neither
   path. This is the floor that the database alone imposes on this machine; the ratio
   HTTP / raw shows what the rest of the stack costs. It models no earning rules: with
   ``--rules`` it records base points only.
   The statements are written out below as SQLAlchemy renders them (echo the engine to see
   them): when the services change what a purchase writes, change them here too.

Both phases run W warm-up requests first (not counted), then M measured ones, and report
purchases/s, p50/p99/max latency (client side, per request, from C concurrent clients) and CPU
time per purchase: this client process, the server process, the bench database's PostgreSQL
backends, and the rest of the machine (kernel, and any other process: the machine may be
shared). Finally ``loyalty ledger verify`` checks the ledger both phases wrote.

**Earning rules.** ``--rules N`` creates N earning rules through the admin API
(createEarningRule, against the running server) before the HTTP phase's warm-up. Ten of them
(all of them when N < 10, see ``matching_rules``) match every basket: MULTIPLY on a category
in it, FIXED_BONUS on the channel and on the store, POINTS_PER_UNIT on a sku and a category in
it, POINTS_PER_CURRENCY with a minTotal and on skus, one condition on every day and hour, some
with perPurchase caps that bind and per-member caps that never do, no budget (a budgeted rule
that matches locks its row in every purchase: another benchmark). The rest match no basket
(``other_rule``): other skus, categories, channels or stores, a tier nobody holds, a start next
month, an unreachable minTotal, event types. The expected pointsAwarded of every purchase is
worked out here from the rules' documented semantics, independently of loyalty.rules. With
rules the members hold the top tier of a two-tier ladder (the other tier, below, is the one
nobody holds), so no upgrade check is added. ``--compare-rules N`` runs the HTTP phase alone
twice, each time on a freshly created database with the same fixture, members and baskets
(same seed): first without rules, then with N, and reports both throughputs and their ratio
(the target is at least 0.8), and the ratio of the CPU the load itself costs per purchase
(client + server + PostgreSQL), steadier on a shared box. ``--rounds R`` repeats the pair,
alternating which goes first, and reports the median throughput ratio.

The database named in --database-url (default ``loyalty_bench``) is dropped and recreated,
migrated, given an admin and a pos key and N members (bulk SQL insert), and dropped at the
end unless --keep. Its name must contain "bench", so that a typo cannot drop a real database.

Run it from the project root with the project's virtualenv::

    python bench/record_purchase.py [--members 1000] [--purchases 5000] [--concurrency 16]
        [--warmup 200] [--tier] [--rules N | --compare-rules N [--rounds 1]] [--seed 1]
        [--keep]
        [--database-url postgresql+asyncpg://postgres@127.0.0.1:5432/loyalty_bench]

The load generator, the server and PostgreSQL share the machine's cores, so the figures are
those of one small box under a local load generator, not of a deployment. The exit status is
0 only when every request succeeded and the ledger verifies (with --compare-rules: both
ledgers; a ratio below the target is reported, not an error).
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import math
import os
import random
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import ROUND_FLOOR, Decimal
from pathlib import Path
from typing import Any, TypeVar

import asyncpg
import httpx
from sqlalchemy import text
from sqlalchemy.engine import URL, make_url

PROJECT_ROOT = Path(__file__).resolve().parent.parent
if str(PROJECT_ROOT) not in sys.path:
    sys.path.insert(0, str(PROJECT_ROOT))

from bench.common import (  # noqa: E402
    asyncpg_dsn,
    check_database_url,
    connect,
    drop_database,
    recreate_database,
)
from loyalty import migrate  # noqa: E402
from loyalty.auth.service import create_api_key  # noqa: E402
from loyalty.db import Base, Database  # noqa: E402
from loyalty.idempotency.service import request_hash  # noqa: E402
from loyalty.ids import encode_id  # noqa: E402
from loyalty.ledger.chain import FIELDS, transaction_hash  # noqa: E402
from loyalty.members.models import Member  # noqa: E402
from loyalty.outbox.service import event_id  # noqa: E402
from loyalty.program.models import Program  # noqa: E402
from loyalty.purchases.models import Purchase  # noqa: E402
from loyalty.purchases.service import points_for  # noqa: E402
from tests.cli import free_port  # noqa: E402

DEFAULT_URL = "postgresql+asyncpg://postgres@127.0.0.1:5432/loyalty_bench"
READY_TIMEOUT_SECONDS = 30.0
REQUEST_TIMEOUT_SECONDS = 30.0
STOP_TIMEOUT_SECONDS = 15.0
VERIFY_TIMEOUT_SECONDS = 300.0
FAILURE_SAMPLES = 5
TIER_MULTIPLIER = Decimal("1.25")
STORE_ID = "store-0042"
RULES_TARGET_RATIO = 0.8
"""--compare-rules: throughput with the rules over throughput without, at least."""

T = TypeVar("T")

# --------------------------------------------------------------------------------------------
# The HTTP request and the SQL one recordPurchase issues (as SQLAlchemy renders it, PostgreSQL)
# --------------------------------------------------------------------------------------------

MUTATION = """
mutation RecordPurchase($input: RecordPurchaseInput!) {
  recordPurchase(input: $input) {
    pointsAwarded
    purchase { id orderId }
    member { id points { available } }
    errors { code field message }
  }
}
"""


CREATE_RULE = """
mutation CreateRule($input: CreateEarningRuleInput!) {
  createEarningRule(input: $input) {
    earningRule { id status }
    errors { code field message }
  }
}
"""


def _columns(model: type[Base]) -> str:
    """What select(Model) and .returning(Model) list: every mapped column, in table order."""
    table = model.__table__
    return ", ".join(f"{table.name}.{column.name}" for column in table.columns)


MEMBER_COLUMNS = _columns(Member)
PURCHASE_COLUMNS = _columns(Purchase)

# LoyaltyGraphQL._authenticate -> auth.authenticate_api_key, a read in autocommit.
SQL_API_KEY = (
    "SELECT api_keys.id, api_keys.role, api_keys.name, api_keys.last_used_at, "
    "api_keys.rate_limit FROM api_keys "
    "WHERE api_keys.secret_hash = $1::VARCHAR AND api_keys.revoked_at IS NULL"
)
# idempotency.service.claim
SQL_CLAIM = (
    "INSERT INTO idempotency_keys (scope, key, operation, request_hash, created_at) "
    "VALUES ($1::VARCHAR, $2::VARCHAR, $3::VARCHAR, $4::VARCHAR, "
    "$5::TIMESTAMP WITH TIME ZONE) ON CONFLICT DO NOTHING RETURNING idempotency_keys.id"
)
# purchases.service._read_for_purchase: member (locked), program, tier and next threshold
SQL_LOCK_MEMBER = (
    f"SELECT {MEMBER_COLUMNS}, "
    + _columns(Program)
    .replace("program.id,", "program.id AS id_1,")
    .replace("program.updated_at", "program.updated_at AS updated_at_1")
    + ", tiers_1.multiplier, "
    "(SELECT min(tiers_2.threshold) AS min_1 FROM tiers AS tiers_2 "
    "WHERE tiers_2.rank > coalesce(tiers_1.rank, $1::INTEGER)) AS anon_1 "
    "FROM members JOIN program ON program.id = $2::INTEGER "
    "LEFT OUTER JOIN tiers AS tiers_1 ON tiers_1.id = members.tier_id "
    "WHERE members.id = $3::BIGINT FOR UPDATE OF members"
)
# purchases.service.record_purchase
SQL_INSERT_PURCHASE = (
    "INSERT INTO purchases (order_id, member_id, channel, store_id, total_amount, currency, "
    "lines, occurred_at, created_at, points_awarded, points_refunded, points_unrecovered, "
    "refunded_amount, status, points_breakdown) VALUES "
    "($1::VARCHAR, $2::BIGINT, $3::VARCHAR, $4::VARCHAR, $5::NUMERIC(18, 4), $6::VARCHAR, "
    "$7::JSON, $8::TIMESTAMP WITH TIME ZONE, $9::TIMESTAMP WITH TIME ZONE, $10::BIGINT, "
    "$11::BIGINT, $12::BIGINT, $13::NUMERIC(18, 4), $14::VARCHAR, $15::JSON) "
    f"ON CONFLICT DO NOTHING RETURNING {PURCHASE_COLUMNS}"
)
# ledger.service.earn: the balances, the transaction, its postings, the lot
SQL_UPDATE_BALANCES = (
    "UPDATE members SET points_available=(members.points_available + $1::BIGINT), "
    "points_pending=(members.points_pending + $2::BIGINT), "
    "lifetime_earned=(members.lifetime_earned + $3::BIGINT), "
    "points_redeemed=(members.points_redeemed + $4::BIGINT), "
    "points_expired=(members.points_expired + $5::BIGINT) "
    "WHERE members.id = $6::BIGINT AND members.points_available + $1::BIGINT >= $7::BIGINT "
    f"AND members.points_pending + $2::BIGINT >= $8::BIGINT RETURNING {MEMBER_COLUMNS}, "
    "nextval($9::VARCHAR) AS id0, (SELECT ledger_transactions.hash FROM ledger_transactions "
    "WHERE ledger_transactions.member_id = $6::BIGINT ORDER BY ledger_transactions.id DESC "
    "LIMIT $10::INTEGER) AS chain_head"
)


def ledger_rows_sql(*, lot: bool) -> str:
    """ledger.service._write on PostgreSQL: the transaction, [its lot,] and its two postings in
    one statement of writable CTEs."""
    n = 12
    sql = (
        "WITH t AS (INSERT INTO ledger_transactions (id, kind, member_id, occurred_at, "
        "created_at, reason, purchase_id, redemption_id, qualifying_points, qualifying_at, "
        "prev_hash, hash) VALUES ($1::BIGINT, $2::VARCHAR, $3::BIGINT, "
        "$4::TIMESTAMP WITH TIME ZONE, $5::TIMESTAMP WITH TIME ZONE, $6::VARCHAR, $7::BIGINT, "
        "$8::BIGINT, $9::BIGINT, $10::TIMESTAMP WITH TIME ZONE, $11::VARCHAR, $12::VARCHAR))"
    )
    if lot:
        sql += (
            ", l AS (INSERT INTO point_lots (member_id, transaction_id, purchase_id, amount, "
            "remaining, state, earned_at, releases_at, expires_at) VALUES ($13::BIGINT, "
            "$14::BIGINT, $15::BIGINT, $16::BIGINT, $17::BIGINT, $18::VARCHAR, "
            "$19::TIMESTAMP WITH TIME ZONE, $20::TIMESTAMP WITH TIME ZONE, "
            "$21::TIMESTAMP WITH TIME ZONE))"
        )
        n = 21
    rows = ", ".join(
        f"(${n + 1 + 5 * r}::BIGINT, ${n + 2 + 5 * r}::VARCHAR, ${n + 3 + 5 * r}::BIGINT, "
        f"${n + 4 + 5 * r}::BIGINT, ${n + 5 + 5 * r}::BIGINT)"
        for r in range(2)
    )
    return (
        f"{sql} INSERT INTO ledger_entries (transaction_id, account, member_id, points, "
        f"balance_after) VALUES {rows} RETURNING id"
    )


SQL_LEDGER_ROWS = ledger_rows_sql(lot=True)

# loyalty.held_writes at commit: the two outbox events (purchase.recorded, points.earned), the
# idempotency key's result and the audit entry, in one statement (the events table's trigger
# notifies live updates)
SQL_AT_COMMIT = (
    "WITH w0 AS (INSERT INTO events (event_id, type, occurred_at, member_id, data, created_at) "
    "VALUES ($1::VARCHAR, $2::VARCHAR, $3::TIMESTAMP WITH TIME ZONE, $4::BIGINT, $5::JSON, "
    "$3::TIMESTAMP WITH TIME ZONE), ($6::VARCHAR, $7::VARCHAR, $3::TIMESTAMP WITH TIME ZONE, "
    "$4::BIGINT, $8::JSON, $3::TIMESTAMP WITH TIME ZONE) RETURNING id), "
    "w1 AS (UPDATE idempotency_keys SET result = $9::JSON WHERE id = $10::BIGINT), "
    "w2 AS (INSERT INTO audit_log (occurred_at, actor_kind, actor_role, actor_key_id, "
    "actor_name, member_id, operation, target_ids, summary, request_id) VALUES "
    "($3::TIMESTAMP WITH TIME ZONE, $11::VARCHAR, $12::VARCHAR, $13::BIGINT, $14::VARCHAR, "
    "$4::BIGINT, $15::VARCHAR, $16::JSON, $17::JSON, $18::VARCHAR)) SELECT 1"
)

# --raw-minimal: the five statements any ledger needs, on tables of their own (so the real
# ledger, and `ledger verify`, never see them).
SQL_MINIMAL_TABLES = (
    "CREATE TABLE IF NOT EXISTS bench_min_keys (id BIGSERIAL PRIMARY KEY, scope TEXT NOT NULL, "
    "key TEXT NOT NULL, UNIQUE (scope, key));"
    "CREATE TABLE IF NOT EXISTS bench_min_purchases (id BIGSERIAL PRIMARY KEY, "
    "order_id TEXT NOT NULL UNIQUE, member_id BIGINT NOT NULL, total NUMERIC(18, 4) NOT NULL);"
    "CREATE TABLE IF NOT EXISTS bench_min_balances (member_id BIGINT PRIMARY KEY, "
    "available BIGINT NOT NULL CHECK (available >= 0));"
    "CREATE TABLE IF NOT EXISTS bench_min_postings (id BIGSERIAL PRIMARY KEY, "
    "purchase_id BIGINT NOT NULL, account TEXT NOT NULL, member_id BIGINT, points BIGINT NOT NULL, "
    "balance_after BIGINT);"
    "INSERT INTO bench_min_balances SELECT id, 0 FROM members ON CONFLICT DO NOTHING"
)
SQL_MIN_CLAIM = (
    "INSERT INTO bench_min_keys (scope, key) VALUES ($1, $2) ON CONFLICT DO NOTHING RETURNING id"
)
SQL_MIN_PURCHASE = (
    "INSERT INTO bench_min_purchases (order_id, member_id, total) VALUES ($1, $2, $3) RETURNING id"
)
SQL_MIN_BALANCE = (
    "UPDATE bench_min_balances SET available = available + $1 WHERE member_id = $2 "
    "RETURNING available"
)
SQL_MIN_POSTING = (
    "INSERT INTO bench_min_postings (purchase_id, account, member_id, points, balance_after) "
    "VALUES ($1, $2, $3, $4, $5)"
)

# --------------------------------------------------------------------------------------------
# Measurement
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class BasketLine:
    sku: str
    category: str
    quantity: int
    unit_price: Decimal

    @property
    def amount(self) -> Decimal:
        return self.quantity * self.unit_price


@dataclass(frozen=True)
class PurchaseSpec:
    """One purchase to record, and the points it must earn."""

    order_id: str
    idempotency_key: str
    member_id: int
    lines: tuple[BasketLine, ...]
    total: Decimal
    """The sum of the lines."""
    base_points: int
    """What it earns without earning rules (the raw path's figure)."""
    points: int
    """What it earns over HTTP: base points plus the matching rules' awards."""


@dataclass(frozen=True)
class CpuSample:
    """Cumulative CPU seconds of the machine (busy), this process, the server and PostgreSQL."""

    machine: float | None
    client: float
    server: float | None
    postgres: dict[int, float]
    """Per backend of the bench database, and per PostgreSQL background process."""
    sessions: int | None
    """Connections ever made to the bench database (pg_stat_database, flushed within ~1 s)."""


@dataclass(frozen=True)
class CpuUsage:
    """CPU seconds spent during a phase."""

    machine: float | None
    client: float
    server: float | None
    postgres: float | None
    """Live backends only: a connection closed during the phase takes its CPU time with it."""
    connections: int | None
    """Connections opened to the bench database during the phase."""

    @property
    def other(self) -> float | None:
        """The rest of the machine's busy time: the kernel, and whatever else is running."""
        if self.machine is None:
            return None
        known = self.client + (self.server or 0.0) + (self.postgres or 0.0)
        return max(0.0, self.machine - known)


@dataclass
class PhaseResult:
    name: str
    seconds: float
    latencies: list[float]
    failures: list[str]
    cpu: CpuUsage

    def __post_init__(self) -> None:
        self.latencies.sort()

    @property
    def failure_count(self) -> int:
        return len(self.failures)

    @property
    def count(self) -> int:
        return len(self.latencies)

    @property
    def throughput(self) -> float:
        return self.count / self.seconds if self.seconds > 0 else 0.0

    def percentile_ms(self, fraction: float) -> float:
        """Nearest-rank percentile of the latencies, in milliseconds."""
        if not self.latencies:
            return math.nan
        rank = max(1, math.ceil(fraction * len(self.latencies)))
        return self.latencies[rank - 1] * 1000


def _clock_ticks() -> float:
    return float(os.sysconf("SC_CLK_TCK")) if hasattr(os, "sysconf") else 100.0


def _machine_busy_seconds() -> float | None:
    """Busy CPU seconds of every core since boot (Linux /proc/stat), None elsewhere."""
    try:
        fields = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    except OSError:
        return None
    user, nice, system, _idle, _iowait, irq, softirq, steal = (int(v) for v in fields[:8])
    return (user + nice + system + irq + softirq + steal) / _clock_ticks()


def _process_seconds(pid: int | None) -> float | None:
    """User + system CPU seconds of a process (Linux /proc/PID/stat), None when not visible."""
    if pid is None:
        return None
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat.rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _clock_ticks()


def _tree_seconds(pid: int | None) -> float | None:
    """CPU seconds of a process and its living children: ``serve --workers N`` runs the app in
    N worker processes under a supervisor."""
    own = _process_seconds(pid)
    if pid is None or own is None:
        return own
    try:
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    except OSError:
        children = []
    return own + sum(_process_seconds(int(child)) or 0.0 for child in children)


async def postgres_state(url: URL) -> tuple[list[int], int | None]:
    """The pids of the bench database's backends and of PostgreSQL's background processes
    (backends of other databases are left out: other people's tests may share the server),
    and how many connections the bench database has had so far.
    """
    conn = await connect(url)
    try:
        rows = await conn.fetch(
            "SELECT pid FROM pg_stat_activity WHERE pid <> pg_backend_pid() "
            "AND (datname = current_database() OR backend_type <> 'client backend')"
        )
        sessions = await conn.fetchval(
            "SELECT sessions FROM pg_stat_database WHERE datname = current_database()"
        )
    except asyncpg.UndefinedColumnError:  # PostgreSQL < 14 has no sessions column
        sessions = None
    finally:
        await conn.close()
    return [row["pid"] for row in rows], sessions


async def cpu_sample(url: URL, server_pid: int | None) -> CpuSample:
    pids, sessions = await postgres_state(url)
    postgres = {}
    for pid in pids:
        seconds = _process_seconds(pid)
        if seconds is not None:
            postgres[pid] = seconds
    times = os.times()
    return CpuSample(
        machine=_machine_busy_seconds(),
        client=times.user + times.system,
        server=_tree_seconds(server_pid),
        postgres=postgres,
        sessions=sessions,
    )


def cpu_usage(before: CpuSample, after: CpuSample) -> CpuUsage:
    def delta(a: float | None, b: float | None) -> float | None:
        return None if a is None or b is None else b - a

    postgres = None
    if after.postgres:  # a backend that started during the phase counts from zero
        postgres = sum(now - before.postgres.get(pid, 0.0) for pid, now in after.postgres.items())
    connections = None
    if before.sessions is not None and after.sessions is not None:
        # less one: the connection that took the second sample
        connections = max(0, after.sessions - before.sessions - 1)
    return CpuUsage(
        machine=delta(before.machine, after.machine),
        client=after.client - before.client,
        server=delta(before.server, after.server),
        postgres=postgres,
        connections=connections,
    )


Operation = Callable[[PurchaseSpec], Awaitable[str | None]]
"""Records one purchase; returns None on success or what went wrong."""


async def drive(
    operation: Operation, specs: Sequence[PurchaseSpec], concurrency: int
) -> tuple[float, list[float], list[str]]:
    """Run ``operation`` over ``specs`` from ``concurrency`` workers.

    Returns the wall time, every latency and what went wrong.
    """
    pending = iter(specs)  # shared: each worker takes the next spec, so each runs exactly once
    latencies: list[float] = []
    failures: list[str] = []

    async def worker() -> None:
        for spec in pending:
            started = time.perf_counter()
            try:
                problem = await operation(spec)
            except Exception as error:
                problem = f"{type(error).__name__}: {error}"
            latencies.append(time.perf_counter() - started)
            if problem is not None:
                failures.append(f"{spec.order_id}: {problem}")

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return time.perf_counter() - started, latencies, failures


async def run_phase(
    name: str,
    operation: Operation,
    warmup: Sequence[PurchaseSpec],
    measured: Sequence[PurchaseSpec],
    concurrency: int,
    url: URL,
    server_pid: int | None = None,
) -> PhaseResult:
    _, _, warmup_failures = await drive(operation, warmup, concurrency)
    before = await cpu_sample(url, server_pid)
    seconds, latencies, failures = await drive(operation, measured, concurrency)
    after = await cpu_sample(url, server_pid)
    return PhaseResult(
        name=name,
        seconds=seconds,
        latencies=latencies,
        failures=warmup_failures + failures,
        cpu=cpu_usage(before, after),
    )


def make_basket(rng: random.Random) -> tuple[BasketLine, ...]:
    """A latte and a bakery item, and up to three other products; 1 to 3 of each."""
    products = [COFFEE, rng.choice(BAKERY), *rng.sample(OTHER_PRODUCTS, rng.randint(0, 3))]
    return tuple(
        BasketLine(sku, category, rng.randint(1, 3), Decimal(price))
        for sku, category, price in products
    )


def make_specs(
    prefix: str,
    count: int,
    member_ids: Sequence[int],
    rng: random.Random,
    points_per_unit: Decimal,
    multiplier: Decimal,
    matching_rules: Sequence[BenchRule] = (),
) -> list[PurchaseSpec]:
    specs = []
    for index in range(count):
        lines = make_basket(rng)
        total = sum((line.amount for line in lines), Decimal(0))
        base = points_for(total, points_per_unit, multiplier)
        rate = points_per_unit * multiplier
        bonus = sum(rule.points(lines, total, rate) for rule in matching_rules)
        specs.append(
            PurchaseSpec(
                order_id=f"{prefix}-order-{index:07d}",
                idempotency_key=f"{prefix}-key-{index:07d}",
                member_id=rng.choice(member_ids),
                lines=lines,
                total=total,
                base_points=base,
                points=base + bonus,
            )
        )
    return specs


# --------------------------------------------------------------------------------------------
# The basket and the earning rules (--rules N)
# --------------------------------------------------------------------------------------------

COFFEE = ("LATTE", "coffee", "4.50")
BAKERY = [("CROISSANT", "bakery", "3.20"), ("MUFFIN", "bakery", "2.90")]
OTHER_PRODUCTS = [
    ("ESPRESSO", "coffee", "2.80"),
    ("BEANS-1KG", "beans", "24.00"),
    ("MUG", "merch", "12.00"),
    ("SANDWICH", "food", "7.50"),
    ("JUICE", "drinks", "3.90"),
]
MATCHING_RULES = 10
"""How many of the --rules N rules match every basket (all N when N is smaller)."""
NOT_BINDING = 1_000_000
"""A per-member cap no benchmark run can reach."""


def _floor(value: Decimal) -> int:
    return int(value.to_integral_value(rounding=ROUND_FLOOR))


def _lines(
    lines: Sequence[BasketLine], skus: Sequence[str] = (), categories: Sequence[str] = ()
) -> list[BasketLine]:
    """The lines a rule's skus / categories condition selects (either one matching will do)."""
    return [line for line in lines if line.sku in skus or line.category in categories]


def _amount(lines: Sequence[BasketLine]) -> Decimal:
    return sum((line.amount for line in lines), Decimal(0))


def _quantity(lines: Sequence[BasketLine]) -> int:
    return sum(line.quantity for line in lines)


Points = Callable[[Sequence[BasketLine], Decimal, Decimal], int]
"""(lines, total, points per unit × tier multiplier) -> the points a matching rule adds."""


@dataclass(frozen=True)
class BenchRule:
    """A createEarningRule input, and for a rule that matches every basket what it adds.

    The expectation is written out here from the rules' documented semantics, not computed
    with loyalty.rules.engine: the benchmark checks every pointsAwarded against it."""

    input: dict[str, Any]
    points: Points


def matching_rules() -> list[BenchRule]:
    """Ten rules every basket (IN_STORE at STORE_ID, a latte and a bakery item) meets."""

    def rule(name: str, kind: str, value: str, points: Points, **fields: Any) -> BenchRule:
        return BenchRule(
            input={"name": name, "effect": {"kind": kind, "value": value}, **fields},
            points=points,
        )

    def coffee(lines: Sequence[BasketLine]) -> list[BasketLine]:
        return _lines(lines, categories=("coffee",))

    def bakery(lines: Sequence[BasketLine]) -> list[BasketLine]:
        return _lines(lines, categories=("bakery",))

    return [
        rule(
            "Coffee double points",
            "MULTIPLY",
            "2",
            lambda lines, _, rate: _floor(_amount(coffee(lines)) * rate * 1),
            conditions={"categories": ["coffee"]},
            limits={"perMemberPerDay": NOT_BINDING},
            priority=10,
        ),
        rule(
            "Bakery one and a half",
            "MULTIPLY",
            "1.5",
            lambda lines, _, rate: min(_floor(_amount(bakery(lines)) * rate * Decimal("0.5")), 4),
            conditions={"categories": ["bakery"]},
            limits={"perPurchase": 4},
        ),
        rule(
            "In-store visit",
            "FIXED_BONUS",
            "10",
            lambda *_: 10,
            conditions={"channels": ["IN_STORE"]},
            limits={"perMemberPerDay": NOT_BINDING},
        ),
        rule(
            "Five per latte",
            "POINTS_PER_UNIT",
            "5",
            lambda lines, *_: min(5 * _quantity(_lines(lines, skus=("LATTE",))), 10),
            conditions={"skus": ["LATTE"]},
            limits={"perPurchase": 10},
        ),
        rule(
            "Big basket",
            "POINTS_PER_CURRENCY",
            "0.5",
            lambda _, total, __: _floor(total * Decimal("0.5")) if total >= 10 else 0,
            conditions={"minTotal": "10.00"},
        ),
        rule(
            "Store of the month",
            "FIXED_BONUS",
            "5",
            lambda *_: 5,
            conditions={"storeIds": [STORE_ID]},
        ),
        rule(
            "Two per pastry",
            "POINTS_PER_UNIT",
            "2",
            lambda lines, *_: 2 * _quantity(bakery(lines)),
            conditions={"categories": ["bakery"]},
            limits={"perMemberPerWeek": NOT_BINDING},
        ),
        rule(
            "Coffee by the dollar",
            "POINTS_PER_CURRENCY",
            "1",
            lambda lines, *_: min(_floor(_amount(_lines(lines, skus=("LATTE", "ESPRESSO")))), 20),
            conditions={"skus": ["ESPRESSO", "LATTE"]},
            limits={"perPurchase": 20, "perMemberPerDay": NOT_BINDING},
        ),
        rule(
            "Any day, any hour",
            "FIXED_BONUS",
            "3",
            lambda *_: 3,
            conditions={"daysOfWeek": list(DAYS), "hours": list(range(24))},
            priority=-5,
        ),
        rule(
            "Ten percent extra in store",
            "MULTIPLY",
            "1.1",
            lambda _, total, rate: _floor(total * rate * Decimal("0.1")),
            conditions={"channels": ["IN_STORE"], "storeIds": [STORE_ID]},
            limits={"perMemberTotal": NOT_BINDING},
        ),
    ]


DAYS = ("MONDAY", "TUESDAY", "WEDNESDAY", "THURSDAY", "FRIDAY", "SATURDAY", "SUNDAY")


def other_rule(index: int, unheld_tier: str, now: datetime) -> dict[str, Any]:
    """A rule no benchmark basket meets: other SKUs, categories, channels or stores, a tier
    nobody holds, a start in the future, a minimum total out of reach, or an event type."""

    def rule(name: str, kind: str, value: str, **fields: Any) -> dict[str, Any]:
        return {"name": f"{name} #{index}", "effect": {"kind": kind, "value": value}, **fields}

    templates = [
        lambda: rule(
            "Promo SKU triple",
            "MULTIPLY",
            "3",
            conditions={"skus": [f"PROMO-{index}", f"PROMO-{index}-XL"]},
            priority=100,
            exclusive=True,
        ),
        lambda: rule(
            "Seasonal category",
            "FIXED_BONUS",
            "50",
            conditions={"categories": [f"seasonal-{index}"]},
            limits={"budget": 100_000, "perMemberPerMonth": 200},
        ),
        lambda: rule(
            "Online and app only",
            "FIXED_BONUS",
            "20",
            conditions={"channels": ["ONLINE", "MOBILE_APP"]},
            limits={"perMemberPerDay": 20},
        ),
        lambda: rule(
            "Other store opening",
            "POINTS_PER_UNIT",
            "4",
            conditions={"storeIds": [f"store-{9000 + index}"]},
        ),
        lambda: rule(
            "Staff tier double",
            "MULTIPLY",
            "2",
            conditions={"tierIds": [unheld_tier]},
        ),
        lambda: rule(
            "Next month launch",
            "FIXED_BONUS",
            "100",
            startsAt=(now + timedelta(days=30)).isoformat(),
            endsAt=(now + timedelta(days=60)).isoformat(),
            limits={"budget": 50_000},
        ),
        lambda: rule(
            "App event",
            "FIXED_BONUS",
            "25",
            conditions={"eventType": f"bench_event_{index}"},
            limits={"perMemberTotal": 1},
        ),
        lambda: rule(
            "Huge basket",
            "POINTS_PER_CURRENCY",
            "2",
            conditions={"minTotal": "10000.00", "categories": ["beans", "merch"]},
            limits={"perPurchase": 500},
        ),
    ]
    return templates[index % len(templates)]()


# --------------------------------------------------------------------------------------------
# Setup: database, keys, members
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Fixture:
    admin_secret: str
    pos_secret: str
    pos_key_id: int
    member_ids: list[int]
    points_per_unit: Decimal
    multiplier: Decimal
    unheld_tier_id: int | None
    """A tier below the members' own that nobody holds (for the tier-condition rules)."""


async def prepare(url: str, members: int, with_tier: bool, rule_tiers: bool) -> Fixture:
    """API keys through the service, then N valid members with one set-based INSERT.

    With ``rule_tiers`` the members hold the top tier (multiplier TIER_MULTIPLIER with
    ``with_tier``, else 1) and a lower one nobody holds exists for the tier-condition rules:
    no tier above the members', so no upgrade check, in either run of --compare-rules.
    """
    db = Database(url)
    try:
        async with db.transaction() as session:
            admin = await create_api_key(session, role="admin", name="bench admin")
            pos = await create_api_key(session, role="pos", name="bench till")
            tier_id = unheld_tier_id = None

            async def add_tier(name: str, rank: int, threshold: int, multiplier: Decimal) -> int:
                return int(
                    await session.scalar(
                        text(
                            "INSERT INTO tiers (name, rank, threshold, multiplier, benefits, "
                            "created_at) VALUES (:name, :rank, :threshold, :multiplier, '[]', "
                            "now()) RETURNING id"
                        ),
                        {
                            "name": name,
                            "rank": rank,
                            "threshold": threshold,
                            "multiplier": multiplier,
                        },
                    )
                )

            multiplier = TIER_MULTIPLIER if with_tier else Decimal(1)
            if rule_tiers:
                unheld_tier_id = await add_tier("Staff", 0, 0, Decimal(1))
                tier_id = await add_tier("Base", 1, 1, multiplier)
            elif with_tier:
                tier_id = await add_tier("Base", 0, 0, multiplier)
            member_ids = (
                await session.scalars(
                    text(
                        "INSERT INTO members (external_id, email, first_name, last_name, status, "
                        "enrollment_channel, enrolled_at, updated_at, tier_id, points_available, "
                        "points_pending, lifetime_earned, points_redeemed, points_expired) "
                        "SELECT 'bench-' || g, 'bench-' || g || '@example.com', 'Bench', "
                        "'Member ' || g, 'ACTIVE', 'IN_STORE', now(), now(), "
                        "CAST(:tier_id AS BIGINT), 0, 0, 0, 0, 0 "
                        "FROM generate_series(1, :count) AS g RETURNING id"
                    ),
                    {"tier_id": tier_id, "count": members},
                )
            ).all()
            program = (await session.execute(text("SELECT points_per_unit FROM program"))).one()
    finally:
        await db.dispose()
    return Fixture(
        admin_secret=admin.secret,
        pos_secret=pos.secret,
        pos_key_id=pos.key.id,
        member_ids=list(member_ids),
        points_per_unit=program.points_per_unit,
        multiplier=TIER_MULTIPLIER if with_tier else Decimal(1),
        unheld_tier_id=unheld_tier_id,
    )


# --------------------------------------------------------------------------------------------
# Phase 1: the HTTP path through a real server
# --------------------------------------------------------------------------------------------


def loyalty_command() -> str:
    beside = Path(sys.executable).parent / "loyalty"
    found = str(beside) if beside.exists() else shutil.which("loyalty")
    if found is None:
        raise SystemExit("The `loyalty` command is not installed (pip install -e .).")
    return found


def tail(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


class Server:
    """``loyalty serve`` in a subprocess, its output in a log file; stop() always terminates it."""

    def __init__(self, database_url: str, log_path: Path, workers: int = 1) -> None:
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.log_path = log_path
        env = {**os.environ, "LOYALTY_DATABASE_URL": database_url, "LOYALTY_LOG_FORMAT": "text"}
        command = [
            *(loyalty_command(), "serve", "--host", "127.0.0.1", "--port", str(self.port)),
            *("--workers", str(workers)),
        ]
        with log_path.open("wb") as log:
            self.process = subprocess.Popen(
                command, cwd=PROJECT_ROOT, env=env, stdout=log, stderr=subprocess.STDOUT
            )

    def wait_ready(self, timeout: float = READY_TIMEOUT_SECONDS) -> float:
        """Seconds until GET /readyz answers 200; raises on timeout or when the server dies."""
        started = time.monotonic()
        last = "no answer"
        while time.monotonic() - started < timeout:
            if self.process.poll() is not None:
                raise RuntimeError(
                    f"the server exited with status {self.process.returncode}:\n"
                    f"{tail(self.log_path)}"
                )
            try:
                response = httpx.get(f"{self.base_url}/readyz", timeout=2.0)
                if response.status_code == 200:
                    return time.monotonic() - started
                last = f"HTTP {response.status_code}: {response.text[:200]}"
            except httpx.HTTPError as error:
                last = f"{type(error).__name__}"
            time.sleep(0.1)
        raise RuntimeError(
            f"/readyz not 200 after {timeout:.0f} s ({last}):\n{tail(self.log_path)}"
        )

    def stop(self) -> None:
        if self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=STOP_TIMEOUT_SECONDS)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=STOP_TIMEOUT_SECONDS)


async def http_phase(
    url: URL,
    base_url: str,
    fixture: Fixture,
    warmup: Sequence[PurchaseSpec],
    measured: Sequence[PurchaseSpec],
    concurrency: int,
    server_pid: int,
    name: str = "HTTP",
) -> PhaseResult:
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(
        base_url=base_url,
        headers={"Authorization": f"Bearer {fixture.pos_secret}"},
        limits=limits,
        timeout=REQUEST_TIMEOUT_SECONDS,
    ) as client:

        async def record(spec: PurchaseSpec) -> str | None:
            variables = {
                "input": {
                    "idempotencyKey": spec.idempotency_key,
                    "orderId": spec.order_id,
                    "memberId": encode_id("Member", spec.member_id),
                    "channel": "IN_STORE",
                    "storeId": STORE_ID,
                    "total": {"amount": str(spec.total), "currency": "USD"},
                    "lines": [
                        {
                            "sku": line.sku,
                            "category": line.category,
                            "quantity": line.quantity,
                            "unitPrice": {"amount": str(line.unit_price), "currency": "USD"},
                        }
                        for line in spec.lines
                    ],
                }
            }
            response = await client.post(
                "/graphql", json={"query": MUTATION, "variables": variables}
            )
            payload = graphql_payload(response, "recordPurchase")
            if isinstance(payload, str):
                return payload
            if payload["errors"]:
                return f"errors: {payload['errors']}"
            if payload["pointsAwarded"] != spec.points:
                return f"pointsAwarded {payload['pointsAwarded']}, expected {spec.points}"
            return None

        return await run_phase(name, record, warmup, measured, concurrency, url, server_pid)


async def create_rules(base_url: str, fixture: Fixture, count: int, seed: int) -> dict[str, int]:
    """``count`` earning rules through the admin API: the first MATCHING_RULES of
    matching_rules(), then rules no basket meets, created in a shuffled order.

    Returns how many rules have each status (ACTIVE, SCHEDULED).
    """
    if fixture.unheld_tier_id is None:
        raise RuntimeError("the fixture has no unheld tier for the tier-condition rules")
    now = datetime.now(UTC)
    matching = [rule.input for rule in matching_rules()[: min(count, MATCHING_RULES)]]
    unheld = encode_id("Tier", fixture.unheld_tier_id)
    inputs = matching + [other_rule(i, unheld, now) for i in range(count - len(matching))]
    random.Random(seed).shuffle(inputs)
    statuses: dict[str, int] = {}
    async with httpx.AsyncClient(
        base_url=base_url,
        headers={"Authorization": f"Bearer {fixture.admin_secret}"},
        timeout=REQUEST_TIMEOUT_SECONDS,
    ) as client:
        for rule in inputs:
            response = await client.post(
                "/graphql", json={"query": CREATE_RULE, "variables": {"input": rule}}
            )
            body = response.json() if response.status_code == 200 else {}
            payload = (body.get("data") or {}).get("createEarningRule") or {}
            if response.status_code != 200 or body.get("errors") or payload.get("errors"):
                raise RuntimeError(
                    f"createEarningRule {rule['name']!r}: HTTP {response.status_code}: "
                    f"{response.text[:500]}"
                )
            status = payload["earningRule"]["status"]
            statuses[status] = statuses.get(status, 0) + 1
    return statuses


# --------------------------------------------------------------------------------------------
# Phase 2: the same statements over raw asyncpg
# --------------------------------------------------------------------------------------------


class BenchFailure(Exception):
    """A purchase the raw loop could not record; raised so that its transaction rolls back."""


async def _no_reset(connection: asyncpg.Connection) -> None:
    """No reset query on release (SQLAlchemy's pool sends none); only end a dangling transaction."""
    if connection.is_in_transaction():
        await connection.execute("ROLLBACK")


async def raw_pool(url: URL, concurrency: int) -> asyncpg.Pool:
    """One connection per client, never reset between transactions (as the server's pool)."""
    return await asyncpg.create_pool(
        asyncpg_dsn(url),
        min_size=concurrency,
        max_size=concurrency,
        max_queries=10_000_000,
        reset=_no_reset,
        command_timeout=REQUEST_TIMEOUT_SECONDS,
    )


async def raw_phase(
    url: URL,
    fixture: Fixture,
    warmup: Sequence[PurchaseSpec],
    measured: Sequence[PurchaseSpec],
    concurrency: int,
) -> PhaseResult:
    scope = f"key:{fixture.pos_key_id}"
    pool = await raw_pool(url, concurrency)
    try:

        async def record(spec: PurchaseSpec) -> str | None:
            request = {
                "order_id": spec.order_id,
                "channel": "IN_STORE",
                "total": {"amount": str(spec.total), "currency": "USD"},
                "member_id": spec.member_id,
                "member_external_id": None,
                "store_id": STORE_ID,
                "lines": [
                    {
                        "sku": line.sku,
                        "category": line.category,
                        "quantity": line.quantity,
                        "unit_price": {"amount": str(line.unit_price), "currency": "USD"},
                    }
                    for line in spec.lines
                ],
                "occurred_at": None,
            }
            stored_lines = json.dumps(
                [
                    {
                        "sku": line.sku,
                        "category": line.category,
                        "quantity": line.quantity,
                        "unit_price": str(line.unit_price),
                    }
                    for line in spec.lines
                ]
            )
            async with pool.acquire(timeout=REQUEST_TIMEOUT_SECONDS) as conn:
                # The server authenticates with one SELECT in autocommit.
                digest = hashlib.sha256(fixture.pos_secret.encode()).hexdigest()
                api_key = await conn.fetchrow(SQL_API_KEY, digest)
                if api_key is None:
                    raise BenchFailure("API key not found")

                async with conn.transaction():
                    now = datetime.now(UTC)
                    key_id = await conn.fetchval(
                        SQL_CLAIM,
                        scope,
                        spec.idempotency_key,
                        "recordPurchase",
                        request_hash("recordPurchase", request),
                        now,
                    )
                    if key_id is None:
                        raise BenchFailure("idempotency key already claimed")
                    member = await conn.fetchrow(SQL_LOCK_MEMBER, -1, 1, spec.member_id)
                    # members.id and program.id are both "id" in this row: use spec.member_id
                    if member is None or member["status"] != "ACTIVE":
                        raise BenchFailure("member missing or inactive")
                    if member["anon_1"] is not None:
                        raise BenchFailure("would evaluate a tier upgrade: not mirrored here")
                    multiplier = member["multiplier"] or Decimal(1)
                    points = points_for(spec.total, member["points_per_unit"], multiplier)
                    purchase = await conn.fetchrow(
                        SQL_INSERT_PURCHASE,
                        spec.order_id,
                        spec.member_id,
                        "IN_STORE",
                        STORE_ID,
                        spec.total,
                        member["currency"],
                        stored_lines,
                        now,
                        now,
                        points,
                        *(0, 0, Decimal(0), "COMPLETED"),
                        json.dumps([{"rule_id": None, "points": points}]),
                    )
                    if purchase is None:
                        raise BenchFailure("orderId already recorded")
                    if points:
                        # occurredAt is now, as in the service when the request gives none
                        releases_at = now + timedelta(days=member["pending_days"])
                        pending = releases_at > now
                        available, held = (0, points) if pending else (points, 0)
                        updated = await conn.fetchrow(
                            SQL_UPDATE_BALANCES,
                            *(available, held, points, 0, 0, spec.member_id, 0, 0),
                            "ledger_transactions_id_seq",
                            1,
                        )
                        head = updated["chain_head"]
                        created_at = datetime.now(UTC)
                        transaction_id = updated["id0"]
                        account, balance = (
                            ("MEMBER_PENDING", updated["points_pending"])
                            if pending
                            else ("MEMBER_AVAILABLE", updated["points_available"])
                        )
                        values = (
                            *(transaction_id, "EARN", spec.member_id, now, created_at, None),
                            *(purchase["id"], None, points, now),
                        )
                        digest = transaction_hash(
                            {
                                **dict(zip(FIELDS, values, strict=False)),
                                "postings": [(account, points), ("PROGRAM_ISSUANCE", -points)],
                                "prev_hash": head,
                            }
                        )
                        await conn.fetch(
                            SQL_LEDGER_ROWS,
                            *(*values, head, digest),
                            *(spec.member_id, transaction_id, purchase["id"], points, points),
                            *("PENDING" if pending else "AVAILABLE", now),
                            *(releases_at if pending else None, None),
                            *(transaction_id, account, spec.member_id, points, balance),
                            *(transaction_id, "PROGRAM_ISSUANCE", None, -points, None),
                        )
                    result = {
                        "purchase_id": purchase["id"],
                        "member_id": spec.member_id,
                        "points_awarded": points,
                    }
                    event = {"purchase": {"id": purchase["id"], "lines": stored_lines}}
                    await conn.execute(
                        SQL_AT_COMMIT,
                        *(event_id(now), "purchase.recorded", now, spec.member_id),
                        json.dumps(event),
                        *(event_id(now), "points.earned", json.dumps({"points": points})),
                        *(json.dumps(result), key_id),
                        *("API_KEY", "pos", fixture.pos_key_id, "bench pos", "recordPurchase"),
                        *(json.dumps([]), json.dumps({}), None),
                    )
            if points != spec.base_points:
                return f"points {points}, expected {spec.base_points}"
            return None

        return await run_phase("raw asyncpg", record, warmup, measured, concurrency, url)
    finally:
        await pool.close()


async def raw_minimal_phase(
    url: URL,
    fixture: Fixture,
    warmup: Sequence[PurchaseSpec],
    measured: Sequence[PurchaseSpec],
    concurrency: int,
) -> PhaseResult:
    """The floor of any ledger: claim the key, insert the purchase, update the balance
    (returning it), post both sides; five statements in one transaction."""
    setup = await connect(url)
    try:
        await setup.execute(SQL_MINIMAL_TABLES)
    finally:
        await setup.close()
    pool = await raw_pool(url, concurrency)
    try:

        async def record(spec: PurchaseSpec) -> str | None:
            points = spec.base_points
            async with pool.acquire(timeout=REQUEST_TIMEOUT_SECONDS) as conn, conn.transaction():
                if await conn.fetchval(SQL_MIN_CLAIM, "bench", spec.idempotency_key) is None:
                    raise BenchFailure("idempotency key already claimed")
                purchase_id = await conn.fetchval(
                    SQL_MIN_PURCHASE, spec.order_id, spec.member_id, spec.total
                )
                balance = await conn.fetchval(SQL_MIN_BALANCE, points, spec.member_id)
                await conn.execute(
                    SQL_MIN_POSTING, purchase_id, "MEMBER", spec.member_id, points, balance
                )
                await conn.execute(SQL_MIN_POSTING, purchase_id, "ISSUANCE", None, -points, None)
            return None

        return await run_phase("raw minimal", record, warmup, measured, concurrency, url)
    finally:
        await pool.close()


async def row_counts(url: URL) -> dict[str, int]:
    conn = await connect(url)
    try:
        return {
            table: int(await conn.fetchval(f"SELECT count(*) FROM {table}"))
            for table in (
                "purchases",
                "ledger_transactions",
                "ledger_entries",
                "idempotency_keys",
                "rule_awards",
            )
        }
    finally:
        await conn.close()


async def server_version(url: URL) -> str:
    conn = await connect(url)
    try:
        return str(await conn.fetchval("SHOW server_version"))
    finally:
        await conn.close()


# --------------------------------------------------------------------------------------------
# Reporting and the command line
# --------------------------------------------------------------------------------------------


def run_async(coroutine: Coroutine[Any, Any, T]) -> T:
    """asyncio.run on uvloop when it is installed: a cheaper client leaves more CPU to the rest."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run(coroutine)
    return uvloop.run(coroutine)


def say(message: str) -> None:
    print(message, flush=True)


def _ms(seconds: float | None, count: int) -> str:
    return "    n/a" if seconds is None or count == 0 else f"{seconds / count * 1000:7.2f}"


def report_table(results: Sequence[PhaseResult]) -> None:
    width = max(24, *(len(result.name) + 2 for result in results))
    say("")
    say(f"{'path':<{width}}{'purchases/s':>12}{'p50 ms':>9}{'p99 ms':>9}{'max ms':>9}{'failed':>8}")
    for result in results:
        say(
            f"{result.name:<{width}}{result.throughput:>12.1f}{result.percentile_ms(0.5):>9.2f}"
            f"{result.percentile_ms(0.99):>9.2f}{result.percentile_ms(1.0):>9.2f}"
            f"{result.failure_count:>8}"
        )


def report_cpu(results: Sequence[PhaseResult]) -> None:
    width = max(20, *(len(result.name) for result in results))
    say("")
    say(f"{'CPU ms per purchase':<{width + 3}} client  server  PostgreSQL   other*  machine")
    for result in results:
        cpu, n = result.cpu, result.count
        say(
            f"  {result.name:<{width}}{_ms(cpu.client, n)} {_ms(cpu.server, n)}    "
            f"{_ms(cpu.postgres, n)}  {_ms(cpu.other, n)}  {_ms(cpu.machine, n)}"
        )
    say(
        "  * other = machine busy time minus the three: kernel (loopback networking, "
        "scheduling) and any other process running meanwhile"
    )
    say(
        "  PostgreSQL counts the backends alive at the end; connections opened during the "
        "phase: " + ", ".join(f"{r.name} {r.cpu.connections}" for r in results)
    )


def report_failures(results: Sequence[PhaseResult]) -> None:
    for result in results:
        if result.failures:
            say(f"\n{result.name}: {result.failure_count} failed; the first ones:")
            for failure in result.failures[:FAILURE_SAMPLES]:
                say(f"  - {failure[:500]}")


def report(https: list[PhaseResult], raw: PhaseResult, minimal: PhaseResult | None) -> None:
    results = [*https, raw, *([minimal] if minimal else [])]
    report_table(results)
    say("")
    for http in https:
        say(
            f"ratio {http.name} / raw (same statements): throughput "
            f"{http.throughput / raw.throughput:.2f}x, "
            f"p50 latency {http.percentile_ms(0.5) / raw.percentile_ms(0.5):.1f}x, "
            f"p99 latency {http.percentile_ms(0.99) / raw.percentile_ms(0.99):.1f}x"
            + (
                f"; / raw minimal (five statements): {http.throughput / minimal.throughput:.2f}x"
                if minimal
                else ""
            )
        )
    if minimal:
        say(
            f"ratio raw (same statements) / raw minimal: {raw.throughput / minimal.throughput:.2f}x"
        )
    report_cpu(results)
    report_failures(results)


def _own_cpu_ms(result: PhaseResult) -> float | None:
    """Client + server + PostgreSQL CPU ms per purchase: what the load itself costs."""
    cpu = result.cpu
    if cpu.server is None or cpu.postgres is None or not result.count:
        return None
    return (cpu.client + cpu.server + cpu.postgres) / result.count * 1000


def report_rules_comparison(pairs: Sequence[tuple[PhaseResult, PhaseResult]], rules: int) -> None:
    """Each round's phases, each round's ratio, and over several rounds their median."""
    report_table([result for pair in pairs for result in pair])
    say("")
    ratios = []
    for round_number, (without, with_rules) in enumerate(pairs, 1):
        ratio = with_rules.throughput / without.throughput if without.throughput else math.nan
        ratios.append(ratio)
        cpu_without, cpu_with = _own_cpu_ms(without), _own_cpu_ms(with_rules)
        cpu = (
            f"; client + server + PostgreSQL CPU per purchase {cpu_without:.2f} -> "
            f"{cpu_with:.2f} ms ({cpu_without / cpu_with:.2f}x)"
            if cpu_without and cpu_with
            else ""
        )
        say(
            f"{'round ' + str(round_number) + ': ' if len(pairs) > 1 else ''}"
            f"ratio with {rules} rules / without: throughput {ratio:.2f}x, "
            f"p50 latency {with_rules.percentile_ms(0.5) / without.percentile_ms(0.5):.2f}x, "
            f"p99 latency {with_rules.percentile_ms(0.99) / without.percentile_ms(0.99):.2f}x"
            f"{cpu}"
        )
    ratio = statistics.median(ratios)
    verdict = "met" if ratio >= RULES_TARGET_RATIO else "NOT met"
    median = f" (median of {len(ratios)} rounds)" if len(ratios) > 1 else ""
    say(f"throughput ratio{median}: {ratio:.2f}x, target >= {RULES_TARGET_RATIO:.2f}: {verdict}")
    say(
        "  the CPU ratio is what the throughput ratio would be were the box CPU-bound by this "
        "load alone; on a shared box (see other*) it is the steadier of the two"
    )
    report_cpu([result for pair in pairs for result in pair])
    report_failures([result for pair in pairs for result in pair])


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Benchmark recordPurchase over HTTP against the same SQL on raw asyncpg."
    )
    parser.add_argument("--members", type=int, default=1000, help="members to enroll (1000)")
    parser.add_argument("--purchases", type=int, default=5000, help="measured per path (5000)")
    parser.add_argument("--concurrency", type=int, default=16, help="concurrent clients (16)")
    parser.add_argument("--warmup", type=int, default=200, help="uncounted first requests (200)")
    parser.add_argument("--database-url", default=DEFAULT_URL, help=f"default {DEFAULT_URL}")
    parser.add_argument("--seed", type=int, default=1, help="random seed (1)")
    parser.add_argument(
        "--tier",
        action="store_true",
        help=f"enroll members at a base tier (multiplier {TIER_MULTIPLIER}): one more SELECT",
    )
    parser.add_argument(
        "--rules",
        type=int,
        default=0,
        metavar="N",
        help=f"create N earning rules through the admin API before the HTTP phase, "
        f"{MATCHING_RULES} of them matching every basket (0)",
    )
    parser.add_argument(
        "--compare-rules",
        type=int,
        default=None,
        metavar="N",
        help="run the HTTP phase twice on fresh databases, without rules and with N rules, "
        "and compare their throughput (no raw asyncpg phase)",
    )
    parser.add_argument(
        "--rounds",
        type=int,
        default=1,
        help="with --compare-rules: run the pair R times, alternating which goes first, and "
        "report the median ratio (1)",
    )
    parser.add_argument(
        "--workers",
        default="1",
        help="comma-separated worker counts, one HTTP phase each, e.g. 1,2 (1)",
    )
    parser.add_argument(
        "--raw-minimal",
        action="store_true",
        help="also run the five statements any ledger needs (key, purchase, balance, two "
        "postings) on tables of their own: the floor below the same-statements raw loop",
    )
    parser.add_argument("--keep", action="store_true", help="keep the database afterwards")
    args = parser.parse_args(argv)
    try:
        args.workers = [int(part) for part in args.workers.split(",")]
    except ValueError:
        parser.error("--workers takes counts such as 1 or 1,2")
    if any(count < 1 for count in args.workers):
        parser.error("--workers counts must be at least 1")
    for name in ("members", "purchases", "concurrency"):
        if getattr(args, name) < 1:
            parser.error(f"--{name} must be at least 1")
    if args.warmup < 0:
        parser.error("--warmup must not be negative")
    if args.rules < 0:
        parser.error("--rules must not be negative")
    if args.compare_rules is not None:
        if args.compare_rules < 1:
            parser.error("--compare-rules must be at least 1")
        if args.rules:
            parser.error("give --rules or --compare-rules, not both")
    if args.rounds < 1:
        parser.error("--rounds must be at least 1")
    if args.rounds > 1 and args.compare_rules is None:
        parser.error("--rounds goes with --compare-rules")
    check_database_url(parser, args.database_url)
    return args


def drop_unless_kept(url: URL, *, keep: bool) -> None:
    """The end of a run: the database dropped (a failure to drop said, not raised, so that it
    does not hide the run's own outcome), or kept with ``--keep``."""
    if keep:
        say(f"kept database {url.database}")
    else:
        try:
            run_async(drop_database(url))
        except (OSError, asyncpg.PostgresError) as error:
            say(f"could not drop database {url.database}: {error}")


def graphql_payload(response: httpx.Response, field: str) -> dict[str, Any] | str:
    """A mutation's payload, or what failed before it (the HTTP status or GraphQL errors)."""
    if response.status_code != 200:
        return f"HTTP {response.status_code}: {response.text[:300]}"
    body = response.json()
    if body.get("errors"):
        return f"GraphQL errors: {body['errors']}"
    payload: dict[str, Any] = body["data"][field]
    return payload


def verify_ledger(database_url: str) -> int:
    verify = subprocess.run(
        [loyalty_command(), "ledger", "verify"],
        cwd=PROJECT_ROOT,
        env={**os.environ, "LOYALTY_DATABASE_URL": database_url},
        capture_output=True,
        text=True,
        timeout=VERIFY_TIMEOUT_SECONDS,
        check=False,
    )
    output = (verify.stdout + verify.stderr).strip()
    say(f"loyalty ledger verify: exit {verify.returncode}: {output[-2000:]}")
    return verify.returncode


def set_up(url: URL, args: argparse.Namespace, rule_tiers: bool) -> Fixture:
    """A fresh, migrated database with the keys and members."""
    started = time.monotonic()
    run_async(recreate_database(url, settings={}))
    migrate.upgrade(url.render_as_string(hide_password=False))
    fixture = run_async(
        prepare(url.render_as_string(hide_password=False), args.members, args.tier, rule_tiers)
    )
    say(
        f"setup: database {url.database} (PostgreSQL {run_async(server_version(url))}) "
        f"migrated, keys created, {len(fixture.member_ids)} members enrolled"
        f"{', members at the top of a two-tier ladder' if rule_tiers else ''} in "
        f"{time.monotonic() - started:.1f} s"
    )
    return fixture


def run_http(
    url: URL,
    fixture: Fixture,
    args: argparse.Namespace,
    rules: int,
    warmup: Sequence[PurchaseSpec],
    measured: Sequence[PurchaseSpec],
    name: str = "HTTP",
    workers: int = 1,
) -> PhaseResult:
    """Start a server, create the rules through it, then run the HTTP phase."""
    database_url = url.render_as_string(hide_password=False)
    with tempfile.TemporaryDirectory(prefix="loyalty-bench-") as scratch:
        server = Server(database_url, Path(scratch) / "server.log", workers)
        try:
            ready_after = server.wait_ready()
            say(
                f"server: pid {server.process.pid} on {server.base_url}, "
                f"ready in {ready_after:.1f} s"
            )
            if rules:
                started = time.monotonic()
                statuses = run_async(create_rules(server.base_url, fixture, rules, args.seed))
                say(
                    f"rules: {rules} created through createEarningRule in "
                    f"{time.monotonic() - started:.1f} s ("
                    + ", ".join(f"{count} {status}" for status, count in sorted(statuses.items()))
                    + f"), {min(rules, MATCHING_RULES)} matching every basket"
                )
            say(f"{name} phase running...")
            result = run_async(
                http_phase(
                    url,
                    server.base_url,
                    fixture,
                    warmup,
                    measured,
                    args.concurrency,
                    server.process.pid,
                    name,
                )
            )
        finally:
            server.stop()
        if result.failures:
            say(f"server log (last lines):\n{tail(server.log_path)}")
    say(f"{name} phase: {result.seconds:.1f} s")
    return result


def make_all_specs(
    args: argparse.Namespace, fixture: Fixture, rules: int
) -> dict[str, list[PurchaseSpec]]:
    """Warm-up and measured purchases of both paths, the same for the same seed and members."""
    rng = random.Random(args.seed)
    matching = matching_rules()[: min(rules, MATCHING_RULES)]

    def specs(prefix: str, count: int) -> list[PurchaseSpec]:
        return make_specs(
            prefix,
            count,
            fixture.member_ids,
            rng,
            fixture.points_per_unit,
            fixture.multiplier,
            matching,
        )

    phases = {
        "http-warmup": specs("http-warmup", args.warmup),
        "http": specs("http", args.purchases),
        "raw-warmup": specs("raw-warmup", args.warmup),
        "raw": specs("raw", args.purchases),
        "minimal-warmup": specs("minimal-warmup", args.warmup),
        "minimal": specs("minimal", args.purchases),
    }
    for workers in args.workers[1:]:
        phases[f"http-w{workers}-warmup"] = specs(f"http-w{workers}-warmup", args.warmup)
        phases[f"http-w{workers}"] = specs(f"http-w{workers}", args.purchases)
    return phases


def describe_points(specs: Sequence[PurchaseSpec], rules: int) -> str:
    base = sum(spec.base_points for spec in specs) / len(specs)
    total = sum(spec.points for spec in specs) / len(specs)
    lines = sum(len(spec.lines) for spec in specs) / len(specs)
    amount = sum(spec.total for spec in specs) / len(specs)
    with_rules = f", {total:.1f} with the rules" if rules else ""
    return (
        f"baskets: {lines:.1f} lines, {amount:.2f} USD on average; "
        f"{base:.1f} base points{with_rules}"
    )


def compare_rules(args: argparse.Namespace, url: URL) -> int:
    """The HTTP phase without and with --compare-rules N rules, each on a fresh database;
    --rounds R repeats the pair, alternating which one runs first."""
    pairs: list[tuple[PhaseResult, PhaseResult]] = []
    statuses = []
    for round_index in range(args.rounds):
        order = (0, args.compare_rules) if round_index % 2 == 0 else (args.compare_rules, 0)
        by_rules: dict[int, PhaseResult] = {}
        for rules in order:
            name = f"HTTP, {rules} rules"
            if args.rounds > 1:
                name += f" (round {round_index + 1})"
            say(f"\n== {name}")
            fixture = set_up(url, args, rule_tiers=True)
            specs = make_all_specs(args, fixture, rules)
            say(describe_points(specs["http"], rules))
            by_rules[rules] = run_http(
                url, fixture, args, rules, specs["http-warmup"], specs["http"], name
            )
            counts = run_async(row_counts(url))
            expected = args.warmup + args.purchases - by_rules[rules].failure_count
            say(
                f"rows written: {counts['purchases']} purchases (expected {expected}), "
                f"{counts['ledger_transactions']} ledger transactions, "
                f"{counts['ledger_entries']} postings, {counts['rule_awards']} rule awards"
            )
            statuses.append(verify_ledger(url.render_as_string(hide_password=False)))
        pairs.append((by_rules[0], by_rules[args.compare_rules]))
    report_rules_comparison(pairs, args.compare_rules)
    failed = any(result.failures for pair in pairs for result in pair)
    return 0 if all(status == 0 for status in statuses) and not failed else 1


def compare_raw(args: argparse.Namespace, url: URL) -> int:
    """The HTTP phase (with --rules N rules) and the raw asyncpg phase, on one database."""
    fixture = set_up(url, args, rule_tiers=args.rules > 0)
    specs = make_all_specs(args, fixture, args.rules)
    say(describe_points(specs["http"], args.rules))
    https = []
    for index, workers in enumerate(args.workers):
        key = "http" if index == 0 else f"http-w{workers}"
        name = f"HTTP, {workers} worker{'s' if workers > 1 else ''}"
        https.append(
            run_http(
                url, fixture, args, args.rules, specs[f"{key}-warmup"], specs[key], name, workers
            )
        )
    say("raw asyncpg phase running...")
    raw = run_async(raw_phase(url, fixture, specs["raw-warmup"], specs["raw"], args.concurrency))
    say(f"raw asyncpg phase: {raw.seconds:.1f} s")
    results = [*https, raw]
    minimal = None
    if args.raw_minimal:
        minimal = run_async(
            raw_minimal_phase(
                url, fixture, specs["minimal-warmup"], specs["minimal"], args.concurrency
            )
        )
        say(f"raw minimal phase: {minimal.seconds:.1f} s")
    report(https, raw, minimal)

    expected = (len(https) + 1) * (args.warmup + args.purchases) - sum(
        result.failure_count for result in results
    )
    counts = run_async(row_counts(url))
    say(
        f"\nrows written: {counts['purchases']} purchases (expected {expected}), "
        f"{counts['ledger_transactions']} ledger transactions, "
        f"{counts['ledger_entries']} postings, {counts['idempotency_keys']} idempotency keys, "
        f"{counts['rule_awards']} rule awards"
    )
    status = verify_ledger(url.render_as_string(hide_password=False))
    return 0 if status == 0 and all(not result.failures for result in results) else 1


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    url = make_url(args.database_url)
    run_started = time.monotonic()
    if args.compare_rules is not None:
        rules = f"HTTP without and with {args.compare_rules} earning rules, fresh database each"
    else:
        rules = f"HTTP ({args.rules} earning rules) against raw asyncpg"
    say(
        f"recordPurchase benchmark: {rules}; {args.members} members, {args.purchases} purchases "
        f"per path (+{args.warmup} warm-up), concurrency {args.concurrency}, "
        f"{'base tier x' + str(TIER_MULTIPLIER) if args.tier else 'no tier multiplier'}"
    )
    say(
        f"note: {os.cpu_count()} CPU cores shared by this load generator, the uvicorn server "
        "and PostgreSQL; figures are for this box, not a deployment"
    )
    if hasattr(os, "getloadavg"):
        say("load average before the run: " + " ".join(f"{v:.2f}" for v in os.getloadavg()))
    status = 1
    try:
        if args.compare_rules is not None:
            status = compare_rules(args, url)
        else:
            status = compare_raw(args, url)
    finally:
        drop_unless_kept(url, keep=args.keep)
        say(f"total run time {time.monotonic() - run_started:.1f} s")
    return status


if __name__ == "__main__":
    sys.exit(main())
