"""The ``loyalty`` command (API.md §1)."""

import asyncio
import json
import os
import signal
import sys
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from enum import StrEnum
from functools import cache, partial
from pathlib import Path
from typing import Annotated

import typer
from pydantic import ValidationError
from sqlalchemy.exc import DBAPIError

from loyalty import migrate
from loyalty.audit import service as audit
from loyalty.auth import service as auth
from loyalty.auth.models import ApiKey
from loyalty.config import get_settings
from loyalty.db import Database
from loyalty.errors import DomainError

app = typer.Typer(help="Loyalty-program backend.", no_args_is_help=True)
db_app = typer.Typer(help="Database migrations.", no_args_is_help=True)
apikey_app = typer.Typer(help="API keys for admin consoles, points of sale and apps.")
schema_app = typer.Typer(help="The GraphQL schema.", no_args_is_help=True)
ledger_app = typer.Typer(help="The points ledger.", no_args_is_help=True)
jobs_app = typer.Typer(help="Scheduled jobs (run them from cron or a scheduler).")
program_app = typer.Typer(help="The loyalty program.", no_args_is_help=True)
member_app = typer.Typer(help="One member's data.", no_args_is_help=True)
app.add_typer(db_app, name="db")
app.add_typer(apikey_app, name="apikey")
app.add_typer(schema_app, name="schema")
app.add_typer(ledger_app, name="ledger")
app.add_typer(jobs_app, name="jobs")
app.add_typer(program_app, name="program")
app.add_typer(member_app, name="member")


class Job(StrEnum):
    RELEASE_PENDING = "release-pending"
    EXPIRE_POINTS = "expire-points"
    EVALUATE_TIERS = "evaluate-tiers"
    BIRTHDAY_BONUS = "birthday-bonus"
    RETENTION = "retention"
    WARN_EXPIRING = "warn-expiring"
    RFM = "rfm"
    STATS_ROLLUP = "stats-rollup"


@cache
def _database_url() -> str:
    """The configured URL; says once, on stderr, where the default SQLite file is. An invalid
    ``LOYALTY_*`` setting is one error line and exit 2."""
    try:
        url = get_settings().database_url
    except ValidationError as error:
        problems = "; ".join(
            f"LOYALTY_{str(e['loc'][0]).upper()}: {e['msg']}" for e in error.errors()
        )
        typer.echo(f"error: invalid setting {problems}", err=True)
        raise typer.Exit(2) from error
    if "LOYALTY_DATABASE_URL" not in os.environ:
        typer.echo(
            f"LOYALTY_DATABASE_URL is not set: using the database file {migrate.sqlite_path(url)}",
            err=True,
        )
    return url


def _database() -> Database:
    settings = get_settings()
    return Database(
        _database_url(),
        busy_timeout=settings.sqlite_busy_timeout_seconds,
        pgbouncer=settings.db_pgbouncer,
    )


