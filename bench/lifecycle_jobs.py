"""Benchmark of the points-lifecycle jobs at scale: ``release-pending`` and ``expire-points``.

A fresh PostgreSQL database (its name must contain "bench") is migrated and given N members
with P earn lots each, spread over the last 500 days (``tests.tiers_data``, set-based SQL,
timed on its own): lots of the last ``--pending-days`` are pending, and every lot expires
``--expire-days`` after it was earned. Then, each timed wall-clock around the call:

1. ``release_pending(now + pending days)``: every pending lot is due;
2. ``release_pending`` again with the same instant: nothing is due (the floor: reads alone);
3. ``expire_points(now)``: every lot older than the expiry is due (the worst case: every
   member has points to expire at once);
4. ``expire_points`` again: nothing is due;
5. ``expire_points`` a day later: one day's lots are due (a daily run).

It prints seconds, members/s and lots/s, and under each run that moved points the share of
the statements that took the most time (``--statements N``, 0 for none; with a batch per CPU
running at once the shares add up to more than 100 %); it checks
``loyalty ledger verify`` at the end and says whether each job met its target: under 60 s for
1,000,000 members. Run it from the project root with the project's virtualenv::

    python bench/lifecycle_jobs.py [--members 1000000] [--lots-per-member 5]
        [--pending-days 14] [--expire-days 365] [--statements 6] [--keep]

The load generator and PostgreSQL share the machine's cores.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sqlalchemy import event, func, select  # noqa: E402

from bench.common import bench_url, fill, fresh_database, settle, verify_ledger  # noqa: E402
from loyalty.db import Database  # noqa: E402
from loyalty.ledger.jobs import JobReport, expire_points, release_pending  # noqa: E402
from loyalty.ledger.models import PointLot  # noqa: E402

DEFAULT_URL = "postgresql+asyncpg://postgres@127.0.0.1:5432/loyalty_bench_lifecycle"
TARGET_SECONDS = 60.0


async def _lots(db: Database) -> int:
    async with db.transaction() as session:
        return int(await session.scalar(select(func.count()).select_from(PointLot)) or 0)


class StatementTimes:
    """Wall-clock time per SQL statement text (its first words), summed over a job's batches."""

    def __init__(self, db: Database) -> None:
        self.totals: dict[str, list[float]] = defaultdict(lambda: [0, 0.0])
        self._started: dict[int, float] = {}
        engine = db.write_engine.sync_engine
        event.listen(engine, "before_cursor_execute", self._before)
        event.listen(engine, "after_cursor_execute", self._after)

    def _before(self, _conn: object, _cursor: object, _sql: str, *args: object) -> None:
        self._started[id(args[1])] = time.perf_counter()

    def _after(self, _conn: object, _cursor: object, sql: str, *args: object) -> None:
        entry = self.totals[" ".join(sql.split())[:72]]
        entry[0] += 1
        entry[1] += time.perf_counter() - self._started.pop(id(args[1]), time.perf_counter())

    def report(self, seconds: float, top: int) -> None:
        slowest = sorted(self.totals.items(), key=lambda item: -item[1][1])[:top]
        for sql, (count, spent) in slowest:
            print(f"    {spent:7.2f} s {100 * spent / seconds:5.1f} %  x{count:<3.0f} {sql}")
        self.totals.clear()


async def _timed(
    name: str,
    job: object,
    db: Database,
    now: datetime,
    *,
    members: int,
    lots: int,
    statements: StatementTimes,
    top: int,
) -> float:
    """Rates are over everything the job looks at: all members and all lots."""
    statements.totals.clear()
    started = time.perf_counter()
    report: JobReport = await job(db, now=now)  # type: ignore[operator]
    seconds = time.perf_counter() - started
    print(
        f"{name:24} {seconds:8.2f} s  {members / seconds:12,.0f} members/s  "
        f"{lots / seconds:12,.0f} lots/s  (moved {report})",
        flush=True,
    )
    if report.members:
        statements.report(seconds, top)
    return seconds


async def run(args: argparse.Namespace) -> int:
    url = bench_url(args.database_url)
    if url is None:
        return 2
    now = datetime.now(UTC).replace(microsecond=0)
    async with fresh_database(url, keep=args.keep) as db:
        started = time.perf_counter()
        await fill(
            db,
            members=args.members,
            lots_per_member=args.lots_per_member,
            now=now,
            pending_days=args.pending_days,
            expire_days=args.expire_days,
        )
        await settle(url)
        lots = await _lots(db)
        print(
            f"generated {args.members:,} members and {lots:,} lots in "
            f"{time.perf_counter() - started:.1f} s (2 CPU cores shared with PostgreSQL)",
            flush=True,
        )
        released_at = now + timedelta(days=args.pending_days)
        size = {
            "members": args.members,
            "lots": lots,
            "statements": StatementTimes(db),
            "top": args.statements,
        }
        slowest = max(
            [
                await _timed("release-pending", release_pending, db, released_at, **size),
                await _timed("release-pending again", release_pending, db, released_at, **size),
                await _timed("expire-points", expire_points, db, released_at, **size),
                await _timed("expire-points again", expire_points, db, released_at, **size),
                await _timed(
                    "expire-points a day on",
                    expire_points,
                    db,
                    released_at + timedelta(days=1),
                    **size,
                ),
            ]
        )
        verified = await verify_ledger(url)
        met = slowest < TARGET_SECONDS
        print(f"target (< {TARGET_SECONDS:.0f} s per job run): {'MET' if met else 'MISSED'}")
        return 0 if met and verified == 0 else 1


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--members", type=int, default=1_000_000)
    parser.add_argument("--lots-per-member", type=int, default=5)
    parser.add_argument("--pending-days", type=int, default=14)
    parser.add_argument("--expire-days", type=int, default=365)
    parser.add_argument(
        "--statements", type=int, default=6, help="slowest statements shown per run (0: none)"
    )
    parser.add_argument("--database-url", default=DEFAULT_URL)
    parser.add_argument("--keep", action="store_true")
    return asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    sys.exit(main())
