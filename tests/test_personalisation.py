"""Segment-limited earning rules and rewards, and feedback as a rewardable event, end to end
on both databases."""

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import event

from loyalty.db import Database
from loyalty.events.birthdays import birthday_bonus
from tests.helpers import create_reward, enroll, grant, key, purchase_input, redeem

ERRORS = "errors { code field message }"
CREATE_SEGMENT = f"""mutation($input: CreateSegmentInput!) {{
  createSegment(input: $input) {{ segment {{ id }} {ERRORS} }} }}"""
UPDATE_SEGMENT = f"""mutation($input: UpdateSegmentInput!) {{
  updateSegment(input: $input) {{ segment {{ id }} {ERRORS} }} }}"""
DELETE_SEGMENT = f"""mutation($input: DeleteSegmentInput!) {{
  deleteSegment(input: $input) {{ segment {{ id }} {ERRORS} }} }}"""
CREATE_RULE = f"""mutation($input: CreateEarningRuleInput!) {{
  createEarningRule(input: $input) {{
    earningRule {{ id conditions {{ segmentIds }} }} {ERRORS} }} }}"""
ARCHIVE_RULE = f"""mutation($input: ArchiveEarningRuleInput!) {{
  archiveEarningRule(input: $input) {{ earningRule {{ id }} {ERRORS} }} }}"""
RECORD = f"""mutation($input: RecordPurchaseInput!) {{
  recordPurchase(input: $input) {{ pointsAwarded {ERRORS} }} }}"""
PREVIEW = f"""query($input: PreviewPurchaseInput!) {{
  previewPurchase(input: $input) {{ pointsAwarded {ERRORS} }} }}"""
UPDATE_REWARD = f"""mutation($input: UpdateRewardInput!) {{
  updateReward(input: $input) {{ reward {{ id segmentIds }} {ERRORS} }} }}"""
CATALOG = """{ rewards(first: 10) { edges { node { name segmentIds ineligibleReason } } } }"""
ISSUE_TOKEN = """mutation($input: IssueMemberTokenInput!) {
  issueMemberToken(input: $input) { token } }"""
SUBMIT_FEEDBACK = f"""mutation($input: SubmitFeedbackInput!) {{
  submitFeedback(input: $input) {{ feedback {{ id }} {ERRORS} }} }}"""
RECORD_EVENT = f"""mutation($input: RecordEventInput!) {{
  recordEvent(input: $input) {{ pointsAwarded {ERRORS} }} }}"""
POINTS = """query($id: ID!) { member(id: $id) { points { available } } }"""


async def ok(client: Any, document: str, field: str, **variables: Any) -> dict[str, Any]:
    payload = (await client.data(document, **variables))[field]
    assert payload["errors"] == [], payload["errors"]
    return payload


async def segment(admin: Any, **filter: Any) -> str:
    created = await ok(
        admin, CREATE_SEGMENT, "createSegment", input={"name": "s", "filter": filter}
    )
    return created["segment"]["id"]


async def rule(admin: Any, bonus: str, **conditions: Any) -> str:
    created = await ok(
        admin,
        CREATE_RULE,
        "createEarningRule",
        input={
            "name": f"bonus {bonus}",
            "effect": {"kind": "FIXED_BONUS", "value": bonus},
            "conditions": conditions,
        },
    )
    return created["earningRule"]["id"]


async def buy(pos: Any, member: str) -> int:
    payload = await ok(pos, RECORD, "recordPurchase", input=purchase_input(member, "10.00"))
    return payload["pointsAwarded"]


async def points(client: Any, member: str) -> int:
    return (await client.data(POINTS, id=member))["member"]["points"]["available"]


@contextmanager
def statements(db: Database) -> Iterator[list[str]]:
    """The SQL statements run while the block runs."""
    seen: list[str] = []

    def count(conn, cursor, statement, parameters, context, executemany):  # type: ignore[no-untyped-def]
        seen.append(statement)

    engine = db.write_engine.sync_engine
    event.listen(engine, "before_cursor_execute", count)
    try:
        yield seen
    finally:
        event.remove(engine, "before_cursor_execute", count)


async def test_a_rule_limited_to_a_segment_rewards_its_members_only(admin, pos):
    rich, poor = await enroll(pos), await enroll(pos)
    await grant(admin, rich, 100)
    big = await segment(admin, minAvailablePoints=100)
    created = await ok(
        admin,
        CREATE_RULE,
        "createEarningRule",
        input={
            "name": "big spenders",
            "effect": {"kind": "FIXED_BONUS", "value": "50"},
            "conditions": {"segmentIds": [big, big]},
        },
    )
    assert created["earningRule"]["conditions"]["segmentIds"] == [big]

    quote = {k: v for k, v in purchase_input(rich, "10.00").items() if k != "idempotencyKey"}
    preview = await ok(pos, PREVIEW, "previewPurchase", input=quote)
    assert preview["pointsAwarded"] == 60
    assert await buy(pos, rich) == 60
    assert await buy(pos, poor) == 10

    # The segment is read as of the purchase: a new filter applies to the next one at once.
    await ok(
        admin,
        UPDATE_SEGMENT,
        "updateSegment",
        input={"id": big, "filter": {"minAvailablePoints": 5}},
    )
    assert await buy(pos, poor) == 60


