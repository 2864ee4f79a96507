"""exportMemberData and `loyalty member export`: everything about one member, nothing of others."""

import json
from pathlib import Path

from tests.cli import arun_cli
from tests.helpers import create_reward, enroll, grant, key, record, redeem, refund_input
from tests.test_security import ISSUE_TOKEN, codes

EXPORT = """query($id: ID!) { exportMemberData(memberId: $id) { export errors { code field } } }"""

REFUND = """mutation($input: RefundPurchaseInput!) {
  refundPurchase(input: $input) { pointsClawedBack errors { code } } }"""

FEEDBACK = """mutation($input: SubmitFeedbackInput!) {
  submitFeedback(input: $input) { feedback { id } errors { code } } }"""

EVENT = """mutation($input: RecordEventInput!) { recordEvent(input: $input) { errors { code } } }"""

REFERRAL_CODE = """query($id: ID!) { member(id: $id) { referralCode } }"""

SECTIONS = {
    "version",
    "generatedAt",
    "member",
    "consents",
    "ledger",
    "pointLots",
    "purchases",
    "refunds",
    "redemptions",
    "events",
    "feedback",
    "referrals",
    "tierHistory",
    "audit",
}


async def _member_with_history(admin, pos) -> tuple[str, str]:
    """A member who referred someone, bought, got a refund, redeemed, recorded an event and
    gave feedback; and another member with a history of their own."""
    member_id = await enroll(
        admin, email="ann@example.com", phone="+15551230001", firstName="Ann", lastName="Lee"
    )
    code = (await admin.data(REFERRAL_CODE, id=member_id))["member"]["referralCode"]
    other_id = await enroll(admin, email="bob@example.com", firstName="Bob", referralCode=code)
    await record(pos, other_id, "30.00", orderId="BOB-ORDER-1")
    line = {
        "sku": "LATTE",
        "category": "coffee",
        "quantity": 2,
        "unitPrice": {"amount": "5.00", "currency": "USD"},
    }
    bought = await record(pos, member_id, "10.00", orderId="ANN-ORDER-1", lines=[line])
    refunded = await pos.data(
        REFUND,
        input=refund_input(bought["purchase"]["id"], "5.00"),
    )
    assert refunded["refundPurchase"]["errors"] == []
    await grant(admin, member_id, 100)
    reward = await create_reward(admin, costPoints=20)
    assert (await redeem(pos, member_id, reward))["errors"] == []
    event = {
        "idempotencyKey": key(),
        "memberId": member_id,
        "type": "app_installed",
        "attributes": {"store": "play"},
    }
    assert (await pos.data(EVENT, input=event))["recordEvent"]["errors"] == []
    feedback = {
        "idempotencyKey": key(),
        "memberId": member_id,
        "kind": "NPS",
        "score": 9,
        "comment": "Lovely coffee",
    }
    assert (await pos.data(FEEDBACK, input=feedback))["submitFeedback"]["errors"] == []
    return member_id, other_id


async def test_an_admin_exports_every_section_and_nothing_of_others(admin, pos):
    member_id, other_id = await _member_with_history(admin, pos)
    payload = (await admin.data(EXPORT, id=member_id))["exportMemberData"]
    assert payload["errors"] == []
    document = payload["export"]
    assert set(document) == SECTIONS
    assert document["member"]["id"] == member_id
    assert (document["member"]["email"], document["member"]["lastName"]) == (
        "ann@example.com",
        "Lee",
    )
    for section in (
        "ledger",
        "pointLots",
        "purchases",
        "refunds",
        "redemptions",
        "events",
        "feedback",
        "referrals",
        "audit",
    ):
        assert document[section], f"{section} is empty"
    assert document["purchases"][0]["lines"][0]["sku"] == "LATTE"
    assert document["events"][0]["attributes"] == {"store": "play"}
    assert document["feedback"][0]["comment"] == "Lovely coffee"
    assert document["referrals"][0]["refereeId"] == other_id
    assert {entry["kind"] for entry in document["ledger"]} >= {"EARN", "REDEEM", "ADJUST"}
    dumped = json.dumps(document)
    assert "bob@example.com" not in dumped and "BOB-ORDER-1" not in dumped and "Bob" not in dumped


async def test_a_member_exports_itself_only(admin, pos, app_client):
    member_id, other_id = await _member_with_history(admin, pos)
    issued = await app_client.data(ISSUE_TOKEN, input={"memberId": member_id})
    member = app_client.as_(issued["issueMemberToken"]["token"])
    own = (await member.data(EXPORT, id=member_id))["exportMemberData"]
    assert own["errors"] == [] and own["export"]["member"]["id"] == member_id
    body = await member(EXPORT, id=other_id)
    assert codes(body) == ["FORBIDDEN"] and "bob@" not in json.dumps(body)
    for caller in (pos, app_client):
        assert codes(await caller(EXPORT, id=member_id)) == ["FORBIDDEN"]


async def test_an_unknown_member_is_not_found(admin):
    for unknown in ("TWVtYmVyOjk5OTk5", "nonsense"):
        payload = (await admin.data(EXPORT, id=unknown))["exportMemberData"]
        assert payload == {"export": None, "errors": [{"code": "NOT_FOUND", "field": ["memberId"]}]}


async def test_the_cli_writes_the_same_document(admin, pos, database_url, tmp_path: Path):
    member_id, _ = await _member_with_history(admin, pos)
    out = tmp_path / "ann.json"
    done = await arun_cli(database_url, "member", "export", member_id, "--out", str(out))
    assert done.returncode == 0, done.stderr
    document = json.loads(out.read_text())
    assert set(document) == SECTIONS and document["member"]["email"] == "ann@example.com"
    missing = await arun_cli(database_url, "member", "export", "TWVtYmVyOjk5OTk5", "--out", "x")
    assert missing.returncode == 2 and "error:" in missing.stderr
