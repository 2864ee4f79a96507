"""Chaos benchmark: SIGKILL a real ``loyalty serve`` under load, restart it, retry what was
not answered, and show that every request took effect exactly once.

Each round sends R requests (two thirds recordPurchase, one third redeemReward of a reward
whose stock is half the round's redemptions) from C concurrent httpx clients with a ``pos`` key,
each request with its own idempotencyKey. When the round's K-th distinct request is sent (K
drawn from 30-70 % of R; --kills such points per round) the server is killed with SIGKILL and
restarted on the same port (a kill point reached during a restart kills the server as soon as
it is back); the clients retry every request that got no answer (connection error, timeout,
non-200) with the same key and input until it is answered. After each round the database is
compared with the answers and every answered success is sent once more to check it replays
(``tests/chaos_harness.py`` holds the machinery and the checks); at the end ``loyalty ledger
verify`` must exit 0.

The database named in --database-url (default ``loyalty_bench_chaos``; its name must contain
"bench" so that a typo cannot drop a real database) is dropped, recreated, migrated with
``loyalty db upgrade`` and dropped at the end unless --keep.

Run it from the project root with the project's virtualenv::

    python bench/chaos.py [--rounds 5] [--kills 1] [--concurrency 8] [--requests 300]
        [--members 40] [--seed 1] [--keep]
        [--database-url postgresql+asyncpg://postgres@127.0.0.1:5432/loyalty_bench_chaos]

Figures: per round, the requests, load time, requests retried and retry attempts (most of
them refused connections while the server restarts) and the stock used; per kill, after how
many sends it fell, how many requests were unanswered at that instant, how many of those needed
a retry (the others' answers were already in the client's socket) and how many of the retried
the killed server had nevertheless committed (their answer was lost; the retry must replay it),
the time from the kill to /healthz answering 200 and to the first answered request; then
totals, every problem found, and ``loyalty ledger verify``'s result. The exit status is 0 only
when no problem was found and the ledger verifies.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from sqlalchemy.engine import make_url

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.chaos_harness import (
    Chaos,
    Round,
    check,
    fresh_database,
    plan_round,
    replay_answered,
    run_round,
    started,
    verify,
)

DEFAULT_URL = "postgresql+asyncpg://postgres@127.0.0.1:5432/loyalty_bench_chaos"


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=5, help="rounds of load")
    parser.add_argument("--kills", type=int, default=1, help="SIGKILLs per round")
    parser.add_argument("--concurrency", type=int, default=8, help="concurrent client tasks")
    parser.add_argument("--requests", type=int, default=300, help="requests per round")
    parser.add_argument("--members", type=int, default=40, help="members the load spreads over")
    parser.add_argument("--seed", type=int, default=1, help="seeds the plan and kill points")
    parser.add_argument("--database-url", default=DEFAULT_URL)
    parser.add_argument("--keep", action="store_true", help="keep the database afterwards")
    args = parser.parse_args(argv)
    if "bench" not in (make_url(args.database_url).database or ""):
        parser.error("the database name must contain 'bench': it is dropped and recreated")
    if min(args.rounds, args.kills, args.concurrency, args.requests, args.members) < 1:
        parser.error(
            "--rounds, --kills, --concurrency, --requests and --members must be at least 1"
        )
    return args


def say(message: str) -> None:
    print(message, flush=True)


def describe(chaos_round: Round) -> list[str]:
    redeemed = sum(
        1 for call in chaos_round.calls if call.field == "redeemReward" and call.succeeded
    )
    lines = [
        f"round {chaos_round.number}: {chaos_round.requests} requests in "
        f"{chaos_round.load_seconds:.1f} s, {chaos_round.retried_requests} retried in "
        f"{chaos_round.retries} attempts ({chaos_round.connection_errors} connection errors, "
        f"{chaos_round.timeouts} timeouts, {chaos_round.http_errors} non-200), "
        f"stock {redeemed}/{chaos_round.stock} used"
    ]
    for number, kill in enumerate(chaos_round.kills, 1):
        first = kill.first_answer_seconds
        lines.append(
            f"  kill {number}: SIGKILL after {kill.after_sent} sent, {len(kill.in_flight)} "
            f"unanswered, {len(kill.retried)} of them retried ({kill.committed_by_killed} "
            "committed by the killed server, replayed), "
            f"restart {kill.restart_seconds:.2f} s to /healthz, first answer after "
            f"{'-' if first is None else f'{first:.2f}'} s"
        )
    return lines


async def run(args: argparse.Namespace) -> int:
    name = make_url(args.database_url).database or ""
    rng = random.Random(args.seed)
    problems: list[str] = []
    started_at = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="loyalty-chaos-") as scratch:
        log_path = Path(scratch) / "server.log"
        async with (
            fresh_database(args.database_url, name, keep=args.keep) as url,
            started(url, log_path, args.members, args.seed) as chaos,
        ):
            say(
                f"server on {chaos.server.base_url}, {args.members} members, "
                f"{args.rounds} round(s) of {args.requests} requests from "
                f"{args.concurrency} clients, seed {args.seed}"
            )
            for number in range(1, args.rounds + 1):
                chaos_round = plan_round(chaos, number, args.requests, rng, args.kills)
                await run_round(chaos, chaos_round, args.concurrency)
                found = await replay_answered(chaos, chaos_round, args.concurrency)
                found += await check(chaos)
                for line in describe(chaos_round):
                    say(line)
                for problem in found:
                    say(f"      PROBLEM: {problem}")
                problems += found
            summarise(chaos)
            code, output = await verify(url)
            say(f"loyalty ledger verify: exit {code}: {output.splitlines()[0] if output else ''}")
            if code != 0:
                say(output)
            if problems or code != 0:
                say(f"server log (last lines):\n{chaos.server.log_tail()}")
        if args.keep:
            say(f"kept database {name}")
    say(f"{len(problems)} problem(s); {time.monotonic() - started_at:.1f} s in all")
    return 0 if not problems and code == 0 else 1


def summarise(chaos: Chaos) -> None:
    rounds = chaos.rounds
    kills = [kill for chaos_round in rounds for kill in chaos_round.kills]
    say(
        f"totals: {len(chaos.calls)} requests, {len(kills)} SIGKILLs, "
        f"{sum(len(kill.in_flight) for kill in kills)} unanswered at a kill, "
        f"{sum(len(kill.retried) for kill in kills)} of them retried "
        f"({sum(kill.committed_by_killed for kill in kills)} committed by the killed server), "
        f"{sum(r.retried_requests for r in rounds)} requests retried in "
        f"{sum(r.retries for r in rounds)} attempts, {chaos.replays} replays checked"
    )
    restarts = sorted(kill.restart_seconds for kill in kills)
    say(
        f"restart (kill -> /healthz 200): min {restarts[0]:.2f} s, "
        f"median {restarts[len(restarts) // 2]:.2f} s, max {restarts[-1]:.2f} s"
    )


def main(argv: Sequence[str] | None = None) -> int:
    return asyncio.run(run(parse_args(argv)))


if __name__ == "__main__":
    sys.exit(main())
