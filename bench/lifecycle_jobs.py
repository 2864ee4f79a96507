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

It prints seconds, members/s and lots/s, the CPU seconds the bench process and PostgreSQL
(the bench database's backends and the server's background processes: checkpointer, WAL
writer) spent, the load average, and under each run that moved points the share of
the statements that took the most time (``--statements N``, 0 for none; with a batch per CPU
running at once the shares add up to more than 100 %); it checks
``loyalty ledger verify`` at the end and says whether each job met its target: under 60 s for
1,000,000 members. Run it from the project root with the project's virtualenv::

    python bench/lifecycle_jobs.py [--members 1000000] [--lots-per-member 5]
        [--pending-days 14] [--expire-days 365] [--statements 6] [--batch-size 25000]
        [--keep] [--reuse-fixture]

With ``--reuse-fixture`` the generated data is kept in a template database (the bench
database's name with ``_fixture``, e.g. ``loyalty_bench_lifecycle_fixture``) and each run
starts from a copy of it (``CREATE DATABASE ... TEMPLATE``, a file copy: seconds, where the
generation at 1,000,000 members takes minutes); a template that does not hold exactly the
data set asked for (migration head, members, lots) is rebuilt. Drop it by hand when done.

The load generator and PostgreSQL share the machine's cores.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sqlalchemy import event, func, select  # noqa: E402
from sqlalchemy.engine import URL, make_url  # noqa: E402

from bench.common import (  # noqa: E402
    ADMIN_TIMEOUT_SECONDS,
    DATABASE_SETTINGS,
    MAINTENANCE_TIMEOUT_SECONDS,
    connect,
    database_exists,
    drop_database,
    fill,
    recreate_database,
    settle,
    verify_ledger,
)
from bench.record_purchase import _process_seconds  # noqa: E402
from loyalty import migrate  # noqa: E402
from loyalty.db import Database  # noqa: E402
from loyalty.ledger.jobs import BATCH_SIZE, JobReport, expire_points, release_pending  # noqa: E402
from loyalty.ledger.models import PointLot  # noqa: E402

DEFAULT_URL = "postgresql+asyncpg://postgres@127.0.0.1:5432/loyalty_bench_lifecycle"
TARGET_SECONDS = 60.0


async def _lots(db: Database) -> int:
    async with db.transaction() as session:
        return int(await session.scalar(select(func.count()).select_from(PointLot)) or 0)


async def _admin(url: URL, statement: str) -> None:
    admin = await connect(url, "postgres")
    try:
        await admin.execute(statement, timeout=MAINTENANCE_TIMEOUT_SECONDS)
    finally:
        await admin.close()


async def _generate(url: URL, args: argparse.Namespace, now: datetime) -> None:
    """A fresh, migrated database at ``url`` with the data set, vacuumed and analysed."""
    await recreate_database(url)
    await asyncio.to_thread(migrate.upgrade, url.render_as_string(hide_password=False))
    db = Database(url.render_as_string(hide_password=False))
    try:
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
        print(
            f"generated {args.members:,} members and {await _lots(db):,} lots in "
            f"{time.perf_counter() - started:.1f} s (2 CPU cores shared with PostgreSQL)",
            flush=True,
        )
    finally:
        await db.dispose()


async def _fixture_now(url: URL, args: argparse.Namespace) -> datetime | None:
    """The instant the template's data set was generated for (the members' ``enrolled_at``),
    None when there is no template or it holds another data set."""
    if not await database_exists(url):
        return None
    connection = await connect(url)
    try:
        revision = await connection.fetchval("SELECT version_num FROM alembic_version")
        members, now = await connection.fetchrow("SELECT count(*), min(enrolled_at) FROM members")
        lots = await connection.fetchval(
            "SELECT count(*) FROM point_lots", timeout=ADMIN_TIMEOUT_SECONDS
        )
    except asyncpg.UndefinedTableError:
        return None
    finally:
        await connection.close()
    if (
        revision != migrate.head_revision()
        or members != args.members
        or lots != args.members * args.lots_per_member
    ):
        return None
    return now.astimezone(UTC) if now is not None else None


async def _prepare(url: URL, args: argparse.Namespace) -> datetime:
    """The bench database, generated, or copied from the template (``--reuse-fixture``);
    returns the instant the data set was generated for."""
    if not args.reuse_fixture:
        now = datetime.now(UTC).replace(microsecond=0)
        await _generate(url, args, now)
        return now
    template = url.set(database=f"{url.database}_fixture")
    now_found = await _fixture_now(template, args)
    if now_found is None:
        now_found = datetime.now(UTC).replace(microsecond=0)
        await _generate(template, args, now_found)
    else:
        print(f"reusing the data set of {template.database} (generated for {now_found})")
    name, source = (f'"{u.database}"' for u in (url, template))
    started = time.perf_counter()
    await drop_database(url)
    # FILE_COPY: a copy of the files after a checkpoint, not every page through the WAL.
    await _admin(url, f"CREATE DATABASE {name} TEMPLATE {source} STRATEGY FILE_COPY")
    for setting, value in DATABASE_SETTINGS.items():
        await _admin(url, f"ALTER DATABASE {name} SET {setting} = '{value}'")
    await _admin(url, "CHECKPOINT")
    print(f"copied {template.database} in {time.perf_counter() - started:.1f} s", flush=True)
    return now_found


class CpuTimes:
    """CPU seconds of this process and of PostgreSQL (the bench database's backends and the
    server's background processes: the WAL writer and checkpointer work for the job too)."""

    def __init__(self, url: URL) -> None:
        self.url = url

    async def sample(self) -> tuple[float, dict[int, float]]:
        connection = await connect(self.url)
        try:
            rows = await connection.fetch(
                "SELECT pid FROM pg_stat_activity WHERE pid <> pg_backend_pid() "
                "AND (datname = current_database() OR backend_type <> 'client backend')"
            )
        finally:
            await connection.close()
        seconds = {row["pid"]: _process_seconds(row["pid"]) for row in rows}
        return time.process_time(), {pid: s for pid, s in seconds.items() if s is not None}

    @staticmethod
    def spent(before: tuple[float, dict[int, float]], after: tuple[float, dict[int, float]]) -> str:
        """Backends that connected during the run count from zero."""
        own = after[0] - before[0]
        postgres = sum(s - before[1].get(pid, 0.0) for pid, s in after[1].items())
        load = ", ".join(f"{value:.2f}" for value in os.getloadavg())
        return f"CPU: bench {own:.1f} s, PostgreSQL {postgres:.1f} s; load average {load}"


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
    cpu: CpuTimes,
    batch_size: int,
) -> float:
    """Rates are over everything the job looks at: all members and all lots."""
    statements.totals.clear()
    before = await cpu.sample()
    started = time.perf_counter()
    report: JobReport = await job(db, now=now, batch_size=batch_size)  # type: ignore[operator]
    seconds = time.perf_counter() - started
    spent = CpuTimes.spent(before, await cpu.sample())
    print(
        f"{name:24} {seconds:8.2f} s  {members / seconds:12,.0f} members/s  "
        f"{lots / seconds:12,.0f} lots/s  (moved {report})\n    {spent}",
        flush=True,
    )
    if report.members:
        statements.report(seconds, top)
    return seconds


