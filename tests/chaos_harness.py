"""Crash safety under load: a real ``loyalty serve`` is SIGKILLed mid-load and restarted, and
every request that got no answer is retried with the same idempotency key and input.

Shared by ``tests/test_chaos.py`` (short, asserts) and ``bench/chaos.py`` (figures). PostgreSQL
only: a fresh database is created, migrated with ``loyalty db upgrade`` and given keys with
``loyalty apikey create``, as an operator would. Each round sends R recordPurchase and
redeemReward requests from C client tasks over HTTP and kills the server (SIGKILL, no
shutdown) when the round's K-th distinct request is sent, for one or more K drawn from the
middle of the round (counted sends, never sleeps); the server is restarted on the same port
and the clients retry every unanswered request until it is answered.
After each round ``check`` compares the database with the answers: each purchase recorded
once under its orderId, each issued redemption once, the reward's stock never oversold, the
balances what the answers imply, and a second send of every answered request replays it.
"""

from __future__ import annotations

import asyncio
import os
import random
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg
import httpx
from sqlalchemy.engine import URL, make_url

from loyalty.ids import decode_id
from tests.cli import free_port
from tests.helpers import ADJUST, CREATE_REWARD, ENROLL

PROJECT_ROOT = Path(__file__).resolve().parent.parent
OPERATIONS = PROJECT_ROOT / "schema" / "operations" / "pos"
RECORD_PURCHASE = (OPERATIONS / "record_purchase.graphql").read_text()
REDEEM = (OPERATIONS / "redeem_at_till.graphql").read_text()
SECRET_KEY = "chaos-secret-that-signs-member-tokens-0123456789"
GRANT = 1_000_000
REWARD_COST = 100
READY_TIMEOUT = 60.0
REQUEST_TIMEOUT = httpx.Timeout(30.0, connect=2.0)
RETRY_DEADLINE = 120.0
"""Seconds one request may go unanswered (server down, restarting) before the run fails."""
CLI_TIMEOUT = 120.0


class ChaosError(RuntimeError):
    """The run could not go on (server would not start, a request was never answered)."""


# --------------------------------------------------------------------------------------------
# The database, the CLI and the server process
# --------------------------------------------------------------------------------------------


def asyncpg_dsn(url: URL, database: str | None = None) -> str:
    plain = url.set(drivername="postgresql")
    if database is not None:
        plain = plain.set(database=database)
    return plain.render_as_string(hide_password=False)


@asynccontextmanager
async def fresh_database(server_url: str, name: str, keep: bool = False) -> AsyncIterator[str]:
    """A new, empty database NAME on the server of ``server_url``, dropped afterwards unless
    ``keep``."""
    url = make_url(server_url).set(database=name)
    quoted = '"' + name.replace('"', '""') + '"'

    async def execute(sql: str) -> None:
        connection = await asyncpg.connect(asyncpg_dsn(url, "postgres"), timeout=10)
        try:
            await connection.execute(sql)
        finally:
            await connection.close()

    await execute(f"DROP DATABASE IF EXISTS {quoted} WITH (FORCE)")
    await execute(f"CREATE DATABASE {quoted}")
    try:
        yield url.render_as_string(hide_password=False)
    finally:
        if not keep:
            await execute(f"DROP DATABASE IF EXISTS {quoted} WITH (FORCE)")


def _environment(database_url: str) -> dict[str, str]:
    return {
        **os.environ,
        "LOYALTY_DATABASE_URL": database_url,
        "LOYALTY_SECRET_KEY": SECRET_KEY,
    }


async def cli(database_url: str, *args: str) -> subprocess.CompletedProcess[str]:
    """``loyalty ARGS`` in a subprocess, as an operator runs it."""
    return await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "loyalty", *args],
        env=_environment(database_url),
        capture_output=True,
        text=True,
        timeout=CLI_TIMEOUT,
        check=False,
    )


async def cli_ok(database_url: str, *args: str) -> str:
    result = await cli(database_url, *args)
    if result.returncode != 0:
        raise ChaosError(f"loyalty {' '.join(args)} exited {result.returncode}: {result.stderr}")
    return result.stdout


