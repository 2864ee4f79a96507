"""eraseMember: every personal value goes, the books still balance, nothing else changes."""

import json

from sqlalchemy import MetaData, select

from loyalty.db import Database
from tests.helpers import create_reward, enroll, key, record, redeem
from tests.test_privacy_export import _member_with_history
from tests.test_security import ISSUE_TOKEN, codes

ERASE = """mutation($input: EraseMemberInput!) {
  eraseMember(input: $input) {
    member { id externalId email phone firstName lastName dateOfBirth status referralCode
             points { available pending } }
    errors { code field }
  }
}"""

LIABILITY = "{ pointsLiability { total } }"
LEDGER = """query($id: ID!) { member(id: $id) { ledger(first: 1) { edges { node { kind points
  reason } } } } }"""
BIRTHDAY = """mutation($input: UpdateMemberInput!) { updateMember(input: $input) {
  member { id } errors { code field } } }"""

PERSONAL = (
    "ann@example.com",
    "+15551230001",
    "Ann",
    "Lee",
    "1990-04-01",
    "LATTE",
    "Lovely coffee",
    '"store": "play"',
)


async def dump(db: Database) -> str:
    """Every row of every table, as text: what a database dump would reveal."""
    metadata = MetaData()
    async with db.read_engine.connect() as connection:
        await connection.run_sync(metadata.reflect)
        rows = []
        for table in metadata.sorted_tables:
            result = await connection.execute(select(table))
            rows.extend(json.dumps(list(row), default=str) for row in result)
    return "\n".join(rows)


def erase_input(member_id: str, idempotency_key: str | None = None) -> dict:
    return {
        "idempotencyKey": idempotency_key or key(),
        "memberId": member_id,
        "reason": "GDPR request 2026-118",
    }


async def test_erasure_removes_every_personal_value_and_keeps_the_books(admin, pos, db):
    member_id, other_id = await _member_with_history(admin, pos)
    await admin.data(BIRTHDAY, input={"id": member_id, "dateOfBirth": "1990-04-01"})
    external_id = (
        await admin.data(
            "query($id: ID!) { member(id: $id) { externalId points { available pending } } }",
            id=member_id,
        )
    )["member"]
    liability_before = (await admin.data(LIABILITY))["pointsLiability"]["total"]
    held = external_id["points"]["available"] + external_id["points"]["pending"]
    assert held > 0
    before = await dump(db)
    assert all(value in before for value in PERSONAL)

    payload = (await admin.data(ERASE, input=erase_input(member_id)))["eraseMember"]
    assert payload["errors"] == []
    erased = payload["member"]
    assert erased["status"] == "ERASED"
    assert [
        erased[f]
        for f in ("email", "phone", "firstName", "lastName", "dateOfBirth", "referralCode")
    ] == [None] * 6
    assert erased["externalId"].startswith("erased-")
    assert erased["points"] == {"available": 0, "pending": 0}

    after = await dump(db)
    for value in (*PERSONAL, external_id["externalId"]):
        assert value not in after, f"{value!r} survived the erasure"
    assert "bob@example.com" in after  # the other member is untouched
    assert "member.erased" in after  # webhook receivers are told to erase too
    liability_after = (await admin.data(LIABILITY))["pointsLiability"]["total"]
    assert liability_after == liability_before - held
    newest = (await admin.data(LEDGER, id=member_id))["member"]["ledger"]["edges"][0]["node"]
    assert (newest["kind"], newest["points"]) == ("FORFEIT", -external_id["points"]["available"])
    assert other_id  # (the db fixture runs ledger verify after the test)


async def test_erasure_is_idempotent_and_recorded_without_the_values(admin, pos):
    member_id = await enroll(admin, email="zoe@example.com", firstName="Zoe")
    given = erase_input(member_id)
    first = (await admin.data(ERASE, input=given))["eraseMember"]
    again = (await admin.data(ERASE, input=given))["eraseMember"]
    assert first == again and first["member"]["status"] == "ERASED"
    other_key = (await admin.data(ERASE, input=erase_input(member_id)))["eraseMember"]
    assert other_key["errors"] == [] and other_key["member"] == first["member"]
    audit = await admin.data(
        '{ auditLog(operation: "eraseMember") { edges { node { summary memberId } } } }'
    )
    entries = [edge["node"] for edge in audit["auditLog"]["edges"]]
    assert len(entries) == 2 and entries[0]["memberId"] == member_id
    assert entries[0]["summary"]["reason"] == "GDPR request 2026-118"
    assert "zoe@example.com" not in json.dumps(entries) and "Zoe" not in json.dumps(entries)


async def test_an_erased_member_can_neither_earn_redeem_change_nor_sign_in(admin, pos, app_client):
    member_id = await enroll(admin, externalId="card-erase-me")
    issued = await app_client.data(ISSUE_TOKEN, input={"memberId": member_id})
    token = app_client.as_(issued["issueMemberToken"]["token"])
    assert (await token.post("{ me { id } }")).status_code == 200
    reward = await create_reward(admin, costPoints=1)
    await admin.data(ERASE, input=erase_input(member_id))

    assert [e["code"] for e in (await record(pos, member_id))["errors"]] == ["MEMBER_INACTIVE"]
    assert [e["code"] for e in (await redeem(pos, member_id, reward))["errors"]] == [
        "MEMBER_INACTIVE"
    ]
    again = await app_client.data(ISSUE_TOKEN, input={"memberId": member_id})
    assert again["issueMemberToken"]["token"] is None
    assert (await token.post("{ me { id } }")).status_code == 401
    changed = await admin.data(BIRTHDAY, input={"id": member_id, "status": "ACTIVE"})
    assert [e["code"] for e in changed["updateMember"]["errors"]] == ["MEMBER_INACTIVE"]
    # the old external id is free to enroll again, as a new member
    assert await enroll(admin, "card-erase-me") != member_id


async def test_erasure_input_errors(admin, pos):
    unknown = (await admin.data(ERASE, input=erase_input("TWVtYmVyOjk5OTk5")))["eraseMember"]
    assert unknown == {"member": None, "errors": [{"code": "NOT_FOUND", "field": ["memberId"]}]}
    member_id = await enroll(admin)
    blank = {**erase_input(member_id), "reason": "  "}
    refused = (await admin.data(ERASE, input=blank))["eraseMember"]
    assert refused == {"member": None, "errors": [{"code": "INVALID", "field": ["reason"]}]}
    status = await admin.data(BIRTHDAY, input={"id": member_id, "status": "ERASED"})
    assert [e["code"] for e in status["updateMember"]["errors"]] == ["INVALID"]
    assert codes(await pos(ERASE, input=erase_input(member_id))) == ["FORBIDDEN"]