async def run(args: argparse.Namespace) -> int:
    url = make_url(args.database_url)
    if "bench" not in (url.database or ""):
        print("refusing: the database name must contain 'bench'", file=sys.stderr)
        return 2
    try:
        now = await _prepare(url, args)
        db = Database(url.render_as_string(hide_password=False))
        try:
            lots = await _lots(db)
            released_at = now + timedelta(days=args.pending_days)
            size = {
                "members": args.members,
                "lots": lots,
                "statements": StatementTimes(db),
                "top": args.statements,
                "cpu": CpuTimes(url),
                "batch_size": args.batch_size,
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
        finally:
            await db.dispose()
        verified = await verify_ledger(url)
        met = slowest < TARGET_SECONDS
        print(f"target (< {TARGET_SECONDS:.0f} s per job run): {'MET' if met else 'MISSED'}")
        return 0 if met and verified == 0 else 1
    finally:
        if not args.keep:
            await drop_database(url)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--members", type=int, default=1_000_000)
    parser.add_argument("--lots-per-member", type=int, default=5)
    parser.add_argument("--pending-days", type=int, default=14)
    parser.add_argument("--expire-days", type=int, default=365)
    parser.add_argument(
        "--statements", type=int, default=6, help="slowest statements shown per run (0: none)"
    )
    parser.add_argument(
        "--batch-size", type=int, default=BATCH_SIZE, help="members per batch (default: the jobs')"
    )
    parser.add_argument("--database-url", default=DEFAULT_URL)
    parser.add_argument("--keep", action="store_true")
    parser.add_argument(
        "--reuse-fixture",
        action="store_true",
        help="copy the data set from a template database, built once (see above)",
    )
    return asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    sys.exit(main())
