"""loyalty jobs run retention: idempotency keys, delivered webhook deliveries and their events,
and members closed for longer than the program allows, each when their time is up."""

from datetime import UTC, datetime, timedelta

from sqlalchemy import func, select, text

from loyalty.idempotency.models import IdempotencyKey
from loyalty.ids import decode_id
from loyalty.outbox.models import Event
from loyalty.privacy.retention import retention
from tests import test_webhooks as webhooks
from tests.cli import arun_cli
from tests.conftest import execute_sql
from tests.helpers import RECORD_PURCHASE, enroll, purchase_input, record
from tests.test_privacy_erasure import PERSONAL, dump
from tests.test_privacy_export import _member_with_history

receiver = webhooks.receiver
settings = webhooks.settings
"""The webhook tests' receiver, and their settings (local receivers allowed)."""

PROGRAM = """mutation($input: UpdateProgramInput!) { updateProgram(input: $input) {
  program { idempotencyRetentionDays } errors { code field } } }"""


PENDING = PROGRAM_RETENTION = """mutation($input: UpdateProgramInput!) {
  updateProgram(input: $input) { errors { code field } } }"""


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


def _older(db, table: str, days: int, where: str = "TRUE") -> str:
    """SQL that moves ``table.created_at`` ``days`` into the past for the rows ``where``."""
    shifted = (
        f"created_at - INTERVAL '{days} days'"
        if db.dialect == "postgresql"
        else f"datetime(created_at, '-{days} days')"
    )
    return f"UPDATE {table} SET created_at = {shifted} WHERE {where}"


async def _rows(db, sql: str) -> list[tuple]:
    async with db.read_engine.connect() as connection:
        return [tuple(row) for row in await connection.execute(text(sql))]


async def test_old_delivered_deliveries_and_their_events_go_pending_failed_and_recent_stay(
    admin, pos, db, settings, receiver, database_url, monkeypatch
):
    # given a delivered, a failed and (from a paused endpoint) a pending delivery, all 40 days
    # old, and a delivery made today
    made = await webhooks.create(admin, receiver.url, ["member.enrolled"])
    webhook_id = made["webhook"]["id"]
    delivered = await enroll(pos)
    assert (await record(pos, delivered, "10.00"))["errors"] == []  # events nobody receives
    await webhooks.drain(db, settings)
    receiver.script = [500, 500, 500]
    failed = await enroll(pos)
    await webhooks.drain(db, settings)
    await execute_sql(db, _older(db, "webhook_deliveries", 40))
    await execute_sql(db, _older(db, "events", 40))
    recent = await enroll(pos)
    await webhooks.drain(db, settings)
    paused = await admin.data(webhooks.UPDATE, input={"id": webhook_id, "active": False})
    assert paused["updateWebhook"]["errors"] == []
    pending = await enroll(pos)
    await webhooks.drain(db, settings)
    await execute_sql(db, _older(db, "webhook_deliveries", 40, "status = 'PENDING'"))
    await execute_sql(db, _older(db, "events", 40, f"member_id = {decode_id('Member', pending)}"))
    statuses = await _rows(
        db,
        "SELECT e.member_id, d.status FROM webhook_deliveries d JOIN events e "
        "ON e.id = d.event_id ORDER BY d.id",
    )
    members = [decode_id("Member", m) for m in (delivered, failed, recent, pending)]
    assert statuses == list(
        zip(members, ["DELIVERED", "FAILED", "DELIVERED", "PENDING"], strict=True)
    )
    events_before = await _rows(db, "SELECT member_id, type FROM events ORDER BY id")

    # when retention keeps deliveries 50 days, nothing goes; with the default 30, the old
    # delivered one goes, with the events no delivery names any more
    monkeypatch.setenv("LOYALTY_WEBHOOK_DELIVERY_RETENTION_DAYS", "50")
    kept = await arun_cli(database_url, "jobs", "run", "retention")
    assert kept.returncode == 0, kept.stderr
    assert "0 delivered webhook delivery(ies) and 0 event(s) older than 50 days" in kept.stdout
    report = await retention(db, now=datetime.now(UTC))

    # then
    assert (report.deliveries_deleted, report.delivery_days) == (1, 30)
    left = await _rows(
        db,
        "SELECT e.member_id, d.status FROM webhook_deliveries d JOIN events e "
        "ON e.id = d.event_id ORDER BY d.id",
    )
    assert left == statuses[1:]
    events_after = await _rows(db, "SELECT member_id, type FROM events ORDER BY id")
    assert [e for e in events_before if e[0] != members[0]] == events_after
    assert report.events_deleted == len(events_before) - len(events_after) >= 3
    listed = await webhooks.deliveries(admin, webhook_id)
    assert sorted(d["status"] for d in listed) == ["DELIVERED", "FAILED", "PENDING"]
    assert (await retention(db, now=datetime.now(UTC))).deliveries_deleted == 0


MEMBER_VIEW = """query($id: ID!) { member(id: $id) {
  externalId email phone firstName lastName status points { available pending }
  ledger(first: 5) { edges { node { kind points bucket } } } } }"""
UPDATE_MEMBER = """mutation($input: UpdateMemberInput!) { updateMember(input: $input) {
  errors { code field } } }"""
LIABILITY = "{ pointsLiability { total } }"
ERASURES = """{ auditLog(operation: "eraseMember") { edges { node {
  memberId actorKind targetIds summary } } } }"""


