"""Chaos benchmark: SIGKILL a real ``loyalty serve`` under load, restart it, retry what was
not answered, and show that every request took effect exactly once.

Each round sends R requests (two thirds recordPurchase, one third redeemReward of a reward
whose stock is half the round's redemptions) from C concurrent httpx clients with a ``pos`` key,
each request with its own idempotencyKey. When the round's K-th request is sent (K drawn from
30-70 % of R) the server is killed with SIGKILL and restarted on the same port; the clients
retry every request that got no answer (connection error, timeout, non-200) with the same key
and input until it is answered. After each round the database is compared with the answers
and every answered success is sent once more to check it replays (``tests/chaos_harness.py``
holds the machinery and the checks); at the end ``loyalty ledger verify`` must exit 0.

The database named in --database-url (default ``loyalty_bench_chaos``; its name must contain
"bench" so that a typo cannot drop a real database) is dropped, recreated, migrated with
``loyalty db upgrade`` and dropped at the end unless --keep.

Run it from the project root with the project's virtualenv::

    python bench/chaos.py [--rounds 5] [--concurrency 8] [--requests 300] [--members 40]
        [--seed 1] [--keep]
        [--database-url postgresql+asyncpg://postgres@127.0.0.1:5432/loyalty_bench_chaos]

Figures per round: requests sent before the kill, requests in flight (unanswered) at the
kill and how many of those the killed server had committed (their retry was a replay) versus
applied by the retry, retry attempts (including those refused while the server restarted),
time from the kill to /healthz answering and to the first answer after the kill, and the
problems found. The exit status is 0 only when no problem was found and the ledger verifies.
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
    parser.add_argument("--rounds", type=int, default=5, help="rounds, one SIGKILL each")
    parser.add_argument("--concurrency", type=int, default=8, help="concurrent client tasks")
    parser.add_argument("--requests", type=int, default=300, help="requests per round")
    parser.add_argument("--members", type=int, default=40, help="members the load spreads over")
    parser.add_argument("--seed", type=int, default=1, help="seeds the plan and kill points")
    parser.add_argument("--database-url", default=DEFAULT_URL)
    parser.add_argument("--keep", action="store_true", help="keep the database afterwards")
    args = parser.parse_args(argv)
    if "bench" not in (make_url(args.database_url).database or ""):
        parser.error("the database name must contain 'bench': it is dropped and recreated")
    if min(args.rounds, args.concurrency, args.requests, args.members) < 1:
        parser.error("--rounds, --concurrency, --requests and --members must be at least 1")
    return args


def say(message: str) -> None:
    print(message, flush=True)


def describe(chaos_round: Round) -> str:
    first = chaos_round.first_answer_seconds
    redeemed = sum(
        1 for call in chaos_round.calls if call.field == "redeemReward" and call.succeeded
    )
    return (
        f"{chaos_round.number:>5} {chaos_round.requests:>8} {chaos_round.kill_after:>10} "
        f"{chaos_round.in_flight_at_kill:>9} {chaos_round.applied_before_kill:>10} "
        f"{chaos_round.applied_on_retry:>9} {chaos_round.retried_requests:>8} "
        f"{chaos_round.retries:>7} {chaos_round.restart_seconds:>9.2f} "
        f"{'-' if first is None else f'{first:.2f}':>9} "
        f"{redeemed:>3}/{chaos_round.stock:<4} {chaos_round.load_seconds:>6.1f}"
    )


HEADER = (
    "round requests kill@sent in-flight committed   retried  retried retries restart_s "
    "1st_ans_s stock  load_s\n"
    "                          at kill  by killed  by retry requests attempts           "
    "          used"
)


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
            say(HEADER)
            for number in range(1, args.rounds + 1):
                chaos_round = plan_round(chaos, number, args.requests, rng)
                await run_round(chaos, chaos_round, args.concurrency)
                found = await replay_answered(chaos, chaos_round, args.concurrency)
                found += await check(chaos)
                say(describe(chaos_round))
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
    calls = chaos.calls
    say(
        f"totals: {len(calls)} requests, {len(rounds)} SIGKILLs, "
        f"{sum(r.in_flight_at_kill for r in rounds)} in flight at a kill "
        f"({sum(r.applied_before_kill for r in rounds)} committed by the killed server, "
        f"{sum(r.applied_on_retry for r in rounds)} applied by their retry), "
        f"{sum(r.retried_requests for r in rounds)} requests retried in "
        f"{sum(r.retries for r in rounds)} attempts "
        f"({sum(r.connection_errors for r in rounds)} connection errors, "
        f"{sum(r.timeouts for r in rounds)} timeouts, {sum(r.http_errors for r in rounds)} "
        f"non-200), {chaos.replays} replays checked"
    )
    restarts = sorted(r.restart_seconds for r in rounds)
    say(
        f"restart (kill -> /healthz 200): min {restarts[0]:.2f} s, "
        f"median {restarts[len(restarts) // 2]:.2f} s, max {restarts[-1]:.2f} s"
    )


def main(argv: Sequence[str] | None = None) -> int:
    return asyncio.run(run(parse_args(argv)))


if __name__ == "__main__":
    sys.exit(main())
