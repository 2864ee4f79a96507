"""The ``loyalty`` command (API.md §1)."""

import asyncio
import sys
from datetime import UTC, datetime
from enum import StrEnum
from typing import Annotated

import typer

from loyalty import migrate
from loyalty.auth import service as auth
from loyalty.config import get_settings
from loyalty.db import Database
from loyalty.errors import DomainError

app = typer.Typer(help="Loyalty-program backend.", no_args_is_help=True)
db_app = typer.Typer(help="Database migrations.", no_args_is_help=True)
apikey_app = typer.Typer(help="API keys for admin consoles, points of sale and apps.")
schema_app = typer.Typer(help="The GraphQL schema.", no_args_is_help=True)
ledger_app = typer.Typer(help="The points ledger.", no_args_is_help=True)
jobs_app = typer.Typer(help="Scheduled jobs (run them from cron or a scheduler).")
app.add_typer(db_app, name="db")
app.add_typer(apikey_app, name="apikey")
app.add_typer(schema_app, name="schema")
app.add_typer(ledger_app, name="ledger")
app.add_typer(jobs_app, name="jobs")


class Job(StrEnum):
    RELEASE_PENDING = "release-pending"
    EXPIRE_POINTS = "expire-points"
    EVALUATE_TIERS = "evaluate-tiers"
    BIRTHDAY_BONUS = "birthday-bonus"


def _database() -> Database:
    settings = get_settings()
    return Database(settings.database_url, busy_timeout=settings.sqlite_busy_timeout_seconds)


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Migrate the database to the newest schema (safe to run twice)."""
    migrate.upgrade(get_settings().database_url)
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
    database_url = get_settings().database_url
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
) -> None:
    """Create an API key; its secret is printed once, alone on the last line."""

    async def run() -> auth.CreatedKey:
        db = _database()
        try:
            async with db.transaction() as session:
                return await auth.create_api_key(session, role=role, name=name)
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

    async def run() -> list:  # type: ignore[type-arg]
        db = _database()
        try:
            async with db.transaction() as session:
                return await auth.list_api_keys(session)
        finally:
            await db.dispose()

    typer.echo(f"{'id':>4}  {'role':6} {'prefix':13} {'created':20} {'last used':20} status  name")
    for key in asyncio.run(run()):
        status = "revoked" if key.revoked_at else "active"
        last_used = key.last_used_at.strftime("%Y-%m-%d %H:%M:%S") if key.last_used_at else "-"
        typer.echo(
            f"{key.id:>4}  {key.role:6} {key.prefix:13} "
            f"{key.created_at:%Y-%m-%d %H:%M:%S}  {last_used:20} {status:7} {key.name}"
        )


@apikey_app.command("revoke")
def apikey_revoke(key: Annotated[str, typer.Argument(help="The key's id or prefix")]) -> None:
    """Revoke an API key: requests with it get 401 from then on."""

    async def run() -> None:
        db = _database()
        try:
            async with db.transaction() as session:
                await auth.revoke_api_key(session, key_id_or_prefix=key)
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
    """Check every ledger invariant; exit 1 with a report when any is violated."""
    from loyalty.ledger.verify import verify

    async def run() -> list:  # type: ignore[type-arg]
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
    from loyalty.events.birthdays import birthday_bonus
    from loyalty.ledger.jobs import expire_points, release_pending
    from loyalty.tiers.evaluation import evaluate_tiers

    jobs = {
        Job.RELEASE_PENDING: release_pending,
        Job.EXPIRE_POINTS: expire_points,
        Job.EVALUATE_TIERS: evaluate_tiers,
        Job.BIRTHDAY_BONUS: birthday_bonus,
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


@app.command()
def serve(
    host: Annotated[str, typer.Option()] = "127.0.0.1",
    port: Annotated[int, typer.Option()] = 8000,
    demo: Annotated[
        bool, typer.Option(help="Migrate, seed demo data if empty, print an admin key, debug on.")
    ] = False,
) -> None:
    """Serve the API with uvicorn."""
    import uvicorn

    from loyalty.app import create_app

    settings = get_settings()
    if demo:
        settings = settings.model_copy(update={"debug": True})
        secret = _prepare_demo(settings.database_url)
        typer.echo(f"GraphiQL: http://{host}:{port}/graphql")
        typer.echo('Add the header {"Authorization": "Bearer <key>"} with this admin key:')
        typer.echo(secret)
    uvicorn.run(create_app(settings), host=host, port=port, log_level="info")


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
            return created.secret
        finally:
            await db.dispose()

    return asyncio.run(run())