async def test_segment_checks_cost_the_same_statements_whatever_the_segments(admin, pos, db):
    member = await enroll(pos)
    await grant(admin, member, 100)
    await rule(admin, "5", segmentIds=[await segment(admin, minAvailablePoints=1)])
    await buy(pos, member)  # loads the rule book
    with statements(db) as one_segment:
        assert await buy(pos, member) == 15

    others = [await segment(admin, minAvailablePoints=1_000_000 + i) for i in range(4)]
    await rule(admin, "7", segmentIds=others[:2])
    await rule(admin, "9", segmentIds=others[2:], channels=["IN_STORE"])
    await buy(pos, member)
    with statements(db) as five_segments:
        assert await buy(pos, member) == 15
    assert len(five_segments) == len(one_segment)
    checks = [s for s in five_segments if s.count("members.id =") and "CASE WHEN" in s]
    assert len(checks) == 1


async def test_a_reward_limited_to_a_segment(admin, pos, app_client):
    insider, outsider = await enroll(pos), await enroll(pos)
    for member in (insider, outsider):
        await grant(admin, member, 500)
    vip = await segment(admin, channels=["ONLINE"])
    await ok(pos, RECORD, "recordPurchase", input=purchase_input(insider, "1.00", channel="ONLINE"))
    reward = await create_reward(admin, name="VIP lounge", costPoints=100, segmentIds=[vip])

    token = await app_client.data(ISSUE_TOKEN, input={"memberId": outsider})
    phone = app_client.as_(token["issueMemberToken"]["token"])
    catalog = (await phone.data(CATALOG))["rewards"]["edges"]
    assert catalog == [
        {"node": {"name": "VIP lounge", "segmentIds": [vip], "ineligibleReason": "NOT_IN_SEGMENT"}}
    ]
    refused = await redeem(pos, outsider, reward)
    assert [e["code"] for e in refused["errors"]] == ["NOT_IN_SEGMENT"]
    assert await points(admin, outsider) == 500

    redeemed = await redeem(pos, insider, reward)
    assert redeemed["errors"] == []
    assert redeemed["member"]["points"]["available"] == 401

    opened = await ok(admin, UPDATE_REWARD, "updateReward", input={"id": reward, "segmentIds": []})
    assert opened["reward"]["segmentIds"] == []
    assert (await redeem(pos, outsider, reward))["errors"] == []


async def test_a_named_segment_cannot_be_deleted_and_unknown_segments_are_not_found(admin, pos):
    named = await segment(admin)
    rule_id = await rule(admin, "5", segmentIds=[named])
    reward = await create_reward(admin, segmentIds=[named])
    refused = (await admin.data(DELETE_SEGMENT, input={"id": named}))["deleteSegment"]
    assert [(e["code"], e["field"]) for e in refused["errors"]] == [("INVALID", ["id"])]
    assert "earning rule" in refused["errors"][0]["message"]
    assert "reward" in refused["errors"][0]["message"]

    await ok(admin, ARCHIVE_RULE, "archiveEarningRule", input={"id": rule_id})
    await ok(admin, UPDATE_REWARD, "updateReward", input={"id": reward, "segmentIds": None})
    await ok(admin, DELETE_SEGMENT, "deleteSegment", input={"id": named})

    bad_rule = await admin.data(
        CREATE_RULE,
        input={
            "name": "x",
            "effect": {"kind": "FIXED_BONUS", "value": "1"},
            "conditions": {"segmentIds": [named]},
        },
    )
    errors = bad_rule["createEarningRule"]["errors"]
    assert [(e["code"], e["field"]) for e in errors] == [
        ("NOT_FOUND", ["conditions", "segmentIds"])
    ]
    bad_reward = await admin.data(
        """mutation($input: CreateRewardInput!) { createReward(input: $input) {
        reward { id } errors { code field } } }""",
        input={"name": "x", "costPoints": 1, "segmentIds": ["nonsense"]},
    )
    assert bad_reward["createReward"] == {
        "reward": None,
        "errors": [{"code": "NOT_FOUND", "field": ["segmentIds"]}],
    }


async def test_feedback_is_an_event_rules_can_reward(admin, pos):
    member = await enroll(pos)
    await rule(admin, "25", eventType="feedback")
    submitted = {"idempotencyKey": key(), "memberId": member, "kind": "NPS", "score": 3}
    await ok(pos, SUBMIT_FEEDBACK, "submitFeedback", input=submitted)
    assert await points(admin, member) == 25
    # A retry replays the first result: no second bonus.
    await ok(pos, SUBMIT_FEEDBACK, "submitFeedback", input=submitted)
    assert await points(admin, member) == 25

    faked = await pos.data(
        RECORD_EVENT, input={"idempotencyKey": key(), "memberId": member, "type": "feedback"}
    )
    assert [(e["code"], e["field"]) for e in faked["recordEvent"]["errors"]] == [
        ("INVALID", ["type"])
    ]


async def test_a_birthday_rule_limited_to_a_segment(admin, pos, db):
    born = datetime.now(UTC).date().replace(year=1992).isoformat()  # a leap year
    fan, other = await enroll(pos, dateOfBirth=born), await enroll(pos, dateOfBirth=born)
    await grant(admin, fan, 20)
    fans = await segment(admin, minAvailablePoints=20)
    await rule(admin, "30", eventType="birthday", segmentIds=[fans])
    report = await birthday_bonus(db, now=datetime.now(UTC))
    assert report.members == 1
    assert (await points(admin, fan), await points(admin, other)) == (50, 0)