def _require_migrated() -> None:
    """Exit 2 with one line (which database, what to run) unless it is migrated to head."""
    problem = migrate.database_problem(_database_url())
    if problem:
        typer.echo(f"error: {problem}", err=True)
        raise typer.Exit(2)


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Migrate the database to the newest schema (safe to run twice)."""
    url = _database_url()
    try:
        migrate.upgrade(url)
    except (OSError, DBAPIError) as error:
        typer.echo(f"error: {migrate.unreachable(url, error)}", err=True)
        raise typer.Exit(2) from error
    typer.echo(f"Database at revision {migrate.head_revision()}.")


@db_app.command("downgrade")
def db_downgrade(
    revision: Annotated[
        str, typer.Argument(metavar="REVISION", help="e.g. 0007, or -- -1 for one step back")
    ],
    yes_drop_everything: Annotated[
        bool, typer.Option("--yes-drop-everything", help="Allow a REVISION that drops every table")
    ] = False,
) -> None:
    """Migrate back to REVISION (required); "base" drops every table and all its data."""
    database_url = _database_url()
    if not yes_drop_everything and migrate.drops_everything(database_url, revision):
        typer.echo(
            f"Refusing to downgrade to {revision}: it drops every table and all data "
            "(pass --yes-drop-everything if you mean it).",
            err=True,
        )
        raise typer.Exit(2)
    migrate.downgrade(database_url, revision)
    typer.echo(f"Database at revision {revision}.")


@apikey_app.command("create")
def apikey_create(
    role: Annotated[str, typer.Option(help="admin, pos or app")],
    name: Annotated[str, typer.Option(help="Who holds the key, e.g. 'store 12 till 3'")],
    rate_limit: Annotated[
        str | None, typer.Option(help="Requests allowed, e.g. 600/minute (default: unlimited)")
    ] = None,
) -> None:
    """Create an API key; its secret is printed once, alone on the last line."""
    _require_migrated()

    async def run() -> auth.CreatedKey:
        db = _database()
        try:
            async with db.transaction() as session:
                created = await auth.create_api_key(
                    session, role=role, name=name, rate_limit=rate_limit
                )
                await audit.record_cli(
                    session,
                    command="apikey create",
                    options={"role": role, "name": name}
                    | ({"rateLimit": rate_limit} if rate_limit else {}),
                    target_ids=[str(created.key.id)],
                )
                return created
        finally:
            await db.dispose()

    try:
        created = asyncio.run(run())
    except DomainError as error:
        typer.echo(f"error: {error.message}", err=True)
        raise typer.Exit(2) from error
    typer.echo(f"Created {created.key.role} key {created.key.id} ({created.key.name}).")
    typer.echo("Store this secret now: it is not shown again.")
    typer.echo(created.secret)


@apikey_app.command("list")
def apikey_list() -> None:
    """List API keys (never their secrets)."""
    _require_migrated()

    async def run() -> list[ApiKey]:
        db = _database()
        try:
            async with db.transaction() as session:
                return await auth.list_api_keys(session)
        finally:
            await db.dispose()

    typer.echo(
        f"{'id':>4}  {'role':6} {'prefix':13} {'created':20} {'last used':20} "
        f"{'rate limit':14} status  name"
    )
    for key in asyncio.run(run()):
        status = "revoked" if key.revoked_at else "active"
        last_used = key.last_used_at.strftime("%Y-%m-%d %H:%M:%S") if key.last_used_at else "-"
        limit = key.rate_limit or "-"
        typer.echo(
            f"{key.id:>4}  {key.role:6} {key.prefix:13} "
            f"{key.created_at:%Y-%m-%d %H:%M:%S}  {last_used:20} {limit:14} {status:7} {key.name}"
        )


@apikey_app.command("revoke")
def apikey_revoke(key: Annotated[str, typer.Argument(help="The key's id or prefix")]) -> None:
    """Revoke an API key: requests with it get 401 from then on."""
    _require_migrated()

    async def run() -> None:
        db = _database()
        try:
            async with db.transaction() as session:
                revoked = await auth.revoke_api_key(session, key_id_or_prefix=key)
                await audit.record_cli(
                    session,
                    command="apikey revoke",
                    options={"key": key},
                    target_ids=[str(revoked.id)],
                )
        finally:
            await db.dispose()

    try:
        asyncio.run(run())
    except DomainError as error:
        typer.echo(f"error: {error.message}", err=True)
        raise typer.Exit(2) from error
    typer.echo(f"Revoked key {key}.")


@schema_app.command("export")
def schema_export() -> None:
    """Print the GraphQL SDL (CI compares it with schema/schema.graphql)."""
    from loyalty.graphql.schema import export_sdl

    sys.stdout.write(export_sdl())


@ledger_app.command("verify")
def ledger_verify() -> None:
    """Check every ledger invariant; exit 1 with a report when any is violated (2: the
    database cannot be checked)."""
    _require_migrated()
    from loyalty.ledger.verify import Violation, verify

    async def run() -> list[Violation]:
        db = _database()
        try:
            async with db.read_engine.connect() as connection:
                return await verify(connection)
        finally:
            await db.dispose()

    violations = asyncio.run(run())
    if not violations:
        typer.echo("Ledger verified: every invariant holds.")
        return
    typer.echo(f"Ledger verification FAILED: {len(violations)} violation(s).")
    for violation in violations:
        typer.echo(f"- {violation}")
    raise typer.Exit(1)


@program_app.command("init")
def program_init(
    currency: Annotated[str, typer.Option(help="ISO 4217 code purchases are recorded in")],
    name: Annotated[str | None, typer.Option(help="The program's name")] = None,
    base_tier: Annotated[str, typer.Option(help="Name of the base tier if one is created")] = (
        "Member"
    ),
) -> None:
    """First run: currency, name and a base tier (rank 0, threshold 0); safe to run again."""
    from loyalty.program.first_run import FirstRun, initialize

    _require_migrated()

    async def run() -> FirstRun:
        db = _database()
        try:
            async with db.transaction() as session:
                return await initialize(
                    session, currency=currency, name=name, base_tier_name=base_tier
                )
        finally:
            await db.dispose()

    try:
        done = asyncio.run(run())
    except DomainError as error:
        typer.echo(f"error: {error.message}", err=True)
        raise typer.Exit(2) from error
    tier = done.base_tier
    typer.echo(f"Program {done.program.name!r} in {done.program.currency}.")
    verb = "Created" if done.created_tier else "Kept"
    typer.echo(f"{verb} base tier {tier.name!r} (rank {tier.rank}, threshold {tier.threshold}).")
    if done.members_placed:
        typer.echo(f"Placed {done.members_placed} member(s) without a tier in it.")


@member_app.command("export")
def member_export(
    member: Annotated[str, typer.Argument(help="The member's API id (or its numeric key)")],
    out: Annotated[Path, typer.Option(help="Where to write the JSON document")],
) -> None:
    """Write everything stored about a member to a JSON file (right of access)."""
    from loyalty.ids import decode_id, parse_key
    from loyalty.privacy.export import export_member

    _require_migrated()
    member_id = decode_id("Member", member) or parse_key(member) or 0

    async def run() -> dict[str, object]:
        db = _database()
        try:
            async with db.read_session() as session:
                return await export_member(session, member_id=member_id)
        finally:
            await db.dispose()

    try:
        document = asyncio.run(run())
    except DomainError as error:
        typer.echo(f"error: {error.message}", err=True)
        raise typer.Exit(2) from error
    out.write_text(json.dumps(document, indent=2, ensure_ascii=False) + "\n")
    typer.echo(f"Wrote the data of member {member} to {out}.")


def _parse_now(value: str | None) -> datetime:
    if value is None:
        return datetime.now(UTC)
    try:
        moment = datetime.fromisoformat(value)
    except ValueError as error:
        raise typer.BadParameter(f"{value!r} is not an ISO-8601 date-time") from error
    if moment.tzinfo is None:
        raise typer.BadParameter("--now needs a timezone, e.g. 2026-01-31T00:00:00+00:00")
    return moment


@jobs_app.command("run")
def jobs_run(
    name: Annotated[Job, typer.Argument(help="The job to run.")],
    now: Annotated[
        str | None,
        typer.Option(help="Run as of this ISO-8601 instant (default: now); for replays and tests."),
    ] = None,
) -> None:
    """Run a job once; safe to run twice and beside live traffic."""
    _require_migrated()
    from loyalty.analytics.rollup import stats_rollup
    from loyalty.events.birthdays import birthday_bonus
    from loyalty.ledger.expiry_warnings import warn_expiring
    from loyalty.ledger.jobs import expire_points, release_pending
    from loyalty.privacy.retention import retention
    from loyalty.segments.rfm import rfm
    from loyalty.tiers.evaluation import evaluate_tiers

    jobs: dict[Job, Callable[..., Awaitable[object]]] = {
        Job.RELEASE_PENDING: release_pending,
        Job.EXPIRE_POINTS: expire_points,
        Job.EVALUATE_TIERS: evaluate_tiers,
        Job.BIRTHDAY_BONUS: birthday_bonus,
        Job.RETENTION: partial(
            retention,
            delivery_retention_days=get_settings().webhook_delivery_retention_days,
        ),
        Job.WARN_EXPIRING: warn_expiring,
        Job.RFM: rfm,
        Job.STATS_ROLLUP: stats_rollup,
    }
    moment = _parse_now(now)

    async def run() -> object:
        db = _database()
        try:
            return await jobs[name](db, now=moment)
        finally:
            await db.dispose()

    report = asyncio.run(run())
    typer.echo(f"{name.value} as of {moment.isoformat()}: {report}")


class ReportFormat(StrEnum):
    CSV = "csv"
    HTML = "html"


class ReportGrouping(StrEnum):
    DAY = "day"
    WEEK = "week"
    MONTH = "month"


def _parse_instant(value: str, option: str) -> datetime:
    try:
        moment = datetime.fromisoformat(value)
    except ValueError as error:
        raise typer.BadParameter(
            f"{value!r} is not an ISO-8601 date-time", param_hint=option
        ) from error
    if moment.tzinfo is None:
        raise typer.BadParameter(
            "needs a timezone, e.g. 2026-01-01T00:00:00+01:00", param_hint=option
        )
    return moment


@app.command()
def report(
    since: Annotated[str, typer.Option("--from", help="Start, ISO-8601 with offset (included).")],
    until: Annotated[str, typer.Option("--to", help="End, ISO-8601 with offset (excluded).")],
    out: Annotated[Path, typer.Option(help="The file to write.", dir_okay=False)],
    group_by: Annotated[
        ReportGrouping | None, typer.Option(help="Periods in the program's time zone.")
    ] = None,
    format: Annotated[
        ReportFormat | None, typer.Option(help="Default: csv for a .csv file, else html.")
    ] = None,
) -> None:
    """Write programStats' figures for [--from, --to) to a CSV file or one HTML page."""
    from loyalty.analytics import report as reports
    from loyalty.analytics import stats

    query = stats.StatsQuery(
        start=_parse_instant(since, "--from"),
        end=_parse_instant(until, "--to"),
        group_by=None if group_by is None else stats.Grouping(group_by.value.upper()),
    )
    kind = format or (ReportFormat.CSV if out.suffix.lower() == ".csv" else ReportFormat.HTML)
    _require_migrated()

    async def run() -> tuple[stats.ProgramStats, list[stats.TierCount]]:
        db = _database()
        try:
            async with db.read_session() as session:
                figures = await stats.program_stats(session, query)
                return figures, await stats.tier_distribution(session)
        finally:
            await db.dispose()

    try:
        figures, tiers = asyncio.run(run())
    except DomainError as error:
        typer.echo(f"error: {error.message}", err=True)
        raise typer.Exit(2) from error
    title = f"Loyalty program report, {since} to {until}"
    text = (
        reports.to_csv(figures)
        if kind == ReportFormat.CSV
        else reports.to_html(figures, title=title, tiers=tiers)
    )
    try:
        out.write_text(text, encoding="utf-8")
    except OSError as error:
        typer.echo(f"error: cannot write {out}: {error.strerror}", err=True)
        raise typer.Exit(2) from error
    typer.echo(f"Wrote {len(figures.periods)} period(s) and totals to {out} ({kind.value}).")


