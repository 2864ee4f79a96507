"""Alembic, driven from code: the CLI, ``serve --demo``, ``/readyz`` and the tests use it.

The configuration is built here rather than read from ``alembic.ini``, so an installed wheel
migrates from any working directory; ``alembic.ini`` stays for running ``alembic`` by hand.
"""

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.script import ScriptDirectory
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection

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


def downgrade(database_url: str, revision: str = "base") -> None:
    command.downgrade(alembic_config(database_url), revision)


def head_revision() -> str | None:
    return ScriptDirectory.from_config(alembic_config("")).get_current_head()


async def current_revision(connection: AsyncConnection) -> str | None:
    try:
        return await connection.scalar(text("SELECT version_num FROM alembic_version"))
    except DBAPIError:
        return None
