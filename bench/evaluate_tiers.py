"""Benchmark of the tier job (``evaluate-tiers``) and of the what-if preview at scale.

What is measured, in one run:

1. **Generation** (setup, timed on its own). A fresh PostgreSQL database is created and
   migrated (``loyalty.migrate.upgrade``); ``tests.tiers_data`` then inserts the Bronze /
   Silver / Gold ladder (thresholds 0 / 1000 / 3000, no retention) and N members with P EARN
   transactions each, spread over the last 500 days, with a consistent ledger (set-based SQL,
   one transaction). ``VACUUM ANALYZE`` and a ``CHECKPOINT`` follow, so that the job starts
   on fresh statistics and visibility maps and does not pay for the generation's writes.
2. **evaluate_tiers(db, now=T)**, three times, each timed wall-clock around the call:
   - *first run*: nobody has a tier yet, so every member moves up (the worst case: every
     member row is updated and one history row per member is written);
   - *second run*, same T: idempotent, it must change nothing (the floor: the reads alone);
   - *T + 200 days*: a realistic daily run, in which members whose points left the window
     move down (the ladder has no retention) and a few move up.
   Throughput is given in members/s and in ledger transactions/s (all of them, in or out of
   the window).
3. **preview_tier_change(session, proposed=..., now=T + 200 days)** with a different 3-tier
   ladder (0 / 2000 / 5000): one read-only aggregate over all members and their ledger.

A summary table follows, and whether evaluate-tiers met its target: under 60 s for
1,000,000 members with ~10 purchases each (every run must be under it). At other scales
the verdict is not given; the first run's time is extrapolated linearly in ledger rows.

Run it from the project root with the project's virtualenv::

    python bench/evaluate_tiers.py [--members 1000000] [--purchases-per-member 10]
        [--database-url postgresql+asyncpg://postgres@127.0.0.1:5432/loyalty_bench_tiers]
        [--keep] [--reuse]

The database is dropped and recreated (its name must contain "bench", so that a typo cannot
drop a real one) and dropped at the end unless ``--keep``. With ``--reuse`` an existing
database that already holds exactly this data set (same migration head, ladder, member and
ledger counts) is kept: only the tier state is reset (members back to no tier, history
emptied, then ``VACUUM ANALYZE``), so reruns skip the generation; combine it with ``--keep``.

Every wait is bounded: the script's own asyncpg connections time out after 10 s; the
database is given a ``statement_timeout``, ``lock_timeout`` and
``idle_in_transaction_session_timeout``; each phase (the migration, the generation, each
evaluation, the preview) runs under an asyncio timeout. Autovacuum is reported because it
matters: with it off, the statistics of ``members.tier_id`` stay those of the last ANALYZE
(all NULL after generation) during and between the runs, as they do during any one run. This
script, PostgreSQL and whatever else runs on the
machine share its cores, so the figures are those of this box, not of a deployment.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg
from sqlalchemy.engine import URL, make_url

PROJECT_ROOT = Path(__file__).resolve().parent.parent
if str(PROJECT_ROOT) not in sys.path:
    sys.path.insert(0, str(PROJECT_ROOT))

from bench.common import (  # noqa: E402
    ADMIN_TIMEOUT_SECONDS,
    MAINTENANCE_TIMEOUT_SECONDS,
    check_database_url,
    connect,
    database_exists,
    drop_database,
    fill,
    recreate_database,
    settle,
)
from loyalty import migrate  # noqa: E402
from loyalty.db import Database  # noqa: E402
from loyalty.tiers.evaluation import EvaluationReport, evaluate_tiers, preview_tier_change  # noqa: E402
from loyalty.tiers.service import PreviewRow, ProposedTier  # noqa: E402
from tests.tiers_data import THRESHOLDS  # noqa: E402

DEFAULT_URL = "postgresql+asyncpg://postgres@127.0.0.1:5432/loyalty_bench_tiers"
TARGET_SECONDS = 60.0
TARGET_MEMBERS = 1_000_000
TARGET_PURCHASES = 10
LATER = timedelta(days=200)
PROPOSED = [
    ProposedTier(rank=1, threshold=0, name="Member"),
    ProposedTier(rank=2, threshold=2000, name="Plus"),
    ProposedTier(rank=3, threshold=5000, name="Premier"),
]

MIGRATE_TIMEOUT_SECONDS = 300.0
GENERATE_TIMEOUT_SECONDS = 3600.0
EVALUATE_TIMEOUT_SECONDS = 1800.0
PREVIEW_TIMEOUT_SECONDS = 900.0


@dataclass(frozen=True)
class DataSet:
    now: datetime
    """The instant the data was generated for (the members' ``enrolled_at``)."""
    members: int
    ledger_rows: int


@dataclass(frozen=True)
class Timing:
    phase: str
    seconds: float
    members: int | None = None
    ledger_rows: int | None = None
    outcome: str = ""


# --------------------------------------------------------------------------------------------
# The database: reuse, reset (create, fill, settle and drop are bench/common.py's)
# --------------------------------------------------------------------------------------------


async def existing_data(url: URL, *, members: int, per_member: int) -> DataSet | None:
    """The data set already in the database when it is exactly the one asked for, else None."""
    if not await database_exists(url):
        return None
    connection = await connect(url)
    try:
        try:
            revision = await connection.fetchval(
                "SELECT version_num FROM alembic_version", timeout=ADMIN_TIMEOUT_SECONDS
            )
            ladder = await connection.fetch(
                "SELECT name, threshold FROM tiers", timeout=ADMIN_TIMEOUT_SECONDS
            )
            found, now = await connection.fetchrow(
                "SELECT count(*), min(enrolled_at) FROM members", timeout=ADMIN_TIMEOUT_SECONDS
            )
            ledger_rows = await connection.fetchval(
                "SELECT count(*) FROM ledger_transactions", timeout=MAINTENANCE_TIMEOUT_SECONDS
            )
        except asyncpg.UndefinedTableError:
            return None
    finally:
        await connection.close()
    if (
        revision != migrate.head_revision()
        or {row["name"]: row["threshold"] for row in ladder} != THRESHOLDS
        or found != members
        or ledger_rows != members * per_member
        or now is None
    ):
        return None
    return DataSet(now=now.astimezone(UTC), members=members, ledger_rows=ledger_rows)


async def reset_tiers(url: URL) -> None:
    """Back to the state right after generation: no member has a tier, no history."""
    connection = await connect(url)
    try:
        async with connection.transaction():
            await connection.execute("TRUNCATE tier_changes", timeout=ADMIN_TIMEOUT_SECONDS)
            await connection.execute(
                "UPDATE members SET tier_id = NULL, tier_since = NULL, tier_retained_until = NULL "
                "WHERE tier_id IS NOT NULL OR tier_since IS NOT NULL "
                "OR tier_retained_until IS NOT NULL",
                timeout=MAINTENANCE_TIMEOUT_SECONDS,
            )
    finally:
        await connection.close()


async def server_facts(url: URL) -> str:
    connection = await connect(url, "postgres")
    try:
        version = await connection.fetchval("SHOW server_version", timeout=ADMIN_TIMEOUT_SECONDS)
        settings = [
            f"{name}={await connection.fetchval(f'SHOW {name}', timeout=ADMIN_TIMEOUT_SECONDS)}"
            for name in (
                "shared_buffers",
                "work_mem",
                "max_parallel_workers_per_gather",
                "jit",
                "autovacuum",
            )
        ]
    finally:
        await connection.close()
    return f"PostgreSQL {version} ({', '.join(settings)})"


# --------------------------------------------------------------------------------------------
# The measured phases
# --------------------------------------------------------------------------------------------


async def timed_evaluation(
    db: Database, phase: str, now: datetime, data: DataSet
) -> tuple[Timing, EvaluationReport]:
    started = time.perf_counter()
    async with asyncio.timeout(EVALUATE_TIMEOUT_SECONDS):
        report = await evaluate_tiers(db, now=now)
    seconds = time.perf_counter() - started
    timing = Timing(phase, seconds, report.members, data.ledger_rows, str(report))
    say(
        f"{phase}: {seconds:.2f} s, {_rate(report.members, seconds)} members/s, "
        f"{_rate(data.ledger_rows, seconds)} ledger rows/s\n    {report}"
    )
    return timing, report


async def timed_preview(
    db: Database, now: datetime, data: DataSet
) -> tuple[Timing, list[PreviewRow]]:
    started = time.perf_counter()
    async with asyncio.timeout(PREVIEW_TIMEOUT_SECONDS), db.read_session() as session:
        rows: list[PreviewRow] = await preview_tier_change(session, proposed=PROPOSED, now=now)
    seconds = time.perf_counter() - started
    counted = sum(row.members for row in rows)
    timing = Timing(
        "preview_tier_change", seconds, data.members, data.ledger_rows, f"{counted} members"
    )
    say(
        f"preview_tier_change: {seconds:.2f} s, {_rate(data.members, seconds)} members/s, "
        f"{_rate(data.ledger_rows, seconds)} ledger rows/s"
    )
    say(
        f"    {'rank':>4}  {'name':<8} {'threshold':>9} {'members':>9} {'up':>9} {'down':>9} "
        f"{'stayed':>9}"
    )
    for row in rows:
        say(
            f"    {row.rank:>4}  {row.name or '(none)':<8} {row.threshold:>9} {row.members:>9} "
            f"{row.moved_up:>9} {row.moved_down:>9} {row.stayed:>9}"
        )
    if counted != data.members:
        say(f"    WARNING: the preview counts {counted} members, the data set has {data.members}")
    return timing, rows


async def prepare(url: URL, args: argparse.Namespace) -> tuple[DataSet, list[Timing]]:
    """The data set, reused when asked and present, else generated; with its setup timings."""
    members, per_member = args.members, args.purchases_per_member
    timings: list[Timing] = []
    if args.reuse:
        async with asyncio.timeout(MAINTENANCE_TIMEOUT_SECONDS):
            found = await existing_data(url, members=members, per_member=per_member)
        if found is not None:
            generated = f"{found.now:%Y-%m-%d %H:%M:%S} UTC"
            say(f"reuse: {url.database} holds the data set (generated for {generated})")
            started = time.perf_counter()
            async with asyncio.timeout(MAINTENANCE_TIMEOUT_SECONDS):
                await reset_tiers(url)
                await settle(url, ["members", "tier_changes"])
            timings.append(Timing("reset tier state + vacuum", time.perf_counter() - started))
            say(f"reset tier state and vacuumed in {timings[-1].seconds:.1f} s")
            return found, timings
        say(f"reuse: {url.database} does not hold this data set; generating it")

    database_url = url.render_as_string(hide_password=False)
    started = time.perf_counter()
    async with asyncio.timeout(ADMIN_TIMEOUT_SECONDS):
        await recreate_database(url)
    async with asyncio.timeout(MIGRATE_TIMEOUT_SECONDS):
        # Blocking (Alembic runs its own event loop): in a thread of its own.
        await asyncio.to_thread(migrate.upgrade, database_url)
    timings.append(Timing("create + migrate", time.perf_counter() - started))
    say(f"created and migrated {url.database} in {timings[-1].seconds:.1f} s")

    now = datetime.now(UTC).replace(microsecond=0)
    ledger_rows = members * per_member
    say(f"generating {members} members x {per_member} purchases ({ledger_rows} ledger rows)...")
    db = Database(database_url)
    try:
        started = time.perf_counter()
        async with asyncio.timeout(GENERATE_TIMEOUT_SECONDS):
            await fill(db, members=members, lots_per_member=per_member, now=now)
        seconds = time.perf_counter() - started
    finally:
        await db.dispose()
    timings.append(Timing("generate", seconds, members, ledger_rows))
    say(
        f"generated in {seconds:.1f} s ({_rate(members, seconds)} members/s, "
        f"{_rate(ledger_rows, seconds)} ledger rows/s)"
    )

    started = time.perf_counter()
    async with asyncio.timeout(MAINTENANCE_TIMEOUT_SECONDS):
        await settle(url)
    timings.append(Timing("vacuum analyze + checkpoint", time.perf_counter() - started))
    say(f"VACUUM ANALYZE and CHECKPOINT in {timings[-1].seconds:.1f} s")
    return DataSet(now=now, members=members, ledger_rows=ledger_rows), timings


async def measure(url: URL, data: DataSet) -> list[Timing]:
    db = Database(url.render_as_string(hide_password=False))
    later = data.now + LATER
    try:
        first, report = await timed_evaluation(db, "evaluate_tiers first run", data.now, data)
        if report.upgraded != data.members:
            say(f"    WARNING: expected all {data.members} members to move up")
        again, report = await timed_evaluation(db, "evaluate_tiers again, same now", data.now, data)
        if (report.upgraded, report.downgraded, report.retention_started) != (0, 0, 0):
            say("    WARNING: the second run with the same now changed something")
        moved, _ = await timed_evaluation(db, "evaluate_tiers now + 200 days", later, data)
        preview, _ = await timed_preview(db, later, data)
    finally:
        await db.dispose()
    return [first, again, moved, preview]


# --------------------------------------------------------------------------------------------
# Reporting and the command line
# --------------------------------------------------------------------------------------------


def say(message: str) -> None:
    print(message, flush=True)


def _rate(count: int | None, seconds: float) -> str:
    if count is None or seconds <= 0:
        return "-"
    return f"{count / seconds:,.0f}"


def summary(setup: list[Timing], measured: list[Timing], args: argparse.Namespace) -> bool:
    """Print the table and the verdict; True when the target is met (or not judged)."""
    say(f"\n{'phase':<32} {'seconds':>9} {'members/s':>12} {'ledger rows/s':>14}  outcome")
    say("-" * 100)
    for timing in [*setup, *measured]:
        members = _rate(timing.members, timing.seconds)
        ledger = _rate(timing.ledger_rows, timing.seconds)
        say(
            f"{timing.phase:<32} {timing.seconds:>9.2f} {members:>12} {ledger:>14}  "
            f"{timing.outcome}"
        )
    evaluations = [t for t in measured if t.phase.startswith("evaluate_tiers")]
    slowest = max(evaluations, key=lambda t: t.seconds)
    at_scale = args.members >= TARGET_MEMBERS and args.purchases_per_member >= TARGET_PURCHASES
    say("")
    if not at_scale:
        first = evaluations[0]
        scale = (TARGET_MEMBERS * TARGET_PURCHASES) / (args.members * args.purchases_per_member)
        say(
            f"target (< {TARGET_SECONDS:.0f} s for {TARGET_MEMBERS:,} members x "
            f"{TARGET_PURCHASES} purchases): not judged at this scale; the first run, "
            f"extrapolated linearly in ledger rows, would take ~{first.seconds * scale:.0f} s"
        )
        return True
    met = slowest.seconds < TARGET_SECONDS
    say(
        f"target (< {TARGET_SECONDS:.0f} s for {args.members:,} members x "
        f"{args.purchases_per_member} purchases): {'MET' if met else 'NOT MET'}; slowest run: "
        f"{slowest.phase}, {slowest.seconds:.1f} s"
    )
    return met


async def run(args: argparse.Namespace) -> int:
    url = make_url(args.database_url)
    say(
        f"evaluate-tiers benchmark: {args.members} members x {args.purchases_per_member} "
        f"purchases, database {url.database}"
    )
    say(f"{await server_facts(url)}; {os.cpu_count()} CPU cores shared with this script")
    if hasattr(os, "getloadavg"):
        say("load average before the run: " + " ".join(f"{v:.2f}" for v in os.getloadavg()))
    try:
        data, setup = await prepare(url, args)
        say(f"evaluating as of {data.now:%Y-%m-%d %H:%M:%S} UTC, then {LATER.days} days later")
        measured = await measure(url, data)
        met = summary(setup, measured, args)
    finally:
        if args.keep:
            say(f"\nkept database {url.database}")
        else:
            await drop_database(url)
            say(f"\ndropped database {url.database}")
    return 0 if met else 1


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Benchmark evaluate-tiers and previewTierChange over bulk-generated members."
    )
    parser.add_argument("--members", type=int, default=TARGET_MEMBERS, help="members (1000000)")
    parser.add_argument(
        "--purchases-per-member",
        type=int,
        default=TARGET_PURCHASES,
        help=f"EARN transactions per member ({TARGET_PURCHASES})",
    )
    parser.add_argument("--database-url", default=DEFAULT_URL, help=f"default {DEFAULT_URL}")
    parser.add_argument("--keep", action="store_true", help="keep the database afterwards")
    parser.add_argument(
        "--reuse",
        action="store_true",
        help="reuse the database when it already holds this data set (with --keep)",
    )
    args = parser.parse_args(argv)
    for name in ("members", "purchases_per_member"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be at least 1")
    check_database_url(parser, args.database_url)
    return args


def main(argv: Sequence[str] | None = None) -> int:
    return asyncio.run(run(parse_args(argv)))


if __name__ == "__main__":
    sys.exit(main())