async def create_key(database_url: str, role: str) -> str:
    """The secret ``loyalty apikey create`` prints alone on its last line."""
    output = await cli_ok(
        database_url, "apikey", "create", "--role", role, "--name", f"chaos {role}"
    )
    return output.strip().splitlines()[-1]


class Server:
    """``loyalty serve`` on a fixed port; ``crash`` SIGKILLs it, ``start`` brings it back."""

    def __init__(self, database_url: str, log_path: Path) -> None:
        self.database_url = database_url
        self.started_at = datetime.now(UTC)
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.log_path = log_path
        self.process: subprocess.Popen[bytes] | None = None
        self.starts = 0

    def start(self) -> None:
        command = [sys.executable, "-m", "loyalty", "serve", "--host", "127.0.0.1"]
        self.started_at = datetime.now(UTC)
        with self.log_path.open("ab") as log:
            log.write(f"--- start {self.starts + 1} ---\n".encode())
            log.flush()
            self.process = subprocess.Popen(
                [*command, "--port", str(self.port)],
                cwd=PROJECT_ROOT,
                env=_environment(self.database_url),
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        self.starts += 1

    async def wait_ready(self) -> None:
        """Poll GET /healthz until it answers 200; fail if the process dies or time runs out."""
        assert self.process is not None
        deadline = time.monotonic() + READY_TIMEOUT
        async with httpx.AsyncClient(timeout=2.0) as http:
            while time.monotonic() < deadline:
                if self.process.poll() is not None:
                    raise ChaosError(
                        f"the server exited with {self.process.returncode}:\n{self.log_tail()}"
                    )
                try:
                    if (await http.get(f"{self.base_url}/healthz")).status_code == 200:
                        return
                except httpx.TransportError:
                    pass
                await asyncio.sleep(0.05)
        raise ChaosError(f"/healthz not 200 within {READY_TIMEOUT:.0f} s:\n{self.log_tail()}")

    def crash(self) -> None:
        """SIGKILL: no shutdown, no draining, open transactions and responses simply lost."""
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=10)

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=10)

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"


# --------------------------------------------------------------------------------------------
# Requests and their answers
# --------------------------------------------------------------------------------------------


@dataclass
class Call:
    """One client request: its document and input never change across retries."""

    index: int
    field: str
    query: str
    input: dict[str, Any]
    member_id: str
    attempts: int = 0
    answer: dict[str, Any] | None = None
    answered_at: float | None = None
    answer_sent_at: float | None = None
    """When the attempt that got the answer was sent: an answer read just after a kill may have
    been in the socket before it."""

    @property
    def succeeded(self) -> bool:
        return self.answer is not None and self.answer["errors"] == []

    @property
    def error_codes(self) -> list[str]:
        return [error["code"] for error in (self.answer or {}).get("errors", [])]


@dataclass
class Kill:
    """One SIGKILL: when, what was unanswered then, and how long the restart took."""

    after_sent: int
    server_started_at: datetime
    in_flight: list[Call] = field(default_factory=list)
    killed_at: datetime | None = None
    killed_at_monotonic: float = 0.0
    restart_seconds: float = 0.0
    first_answer_seconds: float | None = None
    committed_by_killed: int = 0
    """Retried, yet committed by the killed server: its answer was lost, the retry replayed."""

    @property
    def retried(self) -> list[Call]:
        """The unanswered calls whose answer came from a retry (the others' answers were already
        in the client's socket when the server died)."""
        return [
            call
            for call in self.in_flight
            if call.answer_sent_at is not None and call.answer_sent_at > self.killed_at_monotonic
        ]


@dataclass
class Round:
    number: int
    requests: int
    kills: list[Kill] = field(default_factory=list)
    calls: list[Call] = field(default_factory=list)
    reward_id: str = ""
    stock: int = 0
    sent: int = 0
    connection_errors: int = 0
    http_errors: int = 0
    timeouts: int = 0
    load_seconds: float = 0.0

    @property
    def retries(self) -> int:
        return sum(call.attempts - 1 for call in self.calls)

    @property
    def retried_requests(self) -> int:
        return sum(1 for call in self.calls if call.attempts > 1)


