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
one small box, not of a deployment.

**What a webhook costs a purchase.** ``--purchase-cost`` instead runs bench/record_purchase.py's
HTTP phase (a real ``loyalty serve``, concurrent POS clients, --purchases measured purchases)
twice on fresh databases: without a webhook, and with one active webhook subscribed to every
event type while a ``loyalty worker`` subprocess delivers to the receiver. Every purchase
writes its outbox events either way (they are part of the transaction); the second run adds
what delivering them costs the machine: the worker's fan-out, claims and outcome writes, and
its CPU. --rounds R repeats the pair, alternating which goes first, and reports the median
ratio::

    python bench/webhooks.py --purchase-cost [--purchases 3000] [--rounds 2]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

from sqlalchemy import func, make_url, select, update

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.common import drop_database, recreate_database  # noqa: E402
from loyalty import migrate  # noqa: E402
from loyalty.config import Settings  # noqa: E402
from loyalty.db import Database  # noqa: E402
from loyalty.outbox import service as outbox  # noqa: E402
from loyalty.outbox import webhooks  # noqa: E402
from loyalty.outbox.models import DeliveryStatus, Event, WebhookDelivery  # noqa: E402
from loyalty.outbox.worker import run  # noqa: E402
from tests.cli import free_port  # noqa: E402

DEFAULT_URL = "postgresql+asyncpg://postgres@127.0.0.1:5432/loyalty_bench_webhooks"
PURCHASE_URL = "postgresql+asyncpg://postgres@127.0.0.1:5432/loyalty_bench_outbox"
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
    await recreate_database(make_url(url), settings={})


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


def purchase_cost(args: argparse.Namespace) -> int:
    """recordPurchase's throughput without and with one active webhook and a worker."""
    import record_purchase as purchases

    url = make_url(args.purchase_database_url)
    options = purchases.parse_args(
        ["--purchases", str(args.purchases), "--database-url", args.purchase_database_url]
    )
    ratios: list[float] = []
    for round_index in range(args.rounds):
        by_webhook: dict[bool, float] = {}
        for with_webhook in (False, True) if round_index % 2 == 0 else (True, False):
            name = "HTTP, one webhook and a worker" if with_webhook else "HTTP, no webhook"
            purchases.say(f"\n== {name} (round {round_index + 1})")
            fixture = purchases.set_up(url, options, rule_tiers=False)
            specs = purchases.make_all_specs(options, fixture, 0)
            database_url = url.render_as_string(hide_password=False)
            worker_cpu: dict[str, float] = {}
            with delivering(database_url, worker_cpu) if with_webhook else contextlib.nullcontext():
                result = purchases.run_http(
                    url, fixture, options, 0, specs["http-warmup"], specs["http"], name
                )
            if with_webhook:
                made = len(specs["http-warmup"]) + len(specs["http"])
                server_ms = 1000 * (result.cpu.server or 0) / result.count
                worker_ms = 1000 * worker_cpu["seconds"] / made
                purchases.say(
                    f"CPU per purchase: server {server_ms:.2f} ms, worker {worker_ms:.2f} ms "
                    f"(were the server CPU-bound beside the worker on shared cores: "
                    f"{server_ms / (server_ms + worker_ms):.3f} of the throughput)"
                )
            if result.failures:
                purchases.say(f"{result.failure_count} failures, first: {result.failures[0]}")
                return 1
            by_webhook[with_webhook] = result.throughput
            purchases.say(f"{name}: {result.throughput:.0f} purchases/s")
        ratios.append(by_webhook[True] / by_webhook[False])
    purchases.run_async(purchases.drop_database(url))
    ratio = statistics.median(ratios)
    purchases.say(
        f"\nwith a webhook / without: {', '.join(f'{r:.3f}' for r in ratios)}; median {ratio:.3f}"
        f" (the outbox's delivery costs {100 * (1 - ratio):.1f} % of purchase throughput)"
    )
    return 0


@contextlib.contextmanager
def delivering(database_url: str, worker_cpu: dict[str, float]) -> Iterator[None]:
    """A receiver, one webhook on every event type pointing at it, and ``loyalty worker``;
    ``worker_cpu["seconds"]`` is the worker's CPU time when it stops."""
    import record_purchase as purchases

    port = free_port()
    env = {**os.environ, "LOYALTY_DATABASE_URL": database_url, "LOYALTY_WEBHOOK_ALLOW_HTTP": "1"}
    receiver = subprocess.Popen([sys.executable, "-c", RECEIVER, str(port)])
    worker = subprocess.Popen(
        [sys.executable, "-m", "loyalty", "worker"], env=env, stdout=subprocess.DEVNULL
    )
    try:
        asyncio.run(subscribe(database_url, f"http://127.0.0.1:{port}/hook"))
        yield
    finally:
        worker_cpu["seconds"] = purchases._process_seconds(worker.pid) or 0.0
        for process in (worker, receiver):
            process.terminate()
            process.wait(timeout=30)


async def subscribe(database_url: str, receiver_url: str) -> None:
    db = Database(database_url)
    try:
        async with db.transaction() as session:
            await webhooks.create_webhook(
                session,
                webhook=webhooks.WebhookIn(url=receiver_url, events=list(outbox.EVENT_TYPES)),
                allow_local=True,
            )
    finally:
        await db.dispose()


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
        await drop_database(make_url(args.database_url))
    return 1 if failed else 0


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--events", type=int, default=5000, help="events to deliver (5000)")
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2], help="(1 2)")
    parser.add_argument("--database-url", default=DEFAULT_URL, help=f"default {DEFAULT_URL}")
    parser.add_argument("--keep", action="store_true", help="keep the database")
    parser.add_argument(
        "--purchase-cost",
        action="store_true",
        help="measure recordPurchase without and with one active webhook and a worker instead",
    )
    parser.add_argument("--purchases", type=int, default=3000, help="with --purchase-cost (3000)")
    parser.add_argument("--rounds", type=int, default=1, help="with --purchase-cost (1)")
    parser.add_argument(
        "--purchase-database-url",
        default=PURCHASE_URL,
        help=f"with --purchase-cost, dropped and recreated (default {PURCHASE_URL})",
    )
    return parser.parse_args(argv)


if __name__ == "__main__":
    arguments = parse_args()
    sys.exit(purchase_cost(arguments) if arguments.purchase_cost else asyncio.run(main(arguments)))
