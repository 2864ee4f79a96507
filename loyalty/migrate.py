"""Alembic, driven from code: the CLI, ``serve --demo``, ``/readyz`` and the tests use it."""

import asyncio
import re
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.script import ScriptDirectory
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection, create_async_engine

PROJECT_ROOT = Path(__file__).resolve().parent.parent


def alembic_config(database_url: str) -> Config:
    config = Config(str(PROJECT_ROOT / "alembic.ini"))
    config.set_main_option("script_location", str(PROJECT_ROOT / "migrations"))
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
        return await connection.scalar(text("SELECT version_num FROM alembic_version"))
    except DBAPIError:
        return None