@dataclass
class Chaos:
    """A migrated database with keys, members and a server; rounds of load with their kills."""

    database_url: str
    server: Server
    admin_key: str
    pos_key: str
    seed: int
    members: list[str] = field(default_factory=list)
    rounds: list[Round] = field(default_factory=list)
    replays: int = 0

    @property
    def calls(self) -> list[Call]:
        return [call for chaos_round in self.rounds for call in chaos_round.calls]


async def graphql(
    http: httpx.AsyncClient, base_url: str, key: str, query: str, variables: dict[str, Any]
) -> httpx.Response:
    return await http.post(
        f"{base_url}/graphql",
        json={"query": query, "variables": variables},
        headers={"Authorization": f"Bearer {key}"},
    )


async def setup_data(
    http: httpx.AsyncClient,
    base_url: str,
    admin_key: str,
    field_: str,
    query: str,
    variables: dict[str, Any],
) -> dict[str, Any]:
    response = await graphql(http, base_url, admin_key, query, variables)
    body = response.json()
    payload = (body.get("data") or {}).get(field_)
    if response.status_code != 200 or payload is None or payload["errors"]:
        raise ChaosError(f"setup {field_} failed: HTTP {response.status_code} {body}")
    return dict(payload)


@asynccontextmanager
async def started(
    database_url: str, log_path: Path, members: int, seed: int
) -> AsyncIterator[Chaos]:
    """Migrate, start the server, create an admin and a pos key with the CLI meanwhile, then
    enroll MEMBERS members with GRANT points each."""
    await cli_ok(database_url, "db", "upgrade")
    server = Server(database_url, log_path)
    server.start()
    try:
        admin_key, pos_key = await asyncio.gather(
            create_key(database_url, "admin"), create_key(database_url, "pos")
        )
        await server.wait_ready()
        chaos = Chaos(database_url, server, admin_key, pos_key, seed)
        async with httpx.AsyncClient(timeout=REQUEST_TIMEOUT) as http:
            for number in range(members):
                enrolled = await setup_data(
                    http,
                    server.base_url,
                    admin_key,
                    "enrollMember",
                    ENROLL,
                    {"input": {"externalId": f"chaos-{seed}-{number}"}},
                )
                member_id = enrolled["member"]["id"]
                await setup_data(
                    http,
                    server.base_url,
                    admin_key,
                    "adjustPoints",
                    ADJUST,
                    {
                        "input": {
                            "idempotencyKey": uuid.uuid4().hex,
                            "memberId": member_id,
                            "points": GRANT,
                            "reason": "chaos grant",
                        }
                    },
                )
                chaos.members.append(member_id)
        yield chaos
    finally:
        server.stop()


