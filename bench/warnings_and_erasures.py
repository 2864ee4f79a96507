"""Benchmark of ``warn-expiring`` and of the retention job's erasure of closed members.

A fresh PostgreSQL database (its name must contain "bench") is migrated and given N members
with P earn lots each over the last 500 days, expiring 365 days after they were earned
(``tests.tiers_data``, as ``bench/lifecycle_jobs.py``). Then, each timed wall-clock:

1. ``warn_expiring(now)``: the lots expiring in the next 30 days are announced;
2. ``warn_expiring`` again: nothing is announced (the floor: reads alone);
3. one member in ``--closed-every`` is closed 40 days ago and ``closedMemberRetentionDays``
   set to 30; ``retention(now)`` erases them all (forfeit, scrub, events, audit);
4. ``retention`` again: nobody is left to erase.

It checks ``loyalty ledger verify`` at the end. Run it from the project root::

    python bench/warnings_and_erasures.py [--members 100000] [--lots-per-member 5]
        [--closed-every 10] [--keep]

The load generator and PostgreSQL share the machine's cores.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sqlalchemy import text  # noqa: E402

from bench.common import bench_url, fill, fresh_database, settle, verify_ledger  # noqa: E402
from loyalty.db import Database  # noqa: E402
from loyalty.ledger.expiry_warnings import warn_expiring  # noqa: E402
from loyalty.privacy.retention import retention  # noqa: E402

DEFAULT_URL = "postgresql+asyncpg://postgres@127.0.0.1:5432/loyalty_bench_warnings"


async def _timed(name: str, job: object, db: Database, now: datetime) -> None:
    started = time.perf_counter()
    report = await job(db, now=now)  # type: ignore[operator]
    print(f"{name:22} {time.perf_counter() - started:8.2f} s  ({report})", flush=True)


async def _close_members(db: Database, *, every: int, now: datetime) -> None:
    async with db.transaction() as session:
        await session.execute(
            text(
                "UPDATE members SET status = 'CLOSED', closed_at = :at "
                "WHERE id % :every = 0 AND external_id LIKE 'bulk-%'"
            ),
            {"at": now - timedelta(days=40), "every": every},
        )
        await session.execute(text("UPDATE program SET closed_member_retention_days = 30"))


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
            expire_days=365,
        )
        await settle(url)
        print(
            f"generated {args.members:,} members with {args.lots_per_member} lots each in "
            f"{time.perf_counter() - started:.1f} s",
            flush=True,
        )
        await _timed("warn-expiring", warn_expiring, db, now)
        await _timed("warn-expiring again", warn_expiring, db, now)
        await _close_members(db, every=args.closed_every, now=now)
        await settle(url)
        await _timed("retention (erasing)", retention, db, now)
        await _timed("retention again", retention, db, now)
        verified = await verify_ledger(url)
        return verified


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--members", type=int, default=100_000)
    parser.add_argument("--lots-per-member", type=int, default=5)
    parser.add_argument("--closed-every", type=int, default=10)
    parser.add_argument("--database-url", default=DEFAULT_URL)
    parser.add_argument("--keep", action="store_true")
    return asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    sys.exit(main())