async def _close(admin, db, member_id: str, days_ago: int) -> None:
    closed = await admin.data(UPDATE_MEMBER, input={"id": member_id, "status": "CLOSED"})
    assert closed["updateMember"]["errors"] == []
    shifted = (
        f"closed_at - INTERVAL '{days_ago} days'"
        if db.dialect == "postgresql"
        else f"datetime(closed_at, '-{days_ago} days')"
    )
    await execute_sql(
        db,
        f"UPDATE members SET closed_at = {shifted} WHERE id = {decode_id('Member', member_id)}",
    )


async def test_members_closed_past_the_setting_are_erased_and_the_books_still_balance(
    admin, pos, db, database_url
):
    # given a member with a full history (available points, and pending ones from a purchase
    # made while points were pending) closed 40 days ago
    member_id, other_id = await _member_with_history(admin, pos)
    await admin.data(UPDATE_MEMBER, input={"id": member_id, "dateOfBirth": "1990-04-01"})
    await admin.data(PENDING, input={"pendingDays": 14})
    assert (await record(pos, member_id, "7.00"))["errors"] == []
    before = (await admin.data(MEMBER_VIEW, id=member_id))["member"]
    held = before["points"]["available"] + before["points"]["pending"]
    assert before["points"]["available"] > 0 and before["points"]["pending"] == 7
    await _close(admin, db, member_id, 40)
    # a member closed 20 days ago, one closed 40 days ago and reopened, one never closed
    recent = await enroll(admin, email="recent@example.com")
    await _close(admin, db, recent, 20)
    reopened = await enroll(admin, email="reopened@example.com")
    await _close(admin, db, reopened, 40)
    assert (await admin.data(UPDATE_MEMBER, input={"id": reopened, "status": "ACTIVE"}))[
        "updateMember"
    ]["errors"] == []
    liability = (await admin.data(LIABILITY))["pointsLiability"]["total"]
    before_dump = await dump(db)
    assert all(value in before_dump for value in PERSONAL)

    # off by default: nobody is erased
    off = await arun_cli(database_url, "jobs", "run", "retention")
    assert off.returncode == 0, off.stderr
    assert "closed members are kept (closedMemberRetentionDays is null)" in off.stdout
    assert (await admin.data(MEMBER_VIEW, id=member_id))["member"]["status"] == "CLOSED"

    # when members closed for more than 30 days are to be erased
    changed = await admin.data(PROGRAM_RETENTION, input={"closedMemberRetentionDays": 30})
    assert changed["updateProgram"]["errors"] == []
    ran = await arun_cli(database_url, "jobs", "run", "retention")

    # then the long-closed member is erased as eraseMember erases, its points forfeited
    assert ran.returncode == 0, ran.stderr
    assert f"1 member(s) closed for more than 30 days erased ({held} points forfeited)" in (
        ran.stdout
    )
    erased = (await admin.data(MEMBER_VIEW, id=member_id))["member"]
    assert erased["status"] == "ERASED" and erased["externalId"].startswith("erased-")
    assert [erased[f] for f in ("email", "phone", "firstName", "lastName")] == [None] * 4
    assert erased["points"] == {"available": 0, "pending": 0}
    forfeits = [
        (e["node"]["kind"], e["node"]["bucket"], e["node"]["points"])
        for e in erased["ledger"]["edges"][:2]
    ]
    assert sorted(forfeits) == [
        ("FORFEIT", "AVAILABLE", -before["points"]["available"]),
        ("FORFEIT", "PENDING", -7),
    ]
    after = await dump(db)
    for value in (*PERSONAL, before["externalId"]):
        assert value not in after, f"{value!r} survived the erasure"
    assert "bob@example.com" in after and "recent@example.com" in after
    assert "reopened@example.com" in after
    assert (await admin.data(LIABILITY))["pointsLiability"]["total"] == liability - held
    audit = [e["node"] for e in (await admin.data(ERASURES))["auditLog"]["edges"]]
    assert [(e["memberId"], e["actorKind"], e["targetIds"]) for e in audit] == [
        (member_id, "CLI", [member_id])
    ]
    assert audit[0]["summary"]["job"] == "retention"
    async with db.read_session() as session:
        told = await session.scalars(
            select(Event.member_id).where(Event.type.in_(["member.erased", "points.forfeited"]))
        )
        assert sorted(told) == [decode_id("Member", member_id)] * 3
    # the old external id and email can enroll again, as a new member
    again = await enroll(admin, before["externalId"], email="ann@example.com")
    assert again != member_id
    # the others are untouched, and a rerun erases nobody else
    for untouched in (recent, reopened, other_id):
        assert (await admin.data(MEMBER_VIEW, id=untouched))["member"]["email"] is not None
    assert (await retention(db, now=datetime.now(UTC))).members_erased == 0
    # (the db fixture runs ledger verify after the test)


async def test_a_member_closed_with_no_points_is_erased_without_a_forfeit(admin, db):
    member_id = await enroll(admin, email="zero@example.com")
    await _close(admin, db, member_id, 5)
    await admin.data(PROGRAM_RETENTION, input={"closedMemberRetentionDays": 4})
    report = await retention(db, now=datetime.now(UTC))
    assert (report.members_erased, report.points_forfeited, report.closed_days) == (1, 0, 4)
    erased = (await admin.data(MEMBER_VIEW, id=member_id))["member"]
    assert (erased["status"], erased["email"], erased["ledger"]["edges"]) == ("ERASED", None, [])
