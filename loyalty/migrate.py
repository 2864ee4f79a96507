"""Alembic, driven from code: the CLI, ``serve --demo``, ``/readyz`` and the tests use it.

The configuration is built here rather than read from ``alembic.ini``, so an installed wheel
migrates from any working directory; ``alembic.ini`` stays for running ``alembic`` by hand.
"""

import asyncio
import re
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.script import ScriptDirectory
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection, create_async_engine

PACKAGED_MIGRATIONS = Path(__file__).resolve().parent / "_migrations"
"""Where the wheel puts the scripts (``setup.py`` maps ``migrations/`` there)."""

SOURCE_MIGRATIONS = Path(__file__).resolve().parent.parent / "migrations"
"""The scripts in a source checkout (an editable install has no ``_migrations``)."""


def script_location() -> Path:
    return PACKAGED_MIGRATIONS if (PACKAGED_MIGRATIONS / "env.py").is_file() else SOURCE_MIGRATIONS


def alembic_config(database_url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(script_location()))
    config.attributes["database_url"] = database_url
    config.attributes["configure_logging"] = False
    return config


def upgrade(database_url: str, revision: str = "head") -> None:
    """Migrate to ``revision``; safe to run twice. Blocking: call it outside an event loop."""
    command.upgrade(alembic_config(database_url), revision)


def downgrade(database_url: str, revision: str) -> None:
    command.downgrade(alembic_config(database_url), revision)


def drops_everything(database_url: str, revision: str) -> bool:
    """Whether downgrading to ``revision`` would undo every migration: ``base``, or a relative
    step back (``-N``, ``REV-N``) reaching past the first revision."""
    target = revision.strip()
    if target.lower() == "base":
        return True
    relative = re.fullmatch(r"(\w*)-(\d+)", target)
    if relative is None:
        return False
    anchor = relative.group(1) or asyncio.run(_applied_revision(database_url))
    if anchor is None:
        return False
    script = ScriptDirectory.from_config(alembic_config(database_url))
    return int(relative.group(2)) >= len(list(script.iterate_revisions(anchor, "base")))


async def _applied_revision(database_url: str) -> str | None:
    engine = create_async_engine(database_url)
    try:
        async with engine.connect() as connection:
            return await current_revision(connection)
    finally:
        await engine.dispose()


def head_revision() -> str | None:
    return ScriptDirectory.from_config(alembic_config("")).get_current_head()


async def current_revision(connection: AsyncConnection) -> str | None:
    try:
        revision: str | None = await connection.scalar(
            text("SELECT version_num FROM alembic_version")
        )
        return revision
    except DBAPIError:
        return None


def sqlite_path(database_url: str) -> Path | None:
    """The absolute path of an SQLite database file; None for other databases and memory."""
    url = make_url(database_url)
    if url.get_backend_name() != "sqlite" or url.database in (None, "", ":memory:"):
        return None
    return Path(url.database).resolve()


def unreachable(database_url: str, error: BaseException) -> str:
    """One line for a database that cannot be opened: the URL (no password) and the driver's
    own reason, without SQLAlchemy's wrapping."""
    while error.__cause__ is not None:
        error = error.__cause__
    reason = (str(error).strip().splitlines() or [type(error).__name__])[0]
    shown = make_url(database_url).render_as_string(hide_password=True)
    return f"Cannot open the database at {shown}: {reason}"


def database_problem(database_url: str) -> str | None:
    """Why the database cannot serve commands yet, in one line naming the fix; None when it is
    at the head revision. Never creates a missing SQLite file. Blocking."""
    shown = make_url(database_url).render_as_string(hide_password=True)
    path = sqlite_path(database_url)
    if path is not None and not path.is_file():
        return f"No database at {shown} (file {path} does not exist): run `loyalty db upgrade`."

    try:
        revision = asyncio.run(_applied_revision(database_url))
    except Exception as error:
        return unreachable(database_url, error)
    head = head_revision()
    if revision is None:
        return f"The database at {shown} is not migrated: run `loyalty db upgrade`."
    if revision == head:
        return None
    known = {
        script.revision
        for script in ScriptDirectory.from_config(alembic_config("")).walk_revisions()
    }
    if revision not in known:
        return (
            f"The database at {shown} is at revision {revision}, newer than this loyalty "
            f"({head}): install the loyalty version that migrated it."
        )
    return (
        f"The database at {shown} is at revision {revision}, this loyalty needs {head}: "
        "run `loyalty db upgrade`."
    )
