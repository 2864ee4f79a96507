"""Benchmark of recordPurchase: the full HTTP path against the bare SQL it issues.

What is measured, in one run:

1. **HTTP path.** A real ``loyalty serve`` (uvicorn, no ``--demo``) in a subprocess on a free
   port of 127.0.0.1, driven by C concurrent httpx clients with a ``pos`` API key. Each request
   is one ``recordPurchase`` mutation with its own idempotencyKey and orderId, a random member
   among the N enrolled and a random total between 1.00 and 200.00 USD. Every response is
   checked: HTTP 200, no GraphQL errors, empty ``errors`` and the expected ``pointsAwarded``.
2. **Raw asyncpg.** The same work with no HTTP, GraphQL or ORM: C tasks sharing a pool of C
   asyncpg connections, each transaction issuing the statements one recordPurchase issues, in
   the same order (the API key lookup in its own transaction, as the server does, then select
   program, claim the idempotency key, lock the member, read the tier multiplier when the
   member has a tier, insert the purchase, update the balances, insert the ledger transaction
   and its two postings, list the tiers for the upgrade check, store the idempotency result).
   There is no higher tier to qualify for, so the upgrade itself (a qualifying-points sum and
   a tier change) is in neither path. This is the floor that the database alone imposes on
   this machine; the ratio HTTP / raw shows what the rest of the stack costs.
   The statements are written out below as SQLAlchemy renders them (echo the engine to see
   them): when the services change what a purchase writes, change them here too.

Both phases run W warm-up requests first (not counted), then M measured ones, and report
purchases/s, p50/p99/max latency (client side, per request, from C concurrent clients) and CPU
time per purchase: this client process, the server process, the bench database's PostgreSQL
backends, and the rest of the machine (kernel, and any other process: the machine may be
shared). Finally ``loyalty ledger verify`` checks the ledger both phases wrote.

The database named in --database-url (default ``loyalty_bench``) is dropped and recreated,
migrated, given an admin and a pos key and N members (bulk SQL insert), and dropped at the
end unless --keep. Its name must contain "bench", so that a typo cannot drop a real database.

Run it from the project root with the project's virtualenv::

    python bench/record_purchase.py [--members 1000] [--purchases 5000] [--concurrency 16]
        [--warmup 200] [--tier] [--keep]
        [--database-url postgresql+asyncpg://postgres@127.0.0.1:5432/loyalty_bench]

The load generator, the server and PostgreSQL share the machine's cores, so the figures are
those of one small box under a local load generator, not of a deployment. The exit status is
0 only when every request succeeded and the ledger verifies.
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
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any, TypeVar

import asyncpg
import httpx
from sqlalchemy import text
from sqlalchemy.engine import URL, make_url

from loyalty import migrate
from loyalty.auth.service import create_api_key
from loyalty.db import Base, Database
from loyalty.idempotency.service import request_hash
from loyalty.ids import encode_id
from loyalty.members.models import Member
from loyalty.program.models import Program
from loyalty.purchases.models import Purchase
from loyalty.purchases.service import points_for

PROJECT_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_URL = "postgresql+asyncpg://postgres@127.0.0.1:5432/loyalty_bench"
READY_TIMEOUT_SECONDS = 30.0
REQUEST_TIMEOUT_SECONDS = 30.0
STOP_TIMEOUT_SECONDS = 15.0
VERIFY_TIMEOUT_SECONDS = 300.0
FAILURE_SAMPLES = 5
TIER_MULTIPLIER = Decimal("1.25")
STORE_ID = "store-0042"

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


def _columns(model: type[Base]) -> str:
    """What select(Model) and .returning(Model) list: every mapped column, in table order."""
    table = model.__table__
    return ", ".join(f"{table.name}.{column.name}" for column in table.columns)


MEMBER_COLUMNS = _columns(Member)
PURCHASE_COLUMNS = _columns(Purchase)

# LoyaltyGraphQL._authenticate -> auth.authenticate_api_key, a read in autocommit.
SQL_API_KEY = (
    "SELECT api_keys.id, api_keys.role, api_keys.last_used_at FROM api_keys "
    "WHERE api_keys.secret_hash = $1::VARCHAR AND api_keys.revoked_at IS NULL"
)
# idempotency.service.claim
SQL_CLAIM = (
    "INSERT INTO idempotency_keys (scope, key, operation, request_hash, created_at) "
    "VALUES ($1::VARCHAR, $2::VARCHAR, $3::VARCHAR, $4::VARCHAR, "
    "$5::TIMESTAMP WITH TIME ZONE) ON CONFLICT DO NOTHING RETURNING idempotency_keys.id"
)
# purchases.service._lock_for_purchase: member (locked), program, tier and next threshold
SQL_LOCK_MEMBER = (
    f"SELECT {MEMBER_COLUMNS}, {_columns(Program)}, tiers_1.multiplier, "
    "(SELECT min(tiers_2.threshold) FROM tiers AS tiers_2 "
    "WHERE tiers_2.rank > coalesce(tiers_1.rank, $1::INTEGER)) AS anon_1 "
    "FROM members JOIN program ON program.id = $2::INTEGER "
    "LEFT OUTER JOIN tiers AS tiers_1 ON tiers_1.id = members.tier_id "
    "WHERE members.id = $3::BIGINT FOR UPDATE OF members"
)
# purchases.service.record_purchase
SQL_INSERT_PURCHASE = (
    "INSERT INTO purchases (order_id, member_id, channel, store_id, total_amount, currency, "
    "lines, occurred_at, created_at, points_awarded, points_refunded, status) VALUES "
    "($1::VARCHAR, $2::BIGINT, $3::VARCHAR, $4::VARCHAR, $5::NUMERIC(18, 4), $6::VARCHAR, "
    "$7::JSON, $8::TIMESTAMP WITH TIME ZONE, $9::TIMESTAMP WITH TIME ZONE, $10::BIGINT, "
    f"$11::BIGINT, $12::VARCHAR) ON CONFLICT DO NOTHING RETURNING {PURCHASE_COLUMNS}"
)
# ledger.service.post: the balances, the transaction, its postings, the lot
SQL_UPDATE_BALANCES = (
    "UPDATE members SET points_available=(members.points_available + $1::BIGINT), "
    "points_pending=(members.points_pending + $2::BIGINT), "
    "lifetime_earned=(members.lifetime_earned + $3::BIGINT), "
    "points_redeemed=(members.points_redeemed + $4::BIGINT), "
    "points_expired=(members.points_expired + $5::BIGINT) "
    "WHERE members.id = $6::BIGINT AND members.points_available + $7::BIGINT >= $8::BIGINT "
    f"AND members.points_pending + $9::BIGINT >= $10::BIGINT RETURNING {MEMBER_COLUMNS}"
)
SQL_INSERT_TRANSACTION = (
    "INSERT INTO ledger_transactions (kind, member_id, occurred_at, created_at, reason, "
    "purchase_id, redemption_id, qualifying_points, qualifying_at) VALUES ($1::VARCHAR, "
    "$2::BIGINT, $3::TIMESTAMP WITH TIME ZONE, $4::TIMESTAMP WITH TIME ZONE, $5::VARCHAR, "
    "$6::BIGINT, $7::BIGINT, $8::BIGINT, $9::TIMESTAMP WITH TIME ZONE) "
    "RETURNING ledger_transactions.id"
)
SQL_INSERT_ENTRIES = (
    "INSERT INTO ledger_entries (transaction_id, account, member_id, points, balance_after) "
    "VALUES ($1::BIGINT, $2::VARCHAR, $3::BIGINT, $4::BIGINT, $5::BIGINT), "
    "($6::BIGINT, $7::VARCHAR, $8::BIGINT, $9::BIGINT, $10::BIGINT) "
    "RETURNING ledger_entries.id"
)
SQL_INSERT_LOT = (
    "INSERT INTO point_lots (member_id, transaction_id, purchase_id, amount, remaining, state, "
    "earned_at, releases_at, expires_at) VALUES ($1::BIGINT, $2::BIGINT, $3::BIGINT, "
    "$4::BIGINT, $5::BIGINT, $6::VARCHAR, $7::TIMESTAMP WITH TIME ZONE, "
    "$8::TIMESTAMP WITH TIME ZONE, $9::TIMESTAMP WITH TIME ZONE)"
)
# idempotency.service.complete
SQL_COMPLETE = "UPDATE idempotency_keys SET result=$1::JSON WHERE idempotency_keys.id = $2::BIGINT"

# --------------------------------------------------------------------------------------------
# Measurement
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PurchaseSpec:
    """One purchase to record, and the points it must earn."""

    order_id: str
    idempotency_key: str
    member_id: int
    total: Decimal
    points: int


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


async def postgres_state(url: URL) -> tuple[list[int], int | None]:
    """The pids of the bench database's backends and of PostgreSQL's background processes
    (backends of other databases are left out: other people's tests may share the server),
    and how many connections the bench database has had so far.
    """
    conn = await asyncpg.connect(asyncpg_dsn(url), timeout=10)
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
        server=_process_seconds(server_pid),
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


def make_specs(
    prefix: str,
    count: int,
    member_ids: Sequence[int],
    rng: random.Random,
    points_per_unit: Decimal,
    multiplier: Decimal,
) -> list[PurchaseSpec]:
    specs = []
    for index in range(count):
        total = Decimal(rng.randint(100, 20_000)).scaleb(-2)  # 1.00 .. 200.00
        specs.append(
            PurchaseSpec(
                order_id=f"{prefix}-order-{index:07d}",
                idempotency_key=f"{prefix}-key-{index:07d}",
                member_id=rng.choice(member_ids),
                total=total,
                points=points_for(total, points_per_unit, multiplier),
            )
        )
    return specs


# --------------------------------------------------------------------------------------------
# Setup: database, keys, members
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Fixture:
    pos_secret: str
    pos_key_id: int
    member_ids: list[int]
    points_per_unit: Decimal
    multiplier: Decimal


def asyncpg_dsn(url: URL, database: str | None = None) -> str:
    """The libpq-style DSN asyncpg takes, for ``url`` or another database on its server."""
    plain = url.set(drivername="postgresql")
    if database is not None:
        plain = plain.set(database=database)
    return plain.render_as_string(hide_password=False)


def _identifier(name: str | None) -> str:
    return '"' + (name or "").replace('"', '""') + '"'


async def recreate_database(url: URL) -> None:
    admin = await asyncpg.connect(asyncpg_dsn(url, "postgres"), timeout=10)
    try:
        await admin.execute(f"DROP DATABASE IF EXISTS {_identifier(url.database)} WITH (FORCE)")
        await admin.execute(f"CREATE DATABASE {_identifier(url.database)}")
    finally:
        await admin.close()


async def drop_database(url: URL) -> None:
    admin = await asyncpg.connect(asyncpg_dsn(url, "postgres"), timeout=10)
    try:
        await admin.execute(f"DROP DATABASE IF EXISTS {_identifier(url.database)} WITH (FORCE)")
    finally:
        await admin.close()


async def prepare(url: str, members: int, with_tier: bool) -> Fixture:
    """API keys through the service, then N valid members with one set-based INSERT."""
    db = Database(url)
    try:
        async with db.transaction() as session:
            await create_api_key(session, role="admin", name="bench admin")
            pos = await create_api_key(session, role="pos", name="bench till")
            tier_id = None
            if with_tier:
                tier_id = await session.scalar(
                    text(
                        "INSERT INTO tiers (name, rank, threshold, multiplier, benefits, "
                        "created_at) VALUES ('Base', 0, 0, :multiplier, '[]', now()) "
                        "RETURNING id"
                    ),
                    {"multiplier": TIER_MULTIPLIER},
                )
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
        pos_secret=pos.secret,
        pos_key_id=pos.key.id,
        member_ids=list(member_ids),
        points_per_unit=program.points_per_unit,
        multiplier=TIER_MULTIPLIER if with_tier else Decimal(1),
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


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def tail(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


class Server:
    """``loyalty serve`` in a subprocess, its output in a log file; stop() always terminates it."""

    def __init__(self, database_url: str, log_path: Path) -> None:
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.log_path = log_path
        env = {**os.environ, "LOYALTY_DATABASE_URL": database_url}
        command = [loyalty_command(), "serve", "--host", "127.0.0.1", "--port", str(self.port)]
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
                }
            }
            response = await client.post(
                "/graphql", json={"query": MUTATION, "variables": variables}
            )
            if response.status_code != 200:
                return f"HTTP {response.status_code}: {response.text[:300]}"
            body = response.json()
            if body.get("errors"):
                return f"GraphQL errors: {body['errors']}"
            payload = body["data"]["recordPurchase"]
            if payload["errors"]:
                return f"errors: {payload['errors']}"
            if payload["pointsAwarded"] != spec.points:
                return f"pointsAwarded {payload['pointsAwarded']}, expected {spec.points}"
            return None

        return await run_phase("HTTP", record, warmup, measured, concurrency, url, server_pid)


# --------------------------------------------------------------------------------------------
# Phase 2: the same statements over raw asyncpg
# --------------------------------------------------------------------------------------------


class BenchFailure(Exception):
    """A purchase the raw loop could not record; raised so that its transaction rolls back."""


async def _no_reset(connection: asyncpg.Connection) -> None:
    """No reset query on release (SQLAlchemy's pool sends none); only end a dangling transaction."""
    if connection.is_in_transaction():
        await connection.execute("ROLLBACK")


async def raw_phase(
    url: URL,
    fixture: Fixture,
    warmup: Sequence[PurchaseSpec],
    measured: Sequence[PurchaseSpec],
    concurrency: int,
) -> PhaseResult:
    scope = f"key:{fixture.pos_key_id}"
    pool = await asyncpg.create_pool(
        asyncpg_dsn(url),
        min_size=concurrency,
        max_size=concurrency,
        max_queries=10_000_000,
        reset=_no_reset,
        command_timeout=REQUEST_TIMEOUT_SECONDS,
    )
    try:

        async def record(spec: PurchaseSpec) -> str | None:
            request = {
                "order_id": spec.order_id,
                "channel": "IN_STORE",
                "total": {"amount": str(spec.total), "currency": "USD"},
                "member_id": spec.member_id,
                "member_external_id": None,
                "store_id": STORE_ID,
                "lines": [],
                "occurred_at": None,
            }
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
                        "[]",
                        now,
                        now,
                        points,
                        0,
                        "COMPLETED",
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
                            *(available, held, points, 0, 0, spec.member_id, available, 0, held, 0),
                        )
                        created_at = datetime.now(UTC)
                        transaction_id = await conn.fetchval(
                            SQL_INSERT_TRANSACTION,
                            *("EARN", spec.member_id, now, created_at, None, purchase["id"], None),
                            *(points, now),
                        )
                        account, balance = (
                            ("MEMBER_PENDING", updated["points_pending"])
                            if pending
                            else ("MEMBER_AVAILABLE", updated["points_available"])
                        )
                        await conn.fetch(
                            SQL_INSERT_ENTRIES,
                            *(transaction_id, account, spec.member_id, points, balance),
                            *(transaction_id, "PROGRAM_ISSUANCE", None, -points, None),
                        )
                        await conn.execute(
                            SQL_INSERT_LOT,
                            *(spec.member_id, transaction_id, purchase["id"], points, points),
                            *("PENDING" if pending else "AVAILABLE", now),
                            *(releases_at if pending else None, None),
                        )
                    result = {
                        "purchase_id": purchase["id"],
                        "member_id": spec.member_id,
                        "points_awarded": points,
                    }
                    await conn.execute(SQL_COMPLETE, json.dumps(result), key_id)
            if points != spec.points:
                return f"points {points}, expected {spec.points}"
            return None

        return await run_phase("raw asyncpg", record, warmup, measured, concurrency, url)
    finally:
        await pool.close()


async def row_counts(url: URL) -> dict[str, int]:
    conn = await asyncpg.connect(asyncpg_dsn(url), timeout=10)
    try:
        return {
            table: int(await conn.fetchval(f"SELECT count(*) FROM {table}"))
            for table in ("purchases", "ledger_transactions", "ledger_entries", "idempotency_keys")
        }
    finally:
        await conn.close()


async def server_version(url: URL) -> str:
    conn = await asyncpg.connect(asyncpg_dsn(url), timeout=10)
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


def report(results: list[PhaseResult]) -> None:
    say("")
    say(f"{'path':<24}{'purchases/s':>12}{'p50 ms':>9}{'p99 ms':>9}{'max ms':>9}{'failed':>8}")
    for result in results:
        say(
            f"{result.name:<24}{result.throughput:>12.1f}{result.percentile_ms(0.5):>9.2f}"
            f"{result.percentile_ms(0.99):>9.2f}{result.percentile_ms(1.0):>9.2f}"
            f"{result.failure_count:>8}"
        )
    http, raw = results
    say("")
    say(
        f"ratio HTTP / raw: throughput {http.throughput / raw.throughput:.2f}x, "
        f"p50 latency {http.percentile_ms(0.5) / raw.percentile_ms(0.5):.1f}x, "
        f"p99 latency {http.percentile_ms(0.99) / raw.percentile_ms(0.99):.1f}x"
    )
    say("")
    say("CPU ms per purchase     client  server  PostgreSQL   other*  machine")
    for result in results:
        cpu, n = result.cpu, result.count
        say(
            f"  {result.name:<20}{_ms(cpu.client, n)} {_ms(cpu.server, n)}    "
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
    for result in results:
        if result.failures:
            say(f"\n{result.name}: {result.failure_count} failed; the first ones:")
            for failure in result.failures[:FAILURE_SAMPLES]:
                say(f"  - {failure[:500]}")


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
    parser.add_argument("--keep", action="store_true", help="keep the database afterwards")
    args = parser.parse_args(argv)
    for name in ("members", "purchases", "concurrency"):
        if getattr(args, name) < 1:
            parser.error(f"--{name} must be at least 1")
    if args.warmup < 0:
        parser.error("--warmup must not be negative")
    url = make_url(args.database_url)
    if url.get_backend_name() != "postgresql" or url.get_driver_name() != "asyncpg":
        parser.error("--database-url must be a postgresql+asyncpg:// URL")
    if not url.database or "bench" not in url.database:
        parser.error("the database is dropped and recreated: its name must contain 'bench'")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    url = make_url(args.database_url)
    database_url = url.render_as_string(hide_password=False)
    run_started = time.monotonic()
    say(
        f"recordPurchase benchmark: {args.members} members, {args.purchases} purchases per path "
        f"(+{args.warmup} warm-up), concurrency {args.concurrency}, "
        f"{'base tier x' + str(TIER_MULTIPLIER) if args.tier else 'no tier'}"
    )
    say(
        f"note: {os.cpu_count()} CPU cores shared by this load generator, the uvicorn server "
        "and PostgreSQL; figures are for this box, not a deployment"
    )
    if hasattr(os, "getloadavg"):
        say("load average before the run: " + " ".join(f"{v:.2f}" for v in os.getloadavg()))
    results: list[PhaseResult] = []
    verify_status = 1
    try:
        started = time.monotonic()
        run_async(recreate_database(url))
        migrate.upgrade(database_url)
        fixture = run_async(prepare(database_url, args.members, args.tier))
        say(
            f"setup: database {url.database} (PostgreSQL {run_async(server_version(url))}) "
            f"migrated, keys created, {len(fixture.member_ids)} members enrolled in "
            f"{time.monotonic() - started:.1f} s"
        )
        rng = random.Random(args.seed)

        def specs(prefix: str, count: int) -> list[PurchaseSpec]:
            return make_specs(
                prefix, count, fixture.member_ids, rng, fixture.points_per_unit, fixture.multiplier
            )

        with tempfile.TemporaryDirectory(prefix="loyalty-bench-") as scratch:
            server = Server(database_url, Path(scratch) / "server.log")
            try:
                ready_after = server.wait_ready()
                say(
                    f"server: pid {server.process.pid} on {server.base_url}, ready in "
                    f"{ready_after:.1f} s; HTTP phase running..."
                )
                http = run_async(
                    http_phase(
                        url,
                        server.base_url,
                        fixture,
                        specs("http-warmup", args.warmup),
                        specs("http", args.purchases),
                        args.concurrency,
                        server.process.pid,
                    )
                )
            finally:
                server.stop()
            if http.failures:
                say(f"server log (last lines):\n{tail(server.log_path)}")
        results.append(http)
        say(f"HTTP phase: {http.seconds:.1f} s; raw asyncpg phase running...")
        raw = run_async(
            raw_phase(
                url,
                fixture,
                specs("raw-warmup", args.warmup),
                specs("raw", args.purchases),
                args.concurrency,
            )
        )
        results.append(raw)
        say(f"raw asyncpg phase: {raw.seconds:.1f} s")
        report(results)

        expected = 2 * (args.warmup + args.purchases) - http.failure_count - raw.failure_count
        counts = run_async(row_counts(url))
        say(
            f"\nrows written: {counts['purchases']} purchases (expected {expected}), "
            f"{counts['ledger_transactions']} ledger transactions, "
            f"{counts['ledger_entries']} postings, {counts['idempotency_keys']} idempotency keys"
        )
        verify = subprocess.run(
            [loyalty_command(), "ledger", "verify"],
            cwd=PROJECT_ROOT,
            env={**os.environ, "LOYALTY_DATABASE_URL": database_url},
            capture_output=True,
            text=True,
            timeout=VERIFY_TIMEOUT_SECONDS,
            check=False,
        )
        verify_status = verify.returncode
        output = (verify.stdout + verify.stderr).strip()
        say(f"loyalty ledger verify: exit {verify.returncode}: {output[-2000:]}")
    finally:
        if args.keep:
            say(f"kept database {url.database}")
        else:
            try:
                run_async(drop_database(url))
            except (OSError, asyncpg.PostgresError) as error:
                say(f"could not drop database {url.database}: {error}")
        say(f"total run time {time.monotonic() - run_started:.1f} s")
    ok = verify_status == 0 and all(not result.failures for result in results)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