def plan_round(
    chaos: Chaos, number: int, requests: int, rng: random.Random, kills: int = 1
) -> Round:
    """R calls, a third of them redemptions of a reward whose stock is half the redemptions;
    the kills fall when distinct sends in the middle 30-70 % of the round are made."""
    low, high = max(1, requests * 3 // 10), max(1, requests * 7 // 10)
    points = sorted(rng.sample(range(low, high + 1), min(kills, high - low + 1)))
    chaos_round = Round(
        number=number,
        requests=requests,
        kills=[
            Kill(after_sent=point, server_started_at=chaos.server.started_at) for point in points
        ],
    )
    for index in range(requests):
        member_id = rng.choice(chaos.members)
        if index % 3 == 2:
            call = Call(
                index,
                "redeemReward",
                REDEEM,
                {
                    "idempotencyKey": uuid.uuid4().hex,
                    "memberId": member_id,
                    "rewardId": "",
                    "channel": "IN_STORE",
                },
                member_id,
            )
        else:
            cents = rng.randint(100, 9_999)
            call = Call(
                index,
                "recordPurchase",
                RECORD_PURCHASE,
                {
                    "idempotencyKey": uuid.uuid4().hex,
                    "memberId": member_id,
                    "orderId": f"chaos-{chaos.seed}-{number}-{index}",
                    "channel": "IN_STORE",
                    "storeId": "chaos",
                    "total": {"amount": f"{cents / 100:.2f}", "currency": "USD"},
                },
                member_id,
            )
        chaos_round.calls.append(call)
    redemptions = [call for call in chaos_round.calls if call.field == "redeemReward"]
    chaos_round.stock = max(1, len(redemptions) // 2)
    return chaos_round


async def run_round(chaos: Chaos, chaos_round: Round, concurrency: int) -> None:
    """Send every call from C tasks; SIGKILL the server when the K-th is sent; retry until
    each call has an answer."""
    server = chaos.server
    async with httpx.AsyncClient(timeout=REQUEST_TIMEOUT) as http:
        reward = await setup_data(
            http,
            server.base_url,
            chaos.admin_key,
            "createReward",
            CREATE_REWARD,
            {
                "input": {
                    "name": f"chaos round {chaos_round.number}",
                    "costPoints": REWARD_COST,
                    "stock": chaos_round.stock,
                }
            },
        )
    chaos_round.reward_id = reward["reward"]["id"]
    for call in chaos_round.calls:
        if call.field == "redeemReward":
            call.input["rewardId"] = chaos_round.reward_id
    chaos.rounds.append(chaos_round)

    pending = list(reversed(chaos_round.calls))
    in_flight: set[int] = set()
    kills_by_point = {kill.after_sent: kill for kill in chaos_round.kills}
    crashes: list[asyncio.Task[None]] = []
    one_at_a_time = asyncio.Lock()

    async def crash_and_restart(kill: Kill) -> None:
        """A kill point reached while the server restarts kills it as soon as it is back."""
        async with one_at_a_time:
            kill.server_started_at = server.started_at
            kill.in_flight = [chaos_round.calls[index] for index in sorted(in_flight)]
            kill.killed_at = datetime.now(UTC)
            kill.killed_at_monotonic = time.monotonic()
            server.crash()
            server.start()
            await server.wait_ready()
            kill.restart_seconds = time.monotonic() - kill.killed_at_monotonic

    async def deliver(http: httpx.AsyncClient, call: Call) -> None:
        deadline = time.monotonic() + RETRY_DEADLINE
        backoff = 0.02
        while True:
            call.attempts += 1
            sent_at = time.monotonic()
            in_flight.add(call.index)
            if call.attempts == 1:
                chaos_round.sent += 1
                if chaos_round.sent in kills_by_point:
                    kill = kills_by_point[chaos_round.sent]
                    crashes.append(asyncio.create_task(crash_and_restart(kill)))
            try:
                response = await graphql(
                    http, server.base_url, chaos.pos_key, call.query, {"input": call.input}
                )
            except httpx.TimeoutException:
                chaos_round.timeouts += 1
                response = None
            except httpx.TransportError:
                chaos_round.connection_errors += 1
                response = None
            finally:
                in_flight.discard(call.index)
            if response is not None:
                payload = _payload(response, call.field)
                if payload is not None:
                    call.answer = payload
                    call.answered_at = time.monotonic()
                    call.answer_sent_at = sent_at
                    return
                chaos_round.http_errors += 1
            if time.monotonic() > deadline:
                raise ChaosError(f"call {call.index} unanswered for {RETRY_DEADLINE:.0f} s")
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, 0.25)

    async def client() -> None:
        async with httpx.AsyncClient(timeout=REQUEST_TIMEOUT) as http:
            while pending:
                await deliver(http, pending.pop())

    started_at = time.monotonic()
    await asyncio.gather(*(client() for _ in range(concurrency)))
    await asyncio.gather(*crashes)
    if len(crashes) != len(chaos_round.kills):
        raise ChaosError("the round ended before its kill points")
    chaos_round.load_seconds = time.monotonic() - started_at
    for kill in chaos_round.kills:
        after_kill = [
            call.answered_at - kill.killed_at_monotonic
            for call in chaos_round.calls
            if call.answered_at is not None
            and call.answer_sent_at is not None
            and call.answer_sent_at > kill.killed_at_monotonic
        ]
        kill.first_answer_seconds = min(after_kill, default=None)


def _payload(response: httpx.Response, field_: str) -> dict[str, Any] | None:
    """The mutation's payload when the server answered it; None for anything else (retry)."""
    if response.status_code != 200:
        return None
    try:
        body = response.json()
    except ValueError:
        return None
    payload = (body.get("data") or {}).get(field_)
    return dict(payload) if isinstance(payload, dict) else None


# --------------------------------------------------------------------------------------------
# Checks against the database
# --------------------------------------------------------------------------------------------


def _stable(call: Call) -> tuple[Any, ...]:
    """What a replay must repeat exactly (member balances are read fresh, by design)."""
    answer = call.answer or {}
    if call.field == "recordPurchase":
        purchase = answer.get("purchase") or {}
        return (
            purchase.get("id"),
            purchase.get("orderId"),
            answer.get("pointsAwarded"),
            tuple(call.error_codes),
        )
    redemption = answer.get("redemption") or {}
    return (
        redemption.get("id"),
        redemption.get("code"),
        redemption.get("pointsSpent"),
        tuple(call.error_codes),
    )


async def replay_answered(chaos: Chaos, chaos_round: Round, concurrency: int) -> list[str]:
    """Send every successful call of the round again: each must replay its first answer."""
    problems: list[str] = []
    succeeded = [call for call in chaos_round.calls if call.succeeded]
    queue = list(succeeded)

    async def client() -> None:
        async with httpx.AsyncClient(timeout=REQUEST_TIMEOUT) as http:
            while queue:
                call = queue.pop()
                response = await graphql(
                    http, chaos.server.base_url, chaos.pos_key, call.query, {"input": call.input}
                )
                replayed = Call(call.index, call.field, call.query, call.input, call.member_id)
                replayed.answer = _payload(response, call.field)
                if _stable(replayed) != _stable(call):
                    problems.append(
                        f"round {chaos_round.number} call {call.index} ({call.field}): replay "
                        f"answered {_stable(replayed)}, first answer was {_stable(call)}"
                    )

    await asyncio.gather(*(client() for _ in range(concurrency)))
    chaos.replays += len(succeeded)
    return problems


async def check(chaos: Chaos) -> list[str]:
    """Every call took effect exactly once and as answered; stock never oversold."""
    problems: list[str] = []
    calls = chaos.calls
    for call in calls:
        if call.answer is None:
            problems.append(f"call {call.index} ({call.field}) was never answered")
        elif not call.succeeded and call.error_codes != ["OUT_OF_STOCK"]:
            problems.append(f"call {call.index} ({call.field}) answered {call.answer['errors']}")
        elif not call.succeeded and call.field != "redeemReward":
            problems.append(f"purchase {call.index} refused: {call.answer['errors']}")

    connection = await asyncpg.connect(asyncpg_dsn(make_url(chaos.database_url)), timeout=10)
    try:
        purchases = await connection.fetch(
            "SELECT id, order_id, member_id, points_awarded FROM purchases"
        )
        redemptions = await connection.fetch(
            "SELECT id, reward_id, member_id, points_spent, code FROM redemptions"
        )
        stocks = {
            row["id"]: row["stock"]
            for row in await connection.fetch("SELECT id, stock FROM rewards")
        }
        balances = {
            row["id"]: row
            for row in await connection.fetch(
                "SELECT id, points_available, points_pending, points_redeemed FROM members"
            )
        }
        keys = await connection.fetch(
            "SELECT key, created_at FROM idempotency_keys "
            "WHERE operation IN ('recordPurchase', 'redeemReward')"
        )
    finally:
        await connection.close()

    purchases_by_order: dict[str, list[asyncpg.Record]] = {}
    for row in purchases:
        purchases_by_order.setdefault(row["order_id"], []).append(row)
    purchase_calls = [call for call in calls if call.field == "recordPurchase"]
    for call in purchase_calls:
        rows = purchases_by_order.get(call.input["orderId"], [])
        if call.succeeded:
            answer = call.answer or {}
            purchase_id = decode_id("Purchase", answer["purchase"]["id"])
            if [row["id"] for row in rows] != [purchase_id]:
                problems.append(
                    f"orderId {call.input['orderId']}: rows {rows}, answered purchase {purchase_id}"
                )
            elif rows[0]["points_awarded"] != answer["pointsAwarded"]:
                problems.append(
                    f"orderId {call.input['orderId']}: {rows[0]['points_awarded']} "
                    f"points stored, {answer['pointsAwarded']} answered"
                )
        elif rows:
            problems.append(f"orderId {call.input['orderId']} refused yet recorded: {rows}")
    if len(purchases) != sum(call.succeeded for call in purchase_calls):
        problems.append(
            f"{len(purchases)} purchases stored, "
            f"{sum(call.succeeded for call in purchase_calls)} answered"
        )

    redeem_calls = [call for call in calls if call.field == "redeemReward" and call.succeeded]
    answered_ids = sorted(
        decode_id("Redemption", (call.answer or {})["redemption"]["id"]) or 0
        for call in redeem_calls
    )
    stored_ids = sorted(row["id"] for row in redemptions)
    if answered_ids != stored_ids:
        problems.append(f"redemptions stored {stored_ids} != answered {answered_ids}")
    for chaos_round in chaos.rounds:
        reward_id = decode_id("Reward", chaos_round.reward_id)
        issued = sum(1 for row in redemptions if row["reward_id"] == reward_id)
        wanted = sum(1 for call in chaos_round.calls if call.field == "redeemReward")
        remaining = stocks.get(reward_id)
        if issued > chaos_round.stock or remaining is None or remaining < 0:
            problems.append(
                f"round {chaos_round.number}: stock {chaos_round.stock} oversold: "
                f"{issued} issued, {remaining} left"
            )
        elif remaining != chaos_round.stock - issued:
            problems.append(
                f"round {chaos_round.number}: {issued} issued of "
                f"{chaos_round.stock}, but {remaining} left"
            )
        elif issued != min(wanted, chaos_round.stock):
            problems.append(
                f"round {chaos_round.number}: {issued} issued, "
                f"{min(wanted, chaos_round.stock)} expected"
            )

    expected = {member_id: [GRANT, 0] for member_id in chaos.members}
    for call in calls:
        if not call.succeeded:
            continue
        answer = call.answer or {}
        if call.field == "recordPurchase":
            expected[call.member_id][0] += answer["pointsAwarded"]
        else:
            spent = answer["redemption"]["pointsSpent"]
            expected[call.member_id][0] -= spent
            expected[call.member_id][1] += spent
    for member_id, (points, redeemed) in expected.items():
        row = balances[decode_id("Member", member_id)]
        stored = (row["points_available"] + row["points_pending"], row["points_redeemed"])
        if stored != (points, redeemed):
            problems.append(
                f"member {member_id}: (points, redeemed) stored {stored}, "
                f"answers imply {(points, redeemed)}"
            )

    created = {row["key"]: row["created_at"] for row in keys}
    succeeded_keys = {call.input["idempotencyKey"] for call in calls if call.succeeded}
    if set(created) != succeeded_keys:
        problems.append(
            f"idempotency keys stored {len(created)}, successes {len(succeeded_keys)}"
            f", differing {sorted(set(created) ^ succeeded_keys)[:5]}"
        )
    for kill in (kill for chaos_round in chaos.rounds for kill in chaos_round.kills):
        kill.committed_by_killed = sum(
            1
            for call in kill.retried
            if kill.killed_at is not None
            and kill.server_started_at
            <= created.get(call.input["idempotencyKey"], kill.killed_at)
            < kill.killed_at
        )
    return problems


async def verify(database_url: str) -> tuple[int, str]:
    result = await cli(database_url, "ledger", "verify")
    return result.returncode, (result.stdout + result.stderr).strip()
