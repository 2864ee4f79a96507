"""Migrations: upgrade from empty, twice, down to base and up again, on both databases; and
the models never drift from what the migrations build."""

import asyncio
from datetime import UTC, datetime, timedelta

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import bindparam, inspect, text
from sqlalchemy.ext.asyncio import create_async_engine

from loyalty import migrate
from loyalty.db import UTCDateTime
from loyalty.ledger.verify import verify
from loyalty.models import Base
from tests.cli import run_cli


async def _inspect(url: str) -> tuple[set[str], list]:
    engine = create_async_engine(url)
    try:
        async with engine.connect() as connection:

            def read(sync_connection):  # type: ignore[no-untyped-def]
                tables = set(inspect(sync_connection).get_table_names())
                context = MigrationContext.configure(sync_connection, opts={"compare_type": True})
                return tables, compare_metadata(context, Base.metadata)

            return await connection.run_sync(read)
    finally:
        await engine.dispose()


def test_upgrade_downgrade_upgrade(empty_database: str):
    migrate.upgrade(empty_database)
    migrate.upgrade(empty_database)
    tables, drift = asyncio.run(_inspect(empty_database))
    assert set(Base.metadata.tables) <= tables
    assert drift == [], f"models differ from the migrations: {drift}"

    migrate.downgrade(empty_database, "base")
    tables, _ = asyncio.run(_inspect(empty_database))
    assert tables <= {"alembic_version"}

    migrate.upgrade(empty_database)
    tables, drift = asyncio.run(_inspect(empty_database))
    assert set(Base.metadata.tables) <= tables
    assert drift == []


async def _seed_before_lots(url: str) -> None:
    """What revision 0003 could hold: a settled and a pending purchase of one member."""
    engine = create_async_engine(url)
    now = datetime.now(UTC)
    statements = [
        "UPDATE program SET pending_days = 14",
        "INSERT INTO members (external_id, status, enrolled_at, updated_at, points_available, "
        "points_pending, lifetime_earned, points_redeemed, points_expired) "
        "VALUES ('m1', 'ACTIVE', :now, :now, 5, 40, 45, 0, 0)",
        "INSERT INTO purchases (order_id, member_id, channel, total_amount, currency, lines, "
        "occurred_at, created_at, points_awarded, points_refunded, status) VALUES "
        "('old', 1, 'IN_STORE', 5, 'USD', '[]', :month_ago, :now, 5, 0, 'COMPLETED'), "
        "('new', 1, 'IN_STORE', 40, 'USD', '[]', :days_ago, :now, 40, 0, 'COMPLETED')",
        "INSERT INTO ledger_transactions (kind, member_id, occurred_at, created_at, purchase_id, "
        "qualifying_points, qualifying_at) VALUES "
        "('EARN', 1, :month_ago, :now, 1, 5, :month_ago), "
        "('EARN', 1, :days_ago, :now, 2, 40, :days_ago)",
        "INSERT INTO ledger_entries (transaction_id, account, member_id, points, balance_after) "
        "VALUES (1, 'MEMBER_AVAILABLE', 1, 5, 5), (1, 'PROGRAM_ISSUANCE', NULL, -5, NULL), "
        "(2, 'MEMBER_PENDING', 1, 40, 40), (2, 'PROGRAM_ISSUANCE', NULL, -40, NULL)",
    ]
    moments = {
        "now": now,
        "month_ago": now - timedelta(days=30),
        "days_ago": now - timedelta(days=3),
    }
    try:
        async with engine.begin() as connection:
            for statement in statements:
                names = [n for n in moments if f":{n}" in statement]
                clause = text(statement).bindparams(
                    *(bindparam(n, moments[n], type_=UTCDateTime()) for n in names)
                )
                await connection.execute(clause)
    finally:
        await engine.dispose()


async def _lots_and_violations(url: str) -> tuple[list, list]:
    engine = create_async_engine(url)
    try:
        async with engine.connect() as connection:
            lots = (
                await connection.execute(
                    text(
                        "SELECT purchase_id, amount, state, releases_at IS NOT NULL "
                        "FROM point_lots ORDER BY id"
                    )
                )
            ).all()
            return [tuple(lot) for lot in lots], await verify(connection)
    finally:
        await engine.dispose()


def test_upgrading_a_ledger_with_history_gives_it_lots_that_verify(empty_database: str):
    migrate.upgrade(empty_database, "0003")
    asyncio.run(_seed_before_lots(empty_database))

    migrate.upgrade(empty_database)

    lots, violations = asyncio.run(_lots_and_violations(empty_database))
    assert lots == [(None, 5, "AVAILABLE", False), (2, 40, "PENDING", True)]
    assert violations == []


async def _referral_codes(url: str) -> list[str | None]:
    engine = create_async_engine(url)
    try:
        async with engine.connect() as connection:
            return list(
                (await connection.execute(text("SELECT referral_code FROM members"))).scalars()
            )
    finally:
        await engine.dispose()


def test_members_enrolled_before_referrals_get_a_referral_code(empty_database: str):
    migrate.upgrade(empty_database, "0003")
    asyncio.run(_seed_before_lots(empty_database))

    migrate.upgrade(empty_database)

    codes = asyncio.run(_referral_codes(empty_database))
    assert codes and all(code and len(code) == 12 for code in codes), codes


def test_downgrade_needs_a_revision_and_a_flag_to_drop_everything(empty_database: str):
    migrate.upgrade(empty_database)
    head = migrate.head_revision()

    missing = run_cli(empty_database, "db", "downgrade")
    assert missing.returncode == 2
    assert "Missing argument" in missing.stderr and "REVISION" in missing.stderr

    for target in (["base"], ["BASE"], ["--", f"-{int(head)}"], ["--", f"{head}-99"]):
        refused = run_cli(empty_database, "db", "downgrade", *target)
        assert refused.returncode == 2, (target, refused.stdout, refused.stderr)
        assert refused.stderr.startswith("Refusing to downgrade to ")
        assert "--yes-drop-everything" in refused.stderr
    assert asyncio.run(_revision(empty_database)) == head

    one_back = run_cli(empty_database, "db", "downgrade", "--", "-1")
    assert one_back.returncode == 0, one_back.stderr
    assert asyncio.run(_revision(empty_database)) == f"{int(head) - 1:04d}"

    dropped = run_cli(empty_database, "db", "downgrade", "base", "--yes-drop-everything")
    assert dropped.returncode == 0, dropped.stderr
    tables, _ = asyncio.run(_inspect(empty_database))
    assert tables <= {"alembic_version"}


async def _revision(url: str) -> str | None:
    engine = create_async_engine(url)
    try:
        async with engine.connect() as connection:
            return await migrate.current_revision(connection)
    finally:
        await engine.dispose()
