"""loyalty jobs run retention: idempotency keys older than the program's setting go."""

from datetime import UTC, datetime, timedelta

from sqlalchemy import func, select

from loyalty.idempotency.models import IdempotencyKey
from tests.cli import arun_cli
from tests.conftest import execute_sql
from tests.helpers import RECORD_PURCHASE, enroll, purchase_input

PROGRAM = """mutation($input: UpdateProgramInput!) { updateProgram(input: $input) {
  program { idempotencyRetentionDays } errors { code field } } }"""


async def keys(db) -> int:
    async with db.read_engine.connect() as connection:
        return (
            await connection.execute(select(func.count()).select_from(IdempotencyKey))
        ).scalar_one()


async def test_keys_older_than_the_setting_are_deleted(admin, pos, db, database_url):
    member_id = await enroll(pos)
    old, new = purchase_input(member_id), purchase_input(member_id)
    for given in (old, new):
        assert (await pos.data(RECORD_PURCHASE, input=given))["recordPurchase"]["errors"] == []
    await execute_sql(
        db,
        "UPDATE idempotency_keys SET created_at = created_at - INTERVAL '40 days' "
        f"WHERE key = '{old['idempotencyKey']}'"
        if db.dialect == "postgresql"
        else "UPDATE idempotency_keys SET created_at = datetime(created_at, '-40 days') "
        f"WHERE key = '{old['idempotencyKey']}'",
    )
    assert await keys(db) == 2
    now = datetime.now(UTC).isoformat()
    ran = await arun_cli(database_url, "jobs", "run", "retention", "--now", now)
    assert ran.returncode == 0, ran.stderr
    assert "1 idempotency key(s) older than 30 days deleted" in ran.stdout
    assert await keys(db) == 1
    # A retry after its key is gone is a new request: the order is already recorded.
    replay = (await pos.data(RECORD_PURCHASE, input=old))["recordPurchase"]
    assert [e["code"] for e in replay["errors"]] == ["ALREADY_EXISTS"]
    # The recent key still replays.
    again = (await pos.data(RECORD_PURCHASE, input=new))["recordPurchase"]
    assert again["errors"] == []
    later = (datetime.now(UTC) + timedelta(days=31)).isoformat()
    assert (
        await arun_cli(database_url, "jobs", "run", "retention", "--now", later)
    ).returncode == 0
    assert await keys(db) == 0


async def test_the_setting_is_bounded(admin):
    changed = await admin.data(PROGRAM, input={"idempotencyRetentionDays": 7})
    assert changed["updateProgram"]["program"] == {"idempotencyRetentionDays": 7}
    for bad in (0, 4000):
        refused = await admin.data(PROGRAM, input={"idempotencyRetentionDays": bad})
        assert refused["updateProgram"]["errors"] == [
            {"code": "INVALID", "field": ["idempotencyRetentionDays"]}
        ]
