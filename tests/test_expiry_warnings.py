"""warn-expiring: one points.expiring event per lot entering expiryWarningDays, never twice."""

from datetime import UTC, datetime, timedelta

from sqlalchemy import select

from loyalty.ids import decode_id
from loyalty.ledger.expiry_warnings import warn_expiring
from loyalty.outbox.models import Event
from tests.cli import arun_cli
from tests.helpers import enroll, record

PROGRAM = """mutation($input: UpdateProgramInput!) { updateProgram(input: $input) {
  program { expiryWarningDays closedMemberRetentionDays } errors { code field } } }"""
CLOSE = """mutation($input: UpdateMemberInput!) { updateMember(input: $input) {
  errors { code field } } }"""


async def warnings(db) -> list[Event]:
    async with db.read_session() as session:
        return list(
            (
                await session.scalars(
                    select(Event).where(Event.type == "points.expiring").order_by(Event.id)
                )
            ).all()
        )


async def test_each_lot_is_announced_once_when_it_enters_the_window(admin, pos, db, database_url):
    # given points that expire 40 days after they are earned, a lot earned 20 days ago (it
    # expires in 20 days) and one earned now (in 40 days)
    assert (await admin.data(PROGRAM, input={"pointsExpireAfterDays": 40}))["updateProgram"][
        "errors"
    ] == []
    now = datetime.now(UTC)
    member_id = await enroll(pos)
    old = await record(pos, member_id, "20.00", occurredAt=(now - timedelta(days=20)).isoformat())
    new = await record(pos, member_id, "30.00", occurredAt=now.isoformat())
    assert old["errors"] == [] and new["errors"] == []

    # when the job runs now (expiryWarningDays defaults to 30)
    ran = await arun_cli(database_url, "jobs", "run", "warn-expiring", "--now", now.isoformat())

    # then only the lot expiring within 30 days is announced, with its points and expiry
    assert ran.returncode == 0, ran.stderr
    assert "1 lot(s) of 1 member(s) expiring within 30 days announced" in ran.stdout
    [event] = await warnings(db)
    assert event.member_id == decode_id("Member", member_id)
    data = event.data
    assert data["points"] == 20
    expires_at = datetime.fromisoformat(data["expiresAt"])
    assert abs(expires_at - (now + timedelta(days=20))) < timedelta(seconds=1)
    assert data["member"]["id"] == member_id
    assert data["member"]["points"]["available"] == 50
    assert datetime.fromisoformat(data["earnedAt"]) < now

    # a rerun, and a run a day later while the lot is still in the window, announce nothing
    assert (await warn_expiring(db, now=now)).lots == 0
    assert (await warn_expiring(db, now=now + timedelta(days=1))).lots == 0
    assert len(await warnings(db)) == 1

    # 15 days on the newer lot expires within 25 days: announced, once; the older one not again
    later = await warn_expiring(db, now=now + timedelta(days=15))
    assert (later.lots, later.members) == (1, 1)
    events = await warnings(db)
    assert [e.data["points"] for e in events] == [20, 30]
    assert (await warn_expiring(db, now=now + timedelta(days=16))).lots == 0


async def test_lots_outside_the_window_spent_expired_or_of_closed_members_are_not_announced(
    admin, pos, db
):
    assert (await admin.data(PROGRAM, input={"pointsExpireAfterDays": 100}))["updateProgram"][
        "errors"
    ] == []
    now = datetime.now(UTC)
    active = await enroll(pos)
    closed = await enroll(pos)
    for member_id in (active, closed):
        assert (await record(pos, member_id, "10.00"))["errors"] == []
    assert (await admin.data(CLOSE, input={"id": closed, "status": "CLOSED"}))["updateMember"][
        "errors"
    ] == []

    # 69 days on, the lots expire in 31 days: outside the 30-day window
    assert (await warn_expiring(db, now=now + timedelta(days=69))).lots == 0
    # past expiry: too late to warn (expire-points takes them)
    assert (await warn_expiring(db, now=now + timedelta(days=101))).lots == 0
    # in the window: only the active member's lot
    report = await warn_expiring(db, now=now + timedelta(days=71))
    assert (report.lots, report.members) == (1, 1)
    assert [e.member_id for e in await warnings(db)] == [decode_id("Member", active)]


async def test_warnings_off_with_zero_days_and_without_expiry(admin, pos, db):
    now = datetime.now(UTC)
    member_id = await enroll(pos)
    assert (await record(pos, member_id, "10.00"))["errors"] == []
    # points that never expire are never announced
    assert (await warn_expiring(db, now=now + timedelta(days=3650))).lots == 0
    changed = await admin.data(PROGRAM, input={"pointsExpireAfterDays": 10, "expiryWarningDays": 0})
    assert changed["updateProgram"]["program"]["expiryWarningDays"] == 0
    assert (await record(pos, member_id, "10.00"))["errors"] == []
    report = await warn_expiring(db, now=now + timedelta(days=5))
    assert (report.lots, report.days) == (0, 0)
    assert await warnings(db) == []


async def test_the_settings_are_validated_with_their_field_path(admin):
    defaults = await admin.data("{ program { expiryWarningDays closedMemberRetentionDays } }")
    assert defaults["program"] == {"expiryWarningDays": 30, "closedMemberRetentionDays": None}
    changed = await admin.data(
        PROGRAM, input={"expiryWarningDays": 7, "closedMemberRetentionDays": 365}
    )
    assert changed["updateProgram"] == {
        "program": {"expiryWarningDays": 7, "closedMemberRetentionDays": 365},
        "errors": [],
    }
    for field, bad in (
        ("expiryWarningDays", -1),
        ("expiryWarningDays", 366),
        ("expiryWarningDays", None),
        ("closedMemberRetentionDays", 0),
        ("closedMemberRetentionDays", 36501),
    ):
        refused = await admin.data(PROGRAM, input={field: bad})
        assert refused["updateProgram"] == {
            "program": None,
            "errors": [{"code": "INVALID", "field": [field]}],
        }, (field, bad)
    unchanged = await admin.data("{ program { expiryWarningDays closedMemberRetentionDays } }")
    assert unchanged["program"] == {"expiryWarningDays": 7, "closedMemberRetentionDays": 365}
    off = await admin.data(PROGRAM, input={"closedMemberRetentionDays": None})
    assert off["updateProgram"]["program"]["closedMemberRetentionDays"] is None
