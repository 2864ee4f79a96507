"""submitFeedback, Member.feedback and the admin's feedback list, on both databases."""

import asyncio
from datetime import UTC, datetime, timedelta

from tests.helpers import enroll, key, record

SUBMIT = """
mutation Submit($input: SubmitFeedbackInput!) {
  submitFeedback(input: $input) {
    feedback { id kind score comment createdAt purchase { id } member { id } }
    errors { code field message }
  }
}
"""

ISSUE_TOKEN = """mutation Issue($input: IssueMemberTokenInput!) {
  issueMemberToken(input: $input) { token } }"""

LIST = """
query List($kind: FeedbackKind, $min: Int, $max: Int, $from: DateTime, $to: DateTime,
           $first: Int, $after: String) {
  feedback(kind: $kind, minScore: $min, maxScore: $max, from: $from, to: $to,
           first: $first, after: $after) {
    edges { node { kind score member { id } } }
    pageInfo { hasNextPage endCursor }
  }
}
"""

MEMBER_FEEDBACK = """
query Mine($id: ID!) { member(id: $id) { feedback(first: 10) { edges { node { kind score } } } } }
"""

MEMBERS_FEEDBACK = """
query All { members(first: 10) { edges { node { id feedback(first: 1) {
  edges { node { score } } pageInfo { hasNextPage } } } } } }
"""


AUDIT = """query Audit($operation: String) {
  auditLog(first: 1, operation: $operation) { edges { node { summary } } } }"""


def submission(member_id: str, kind: str = "NPS", score: int = 9, **more: object) -> dict:
    return {"idempotencyKey": key(), "memberId": member_id, "kind": kind, "score": score, **more}


async def submit(client, input: dict) -> dict:
    return (await client.data(SUBMIT, input=input))["submitFeedback"]


async def token_for(app_client, member_id: str):
    data = await app_client.data(ISSUE_TOKEN, input={"memberId": member_id})
    return app_client.as_(data["issueMemberToken"]["token"])


async def test_scores_are_stored_once_per_purchase_and_per_day(admin, pos):
    member = await enroll(pos)
    purchase = (await record(pos, member))["purchase"]["id"]

    nps = await submit(pos, submission(member, "NPS", 10, purchaseId=purchase, comment=" Great "))
    assert nps["errors"] == []
    assert nps["feedback"]["kind"] == "NPS"
    assert nps["feedback"]["comment"] == "Great"
    assert nps["feedback"]["purchase"]["id"] == purchase
    csat = await submit(pos, submission(member, "CSAT", 4, purchaseId=purchase))
    assert csat["errors"] == []

    again = await submit(pos, submission(member, "NPS", 3, purchaseId=purchase))
    assert again["feedback"] is None
    assert again["errors"][0]["code"] == "ALREADY_EXISTS"

    today = await submit(pos, submission(member, "NPS", 7))
    assert today["errors"] == [] and today["feedback"]["purchase"] is None
    twice_today = await submit(pos, submission(member, "NPS", 8))
    assert twice_today["errors"][0]["code"] == "ALREADY_EXISTS"
    assert (await submit(pos, submission(member, "CSAT", 5)))["errors"] == []

    listed = await admin.data(MEMBER_FEEDBACK, id=member)
    scores = [e["node"]["score"] for e in listed["member"]["feedback"]["edges"]]
    assert scores == [5, 7, 4, 10]


async def test_a_retry_with_the_same_key_replays_and_a_different_input_conflicts(pos):
    member = await enroll(pos)
    input = submission(member, "CSAT", 5)
    first = await submit(pos, input)
    replay = await submit(pos, input)
    assert replay["errors"] == [] and replay["feedback"]["id"] == first["feedback"]["id"]
    conflict = await submit(pos, {**input, "score": 4})
    assert conflict["errors"][0]["code"] == "IDEMPOTENCY_CONFLICT"


async def test_bad_input_is_invalid_or_not_found(pos):
    member = await enroll(pos)
    other = await enroll(pos)
    others_purchase = (await record(pos, other))["purchase"]["id"]
    cases = [
        (submission(member, "NPS", 11), "INVALID", ["score"]),
        (submission(member, "NPS", -1), "INVALID", ["score"]),
        (submission(member, "CSAT", 0), "INVALID", ["score"]),
        (submission(member, "CSAT", 6), "INVALID", ["score"]),
        (submission(member, comment="x" * 2001), "INVALID", ["comment"]),
        (submission(member, comment="bad\x00text"), "INVALID", ["comment"]),
        (submission(member, purchaseId=others_purchase), "NOT_FOUND", ["purchaseId"]),
        (submission(member, purchaseId="nonsense"), "NOT_FOUND", ["purchaseId"]),
        (submission("nonsense"), "NOT_FOUND", ["memberId"]),
    ]
    for input, code, field in cases:
        result = await submit(pos, input)
        assert result["feedback"] is None, input
        assert (result["errors"][0]["code"], result["errors"][0]["field"]) == (code, field), input
    assert (await submit(pos, submission(member, comment="y" * 2000)))["errors"] == []