@app.command()
def worker(
    once: Annotated[
        bool, typer.Option("--once", help="Deliver what is due, then exit (tests, cron).")
    ] = False,
) -> None:
    """Deliver webhooks until SIGTERM; the request in flight finishes first."""
    _require_migrated()
    from loyalty.outbox.worker import run as deliver

    async def run() -> object:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, stop.set)
        db = _database()
        try:
            return await deliver(db, get_settings(), once=once, stop=stop)
        finally:
            await db.dispose()

    typer.echo(f"worker: {asyncio.run(run())}")


@app.command()
def serve(
    host: Annotated[str, typer.Option()] = "127.0.0.1",
    port: Annotated[int, typer.Option()] = 8000,
    workers: Annotated[
        int | None,
        typer.Option(min=1, help="Worker processes; default: the CPUs on PostgreSQL, 1 on SQLite."),
    ] = None,
    demo: Annotated[
        bool, typer.Option(help="Migrate, seed demo data if empty, print an admin key, debug on.")
    ] = False,
) -> None:
    """Serve the API with uvicorn, one app built by the factory in each worker process
    (refused, exit 2, until the database is migrated)."""
    import uvicorn

    from loyalty.logs import log_config

    _database_url()
    settings = get_settings()
    if not demo:
        _require_migrated()
    if demo:
        # Workers build their app from the environment, so debug travels there.
        os.environ["LOYALTY_DEBUG"] = "1"
        get_settings.cache_clear()
        secret = _prepare_demo(settings.database_url)
        typer.echo(f"GraphiQL: http://{host}:{port}/graphql")
        typer.echo('Add the header {"Authorization": "Bearer <key>"} with this admin key:')
        typer.echo(secret)
    uvicorn.run(
        "loyalty.app:create_app",
        factory=True,
        host=host,
        port=port,
        workers=workers or default_workers(settings.database_url),
        log_config=log_config(settings.log_format),
        access_log=False,
    )


def default_workers(database_url: str) -> int:
    """One per CPU on PostgreSQL; one on SQLite, whose single writer gains nothing from more."""
    return 1 if database_url.startswith("sqlite") else os.cpu_count() or 1


def _prepare_demo(database_url: str) -> str:
    from loyalty.demo import seed_if_empty

    migrate.upgrade(database_url)

    async def run() -> str:
        db = _database()
        try:
            if await seed_if_empty(db):
                typer.echo("Seeded the demo program, tiers and members.")
            async with db.transaction() as session:
                created = await auth.create_api_key(session, role="admin", name="demo admin")
                await audit.record_cli(
                    session,
                    command="serve --demo",
                    options={"role": "admin", "name": "demo admin"},
                    target_ids=[str(created.key.id)],
                )
            return created.secret
        finally:
            await db.dispose()

    return asyncio.run(run())
