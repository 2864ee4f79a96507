"""Benchmark of webhook delivery: events/s the worker delivers to a local receiver.

The database named in --database-url (default ``loyalty_bench_webhooks``; the name must
contain "bench") is dropped, recreated and migrated; E events (``member.enrolled`` shaped,
written through ``loyalty.outbox.service.emit`` in transactions of 500) and one webhook
subscribed to them are added. A receiver (uvicorn, answering 204 to every POST) runs in a
subprocess on a free port of 127.0.0.1. Then W workers (``loyalty.outbox.worker.run`` with
``once``, each on its own connection pool) drain the outbox: fan-out, claims, signed POSTs,
outcomes. Reported: events/s from the first claim to the last outcome, per worker count.

Run it from the project root with the project's virtualenv::

    python bench/webhooks.py [--events 5000] [--workers 1 2] [--keep]
        [--database-url postgresql+asyncpg://postgres@127.0.0.1:5432/loyalty_bench_webhooks]

The receiver, the workers and PostgreSQL share the machine's cores: the figures are those of
one small box, not of a deployment. Not measured here: the cost of the outbox on
recordPurchase (see bench/record_purchase.py, run on this branch and on one without it).
"""

from __future__ import annotations

import argparse
import asyncio
import socket
import sys
import time
from collections.abc import Sequence

import asyncpg
from sqlalchemy import func, select, update

from loyalty import migrate
from loyalty.config import Settings
from loyalty.db import Database
from loyalty.outbox import service as outbox
from loyalty.outbox import webhooks
from loyalty.outbox.models import DeliveryStatus, Event, WebhookDelivery
from loyalty.outbox.worker import run

DEFAULT_URL = "postgresql+asyncpg://postgres@127.0.0.1:5432/loyalty_bench_webhooks"
RECEIVER = """
import sys, uvicorn
async def app(scope, receive, send):
    if scope["type"] != "http":
        return
    while (await receive()).get("more_body"):
        pass
    await send({"type": "http.response.start", "status": 204, "headers": []})
    await send({"type": "http.response.body", "body": b""})
uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]), log_level="warning", access_log=False)
"""


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


async def listening(port: int) -> None:
    """Wait until the receiver accepts connections."""
    for _ in range(200):
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", port)
        except OSError:
            await asyncio.sleep(0.05)
            continue
        writer.close()
        return
    raise SystemExit("the receiver did not start")


async def recreate(url: str) -> None:
    name = url.rsplit("/", 1)[1]
    if "bench" not in name:
        raise SystemExit(f"refusing to drop {name!r}: the name must contain 'bench'")
    admin = url.rsplit("/", 1)[0].replace("postgresql+asyncpg://", "postgresql://") + "/postgres"
    connection = await asyncpg.connect(admin)
    try:
        await connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await connection.execute(f'CREATE DATABASE "{name}"')
    finally:
        await connection.close()


async def fill(db: Database, events: int, receiver_url: str) -> None:
    async with db.transaction() as session:
        await webhooks.create_webhook(
            session,
            webhook=webhooks.WebhookIn(url=receiver_url, events=[outbox.MEMBER_ENROLLED]),
            allow_local=True,
        )
    for start in range(0, events, 500):
        async with db.transaction() as session:
            for n in range(start, min(start + 500, events)):
                await outbox.emit(
                    session,
                    outbox.MEMBER_ENROLLED,
                    member_id=n % 1000 + 1,
                    data={"member": {"id": f"m{n}", "externalId": f"crm-{n}"}},
                )


async def reset(db: Database) -> None:
    """Send everything again: no deliveries, every event undispatched."""
    async with db.transaction() as session:
        await session.execute(WebhookDelivery.__table__.delete())
        await session.execute(update(Event).values(dispatched_at=None))


async def measure(url: str, settings: Settings, workers: int) -> tuple[float, int]:
    pools = [Database(url, pool_size=4) for _ in range(workers)]
    try:
        started = time.perf_counter()
        reports = await asyncio.gather(
            *(run(db, settings, once=True, stop=asyncio.Event()) for db in pools)
        )
        elapsed = time.perf_counter() - started
    finally:
        for db in pools:
            await db.dispose()
    return elapsed, sum(r.delivered for r in reports)


async def main(args: argparse.Namespace) -> int:
    await recreate(args.database_url)
    await asyncio.to_thread(migrate.upgrade, args.database_url)
    port = free_port()
    receiver = await asyncio.create_subprocess_exec(sys.executable, "-c", RECEIVER, str(port))
    settings = Settings(database_url=args.database_url, webhook_allow_http=True)
    db = Database(args.database_url)
    failed = False
    try:
        await listening(port)
        await fill(db, args.events, f"http://127.0.0.1:{port}/hook")
        for workers in args.workers:
            await reset(db)
            elapsed, delivered = await measure(args.database_url, settings, workers)
            async with db.read_session() as session:
                pending = await session.scalar(
                    select(func.count()).where(WebhookDelivery.status != DeliveryStatus.DELIVERED)
                )
            failed |= delivered != args.events or bool(pending)
            print(
                f"{workers} worker(s): {delivered} events delivered in {elapsed:.2f} s = "
                f"{delivered / elapsed:.0f} events/s ({pending} not delivered)"
            )
    finally:
        await db.dispose()
        receiver.terminate()
        await receiver.wait()
    if not args.keep:
        name = args.database_url.rsplit("/", 1)[1]
        admin = args.database_url.rsplit("/", 1)[0].replace("postgresql+asyncpg", "postgresql")
        connection = await asyncpg.connect(admin + "/postgres")
        await connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await connection.close()
    return 1 if failed else 0


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--events", type=int, default=5000, help="events to deliver (5000)")
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2], help="(1 2)")
    parser.add_argument("--database-url", default=DEFAULT_URL, help=f"default {DEFAULT_URL}")
    parser.add_argument("--keep", action="store_true", help="keep the database")
    return parser.parse_args(argv)


if __name__ == "__main__":
    sys.exit(asyncio.run(main(parse_args())))