async def test_a_member_token_submits_and_reads_only_for_itself(pos, app_client):
    member = await enroll(pos)
    other = await enroll(pos)
    as_member = await token_for(app_client, member)

    assert (await submit(as_member, submission(member, "CSAT", 3)))["errors"] == []
    refused = await as_member(SUBMIT, input=submission(other, "CSAT", 3))
    assert refused["data"] is None
    assert refused["errors"][0]["extensions"]["code"] == "FORBIDDEN"
    mine = await as_member.data(MEMBER_FEEDBACK, id=member)
    assert [e["node"]["score"] for e in mine["member"]["feedback"]["edges"]] == [3]
    listed = await as_member(LIST)
    assert listed["errors"][0]["extensions"]["code"] == "FORBIDDEN"
    for caller in (pos, app_client):
        body = await caller(LIST)
        assert body["errors"][0]["extensions"]["code"] == "FORBIDDEN"
    app_submit = await app_client(SUBMIT, input=submission(member, "NPS", 3))
    assert app_submit["errors"][0]["extensions"]["code"] == "FORBIDDEN"


async def test_the_admin_list_filters_and_pages(admin, pos):
    first, second = await enroll(pos), await enroll(pos)
    for member, kind, score in [
        (first, "NPS", 2),
        (first, "CSAT", 5),
        (second, "NPS", 9),
        (second, "CSAT", 1),
    ]:
        assert (await submit(pos, submission(member, kind, score)))["errors"] == []

    async def scores(**variables: object) -> list[int]:
        data = await admin.data(LIST, **variables)
        return [edge["node"]["score"] for edge in data["feedback"]["edges"]]

    assert await scores() == [1, 9, 5, 2]
    assert await scores(kind="NPS") == [9, 2]
    assert await scores(min=2, max=5) == [5, 2]
    now = datetime.now(UTC)
    assert await scores(**{"from": (now - timedelta(hours=1)).isoformat()}) == [1, 9, 5, 2]
    assert await scores(to=(now - timedelta(hours=1)).isoformat()) == []
    page = await admin.data(LIST, first=3)
    assert page["feedback"]["pageInfo"]["hasNextPage"] is True
    rest = await admin.data(LIST, first=3, after=page["feedback"]["pageInfo"]["endCursor"])
    assert [e["node"]["score"] for e in rest["feedback"]["edges"]] == [2]


async def test_a_page_of_members_reads_feedback_in_one_batch(admin, pos):
    members = [await enroll(pos) for _ in range(3)]
    for member in members:
        await submit(pos, submission(member, "NPS", 6))
        await submit(pos, submission(member, "CSAT", 2))
    data = await admin.data(MEMBERS_FEEDBACK)
    for edge in data["members"]["edges"]:
        node = edge["node"]
        assert [e["node"]["score"] for e in node["feedback"]["edges"]] == [2]
        assert node["feedback"]["pageInfo"]["hasNextPage"] is True


async def test_the_audit_log_keeps_the_score_but_not_the_comment(admin, pos):
    member = await enroll(pos)
    await submit(pos, submission(member, "CSAT", 2, comment="call me on +14155550100"))
    data = await admin.data(AUDIT, operation="submitFeedback")
    summary = data["auditLog"]["edges"][0]["node"]["summary"]
    assert summary["score"] == 2 and summary["kind"] == "CSAT"
    assert summary["comment"] == "[redacted]"


async def test_two_concurrent_submissions_for_one_purchase_store_one(pos):
    member = await enroll(pos)
    purchase = (await record(pos, member))["purchase"]["id"]
    results = await asyncio.gather(
        *(submit(pos, submission(member, "NPS", 8, purchaseId=purchase)) for _ in range(4))
    )
    codes = sorted(r["errors"][0]["code"] if r["errors"] else "OK" for r in results)
    assert codes == ["ALREADY_EXISTS"] * 3 + ["OK"]
