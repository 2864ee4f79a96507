"""Benchmark of live updates: how fast a purchase reaches a phone connected to another server.

The database named in --database-url (default ``loyalty_bench_live``; the name must contain
"bench") is dropped, recreated, migrated and initialised (USD, 1 point per 1.00). Two
``loyalty serve`` processes (one uvicorn worker each) run on free ports of 127.0.0.1: S members
subscribe to ``memberUpdated`` on server A (one WebSocket each, with their member token), an
admin subscribes to ``events(types: ["purchase.recorded"])`` on A too, and P purchases, each
for one of the S members, are recorded through server B by C concurrent pos clients. Each
push therefore travels PostgreSQL NOTIFY -> A's LISTEN connection -> the subscription.

Reported: purchases/s through B, and per purchase the latency (from sending recordPurchase to
B) of B's answer, of the member's push from A and of the admin's event from A (p50, p99, max);
every purchase must produce exactly one push of the right balance and one event.

Run it from the project root with the project's virtualenv::

    python bench/live.py [--members 50] [--purchases 1000] [--concurrency 8] [--keep]
        [--database-url postgresql+asyncpg://postgres@127.0.0.1:5432/loyalty_bench_live]

The load, both servers and PostgreSQL share the machine's cores: the figures are those of one
small box.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import statistics
import sys
import time
import uuid
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy.engine import make_url
from websockets.asyncio.client import ClientConnection, connect

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.common import drop_database, recreate_database  # noqa: E402
from tests.cli import free_port  # noqa: E402

DEFAULT_URL = "postgresql+asyncpg://postgres@127.0.0.1:5432/loyalty_bench_live"
WAIT_SECONDS = 60.0
ENROLL = """mutation($input: EnrollMemberInput!) {
  enrollMember(input: $input) { member { id } errors { code } } }"""
TOKEN = """mutation($input: IssueMemberTokenInput!) {
  issueMemberToken(input: $input) { token errors { code } } }"""
PURCHASE = """mutation($input: RecordPurchaseInput!) {
  recordPurchase(input: $input) { member { points { available } } errors { code } } }"""
MEMBER_UPDATED = "subscription { memberUpdated { id points { available } } }"
EVENTS = 'subscription { events(types: ["purchase.recorded"]) { id memberId } }'


async def cli(env: dict[str, str], *args: str) -> str:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "loyalty", *args, env=env, stdout=asyncio.subprocess.PIPE
    )
    out, _ = await process.communicate()
    assert process.returncode == 0, f"loyalty {' '.join(args)} failed"
    return out.decode().strip().splitlines()[-1]


async def recreate(url: str) -> None:
    parsed = make_url(url)
    assert parsed.database and "bench" in parsed.database, "the database name must say bench"
    await recreate_database(parsed, settings={})


async def serve(env: dict[str, str], stack: AsyncExitStack) -> int:
    port = free_port()
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        *("-m", "loyalty", "serve", "--port", str(port), "--workers", "1"),
        env=env,
        stderr=asyncio.subprocess.DEVNULL,
    )

    async def stop() -> None:
        process.terminate()
        await process.wait()

    stack.push_async_callback(stop)
    async with httpx.AsyncClient() as http, asyncio.timeout(WAIT_SECONDS):
        while True:
            try:
                if (await http.get(f"http://127.0.0.1:{port}/healthz")).status_code == 200:
                    return port
            except httpx.TransportError:
                await asyncio.sleep(0.1)


async def graphql(
    http: httpx.AsyncClient, port: int, key: str, query: str, **variables: Any
) -> Any:
    response = await http.post(
        f"http://127.0.0.1:{port}/graphql",
        json={"query": query, "variables": variables},
        headers={"Authorization": f"Bearer {key}"},
    )
    body = response.json()
    assert not body.get("errors"), body
    return body["data"]


async def subscribe(port: int, token: str, query: str, stack: AsyncExitStack) -> ClientConnection:
    url = f"ws://127.0.0.1:{port}/graphql"
    socket_ = await stack.enter_async_context(connect(url, subprotocols=["graphql-transport-ws"]))  # type: ignore[list-item]
    await socket_.send(
        json.dumps({"type": "connection_init", "payload": {"Authorization": f"Bearer {token}"}})
    )
    assert json.loads(await socket_.recv())["type"] == "connection_ack"
    await socket_.send(json.dumps({"id": "1", "type": "subscribe", "payload": {"query": query}}))
    return socket_


async def open_count(http: httpx.AsyncClient, port: int) -> int:
    text = (await http.get(f"http://127.0.0.1:{port}/metrics")).text
    return sum(
        int(float(line.rsplit(" ", 1)[1]))
        for line in text.splitlines()
        if line.startswith("loyalty_subscriptions_open{")
    )


def summary(name: str, seconds: list[float]) -> str:
    ordered = sorted(seconds)
    p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
    return (
        f"{name:<26}{statistics.median(ordered) * 1000:9.1f}{p99 * 1000:9.1f}"
        f"{ordered[-1] * 1000:9.1f}"
    )


async def main(args: argparse.Namespace) -> None:
    await recreate(args.database_url)
    env = {**os.environ, "LOYALTY_DATABASE_URL": args.database_url, "LOYALTY_LOG_FORMAT": "json"}
    await cli(env, "db", "upgrade")
    await cli(env, "program", "init", "--currency", "USD", "--name", "bench")
    pos = await cli(env, "apikey", "create", "--role", "pos", "--name", "bench pos")
    app_key = await cli(env, "apikey", "create", "--role", "app", "--name", "bench app")
    admin = await cli(env, "apikey", "create", "--role", "admin", "--name", "bench admin")
    async with AsyncExitStack() as stack, httpx.AsyncClient(timeout=60) as http:
        server_a, server_b = await serve(env, stack), await serve(env, stack)
        members: list[str] = []
        sockets: dict[str, ClientConnection] = {}
        for n in range(args.members):
            enrolled = await graphql(http, server_b, pos, ENROLL, input={"externalId": f"b-{n}"})
            member_id = enrolled["enrollMember"]["member"]["id"]
            issued = await graphql(http, server_b, app_key, TOKEN, input={"memberId": member_id})
            token = issued["issueMemberToken"]["token"]
            sockets[member_id] = await subscribe(server_a, token, MEMBER_UPDATED, stack)
            members.append(member_id)
        events = await subscribe(server_a, admin, EVENTS, stack)
        async with asyncio.timeout(WAIT_SECONDS):
            while await open_count(http, server_a) < args.members + 1:  # noqa: ASYNC110
                await asyncio.sleep(0.05)
        print(f"{args.members} members subscribed on server A, an admin watching events")

        rng = random.Random(1)
        plan = [rng.choice(members) for _ in range(args.purchases)]
        answered: list[float] = []
        pushed: list[float] = []
        evented: list[float] = []
        by_order: dict[str, float] = {}
        queue: asyncio.Queue[str] = asyncio.Queue()
        for member_id in plan:
            queue.put_nowait(member_id)
        locks = {m: asyncio.Lock() for m in members}

        async def till() -> None:
            while not queue.empty():
                member_id = queue.get_nowait()
                # one purchase per member at a time, so each push pairs with its purchase
                async with locks[member_id]:
                    started = time.perf_counter()
                    order = uuid.uuid4().hex
                    by_order[member_id] = started
                    data = await graphql(
                        http,
                        server_b,
                        pos,
                        PURCHASE,
                        input={
                            "idempotencyKey": order,
                            "memberId": member_id,
                            "orderId": order,
                            "channel": "IN_STORE",
                            "total": {"amount": "10.00", "currency": "USD"},
                        },
                    )
                    answered.append(time.perf_counter() - started)
                    expected = data["recordPurchase"]["member"]["points"]["available"]
                    message = json.loads(
                        await asyncio.wait_for(sockets[member_id].recv(), WAIT_SECONDS)
                    )
                    pushed.append(time.perf_counter() - started)
                    got = message["payload"]["data"]["memberUpdated"]["points"]["available"]
                    assert got == expected, (got, expected)

        async def watch() -> None:
            for _ in range(args.purchases):
                message = json.loads(await asyncio.wait_for(events.recv(), WAIT_SECONDS))
                member_id = message["payload"]["data"]["events"]["memberId"]
                evented.append(time.perf_counter() - by_order[member_id])

        began = time.perf_counter()
        await asyncio.gather(watch(), *(till() for _ in range(args.concurrency)))
        elapsed = time.perf_counter() - began
        print(
            f"{args.purchases} purchases through server B in {elapsed:.1f} s: "
            f"{args.purchases / elapsed:.0f}/s (concurrency {args.concurrency})"
        )
        print(f"{'latency from sending':<26}{'p50 ms':>9}{'p99 ms':>9}{'max ms':>9}")
        print(summary("answer from B", answered))
        print(summary("member's push from A", pushed))
        print(summary("admin's event from A", evented))
    if not args.keep:
        await drop_database(make_url(args.database_url))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--members", type=int, default=50, help="subscribed members (50)")
    parser.add_argument("--purchases", type=int, default=1000, help="purchases (1000)")
    parser.add_argument("--concurrency", type=int, default=8, help="concurrent tills (8)")
    parser.add_argument("--database-url", default=DEFAULT_URL, help=f"default {DEFAULT_URL}")
    parser.add_argument("--keep", action="store_true", help="keep the database afterwards")
    asyncio.run(main(parser.parse_args()))
