"""Segments, RFM scores and consents, on both databases, against hand-checked fixtures."""

from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any

import pytest

from loyalty.segments.rfm import rfm
from tests.cli import arun_cli
from tests.helpers import enroll, key, record

CREATE_TIER = """mutation T($input: CreateTierInput!) {
  createTier(input: $input) { tier { id } errors { code field } } }"""
SET_TIER = """mutation S($input: SetMemberTierInput!) {
  setMemberTier(input: $input) { errors { code field } } }"""
UPDATE_PROGRAM = """mutation P($input: UpdateProgramInput!) {
  updateProgram(input: $input) { errors { code field } } }"""
REFUND = """mutation R($input: RefundPurchaseInput!) {
  refundPurchase(input: $input) { errors { code field } } }"""
UPDATE_MEMBER = """mutation U($input: UpdateMemberInput!) {
  updateMember(input: $input) {
    member { id consents { marketingEmail marketingSms marketingPush updatedAt } }
    errors { code field message } } }"""
ISSUE_TOKEN = """mutation Issue($input: IssueMemberTokenInput!) {
  issueMemberToken(input: $input) { token } }"""

CREATE = """mutation C($input: CreateSegmentInput!) {
  createSegment(input: $input) {
    segment { id name description memberCount filter {
      tierIds minAvailablePoints maxAvailablePoints minLifetimeSpend { amount currency }
      purchasedWithinDays notPurchasedForDays minPurchases purchasesWithinDays channels
      enrolledAfter enrolledBefore minRecency minFrequency minMonetary marketingConsent } }
    errors { code field message } } }"""
UPDATE = """mutation U($input: UpdateSegmentInput!) {
  updateSegment(input: $input) {
    segment { id name memberCount } errors { code field message } } }"""
DELETE = """mutation D($input: DeleteSegmentInput!) {
  deleteSegment(input: $input) { segment { id name } errors { code field message } } }"""
SEGMENT = """query S($id: ID!, $after: String) { segment(id: $id) {
  name memberCount members(first: 2, after: $after) {
    edges { node { id } } pageInfo { hasNextPage endCursor } } } }"""
SEGMENTS = """{ segments(first: 10) { edges { node { id name } } } }"""
MEMBERS_IN = """query M($segmentId: ID, $search: String) {
  members(first: 50, segmentId: $segmentId, search: $search) { edges { node { id } } } }"""
RFM = """query R($id: ID!) { member(id: $id) {
  rfm { recency frequency monetary computedAt } } }"""


async def ok(client: Any, document: str, field: str, **variables: Any) -> dict[str, Any]:
    payload = (await client.data(document, **variables))[field]
    assert payload["errors"] == [], payload["errors"]
    return payload


async def create_segment(admin: Any, filter: dict[str, Any], name: str = "s") -> dict[str, Any]:
    return (await ok(admin, CREATE, "createSegment", input={"name": name, "filter": filter}))[
        "segment"
    ]


async def members_of(admin: Any, filter: dict[str, Any]) -> set[str]:
    """The members a new segment with ``filter`` holds, by its members and by its count."""
    segment = await create_segment(admin, filter)
    edges = (await admin.data(MEMBERS_IN, segmentId=segment["id"]))["members"]["edges"]
    found = {edge["node"]["id"] for edge in edges}
    assert segment["memberCount"] == len(found)
    return found


def ago(days: float) -> str:
    return (datetime.now(UTC) - timedelta(days=days)).isoformat()


@pytest.fixture
async def world(admin: Any, pos: Any) -> SimpleNamespace:
    """Five members with known histories (points: 1 per 1.00):

    a: 100.00 in store 10 days ago, 50.00 online 2 days ago; email consent.   150 points
    b: 300.00 in store 200 days ago, 100.00 of it refunded.                    200 points
    c: nothing bought; Gold tier.                                                0 points
    d: 20.00 in the app 40 days ago, refunded in full (counts as no purchase).  0 points
    e: 10.00 in store 5 days ago, then suspended (never in a segment).          10 points
    a and b enrolled before ``middle``, c, d and e after it.
    """
    await ok(admin, UPDATE_PROGRAM, "updateProgram", input={"maxBackdateDays": 3650})
    base = {"name": "Base", "rank": 0, "threshold": 0, "multiplier": "1"}
    await ok(admin, CREATE_TIER, "createTier", input=base)
    gold = {"name": "Gold", "rank": 1, "threshold": 1_000_000, "multiplier": "1"}
    gold_id = (await ok(admin, CREATE_TIER, "createTier", input=gold))["tier"]["id"]
    a, b = await enroll(pos), await enroll(pos)
    middle = datetime.now(UTC)
    c, d, e = await enroll(pos), await enroll(pos), await enroll(pos)
    await record(pos, a, "100.00", occurredAt=ago(10))
    await record(pos, a, "50.00", channel="ONLINE", occurredAt=ago(2))
    b_purchase = (await record(pos, b, "300.00", occurredAt=ago(200)))["purchase"]["id"]
    d_purchase = (await record(pos, d, "20.00", channel="MOBILE_APP", occurredAt=ago(40)))[
        "purchase"
    ]["id"]
    await record(pos, e, "10.00", occurredAt=ago(5))
    for purchase, amount in ((b_purchase, "100.00"), (d_purchase, "20.00")):
        refund = {"amount": amount, "currency": "USD"}
        await ok(
            pos,
            REFUND,
            "refundPurchase",
            input={"idempotencyKey": key(), "purchaseId": purchase, "amount": refund},
        )
    await ok(
        admin, SET_TIER, "setMemberTier", input={"memberId": c, "tierId": gold_id, "reason": "t"}
    )
    await ok(
        admin,
        UPDATE_MEMBER,
        "updateMember",
        input={"id": a, "consents": {"marketingEmail": True}},
    )
    await ok(admin, UPDATE_MEMBER, "updateMember", input={"id": e, "status": "SUSPENDED"})
    return SimpleNamespace(a=a, b=b, c=c, d=d, e=e, gold=gold_id, middle=middle)


async def test_each_filter_against_hand_checked_members(admin, world):
    w = world
    cases: list[tuple[dict[str, Any], set[str]]] = [
        ({}, {w.a, w.b, w.c, w.d}),
        ({"tierIds": [w.gold]}, {w.c}),
        ({"minAvailablePoints": 150}, {w.a, w.b}),
        ({"maxAvailablePoints": 100}, {w.c, w.d}),
        ({"minAvailablePoints": 100, "maxAvailablePoints": 160}, {w.a}),
        ({"minLifetimeSpend": {"amount": "200", "currency": "USD"}}, {w.b}),
        ({"minLifetimeSpend": {"amount": "150.00", "currency": "USD"}}, {w.a, w.b}),
        ({"purchasedWithinDays": 30}, {w.a}),
        ({"notPurchasedForDays": 30}, {w.b, w.c, w.d}),
        ({"purchasedWithinDays": 365, "notPurchasedForDays": 30}, {w.b}),
        ({"minPurchases": 2}, {w.a}),
        ({"minPurchases": 1}, {w.a, w.b}),
        ({"minPurchases": 1, "purchasesWithinDays": 100}, {w.a}),
        ({"channels": ["ONLINE"]}, {w.a}),
        ({"channels": ["IN_STORE"]}, {w.a, w.b}),
        ({"channels": ["MOBILE_APP"]}, set()),
        ({"enrolledBefore": w.middle.isoformat()}, {w.a, w.b}),
        ({"enrolledAfter": w.middle.isoformat()}, {w.c, w.d}),
        ({"marketingConsent": "EMAIL"}, {w.a}),
        ({"marketingConsent": "SMS"}, set()),
        ({"channels": ["IN_STORE"], "minAvailablePoints": 160, "notPurchasedForDays": 7}, {w.b}),
    ]
    for filter, expected in cases:
        assert await members_of(admin, filter) == expected, filter


async def test_rfm_scores_and_filters(admin, world, db):
    w = world
    assert (await rfm(db, now=datetime.now(UTC))).members == 3
    scores = {}
    for name in "abcde":
        member = (await admin.data(RFM, id=getattr(w, name)))["member"]["rfm"]
        scores[name] = (
            None
            if member is None
            else (
                member["recency"],
                member["frequency"],
                member["monetary"],
            )
        )
    # Scored: a, b and e (d's only purchase was refunded in full, c bought nothing).
    # recency: b (200 days) < e (5) < a (2)       -> 1 + 5*(0, 1, 2)//3 = 1, 2, 4
    # frequency: b = e = 1 purchase < a = 2        -> 1, 1, 4
    # monetary: e 10 < a 150 < b 200 (net)         -> 1, 2, 4
    assert scores == {"a": (4, 4, 2), "b": (1, 1, 4), "c": None, "d": None, "e": (2, 1, 1)}
    assert await members_of(admin, {"minRecency": 4}) == {w.a}
    assert await members_of(admin, {"minMonetary": 4}) == {w.b}
    assert await members_of(admin, {"minFrequency": 2, "minMonetary": 2}) == {w.a}


async def test_rfm_quintiles_share_scores_on_ties_and_drop_old_buyers(admin, pos, settings):
    await ok(admin, UPDATE_PROGRAM, "updateProgram", input={"maxBackdateDays": 3650})
    counts = [1, 1, 2, 3, 3]
    members = [await enroll(pos) for _ in counts]
    for member, count in zip(members, counts, strict=True):
        for _ in range(count):
            await record(pos, member, "10.00", occurredAt=ago(3))
    old = await enroll(pos)
    await record(pos, old, "500.00", occurredAt=ago(400))
    now = datetime.now(UTC).isoformat()
    for _ in range(2):  # a second run with the same --now gives the same scores
        done = await arun_cli(settings.database_url, "jobs", "run", "rfm", "--now", now)
        assert done.returncode == 0, done.stderr
        assert "5 member(s) scored" in done.stdout
        frequencies = [
            (await admin.data(RFM, id=member))["member"]["rfm"]["frequency"] for member in members
        ]
        # ranks 1, 1, 3, 4, 4 of 5 -> 1 + 5 * (rank - 1) // 5
        assert frequencies == [1, 1, 3, 4, 4]
        assert (await admin.data(RFM, id=old))["member"]["rfm"] is None


async def test_segment_crud_count_and_pages(admin, pos):
    members = [await enroll(pos) for _ in range(3)]
    segment = await create_segment(admin, {"maxAvailablePoints": 0}, name="Zero")
    assert segment["memberCount"] == 3
    first = (await admin.data(SEGMENT, id=segment["id"]))["segment"]["members"]
    assert [e["node"]["id"] for e in first["edges"]] == members[:2]
    assert first["pageInfo"]["hasNextPage"]
    rest = await admin.data(SEGMENT, id=segment["id"], after=first["pageInfo"]["endCursor"])
    assert [e["node"]["id"] for e in rest["segment"]["members"]["edges"]] == members[2:]

    await record(pos, members[0])
    updated = await ok(
        admin, UPDATE, "updateSegment", input={"id": segment["id"], "name": "Zero points"}
    )
    assert updated["segment"] == {"id": segment["id"], "name": "Zero points", "memberCount": 2}
    listed = (await admin.data(SEGMENTS))["segments"]["edges"]
    assert [e["node"]["name"] for e in listed] == ["Zero points"]

    await ok(admin, DELETE, "deleteSegment", input={"id": segment["id"]})
    assert (await admin.data(SEGMENT, id=segment["id"]))["segment"] is None
    gone = (await admin.data(MEMBERS_IN, segmentId=segment["id"]))["members"]["edges"]
    assert gone == []
    again = await admin.data(DELETE, input={"id": segment["id"]})
    assert again["deleteSegment"]["errors"][0]["code"] == "NOT_FOUND"


@pytest.mark.parametrize(
    ("filter", "code", "field"),
    [
        ({"tierIds": ["VGllcjo5OTk"]}, "NOT_FOUND", ["filter", "tierIds"]),
        ({"tierIds": []}, "INVALID", ["filter", "tierIds"]),
        ({"minAvailablePoints": -1}, "INVALID", ["filter", "minAvailablePoints"]),
        (
            {"minAvailablePoints": 10, "maxAvailablePoints": 5},
            "INVALID",
            ["filter", "maxAvailablePoints"],
        ),
        (
            {"minLifetimeSpend": {"amount": "-1", "currency": "USD"}},
            "INVALID",
            ["filter", "minLifetimeSpend", "amount"],
        ),
        (
            {"minLifetimeSpend": {"amount": "10", "currency": "EUR"}},
            "CURRENCY_NOT_SUPPORTED",
            ["filter", "minLifetimeSpend", "currency"],
        ),
        ({"purchasedWithinDays": 0}, "INVALID", ["filter", "purchasedWithinDays"]),
        (
            {"purchasedWithinDays": 30, "notPurchasedForDays": 30},
            "INVALID",
            ["filter", "purchasedWithinDays"],
        ),
        ({"purchasesWithinDays": 30}, "INVALID", ["filter", "purchasesWithinDays"]),
        ({"minPurchases": -2}, "INVALID", ["filter", "minPurchases"]),
        (
            {"enrolledAfter": "2026-02-01T00:00:00Z", "enrolledBefore": "2026-01-01T00:00:00Z"},
            "INVALID",
            ["filter", "enrolledBefore"],
        ),
        ({"minRecency": 6}, "INVALID", ["filter", "minRecency"]),
        ({"minMonetary": 0}, "INVALID", ["filter", "minMonetary"]),
    ],
)
async def test_bad_filters_are_payload_errors_with_paths(admin, filter, code, field):
    body = await admin.data(CREATE, input={"name": "bad", "filter": filter})
    payload = body["createSegment"]
    assert payload["segment"] is None
    assert [(e["code"], e["field"]) for e in payload["errors"]] == [(code, field)]
    assert (await admin.data(SEGMENTS))["segments"]["edges"] == []


async def test_bad_update_changes_nothing(admin):
    segment = await create_segment(admin, {"minAvailablePoints": 5}, name="five")
    body = await admin.data(
        UPDATE, input={"id": segment["id"], "name": "x", "filter": {"minRecency": 9}}
    )
    assert body["updateSegment"]["errors"][0]["field"] == ["filter", "minRecency"]
    assert (await admin.data(SEGMENTS))["segments"]["edges"][0]["node"]["name"] == "five"
    missing = await admin.data(UPDATE, input={"id": "nope", "name": "y"})
    assert missing["updateSegment"]["errors"][0]["code"] == "NOT_FOUND"


async def test_segments_are_admin_only(admin, pos, app_client):
    segment = await create_segment(admin, {})
    for caller in (pos, app_client):
        body = await caller(SEGMENT, id=segment["id"])
        assert body["errors"][0]["extensions"]["code"] == "FORBIDDEN"
        body = await caller(CREATE, input={"name": "x", "filter": {}})
        assert body["errors"][0]["extensions"]["code"] == "FORBIDDEN"


async def test_consents_by_the_members_own_token_and_not_for_another(pos, app_client):
    mine, other = await enroll(pos), await enroll(pos)
    token = (await app_client.data(ISSUE_TOKEN, input={"memberId": mine}))["issueMemberToken"]
    member = app_client.as_(token["token"])
    changed = await ok(
        member,
        UPDATE_MEMBER,
        "updateMember",
        input={"id": mine, "consents": {"marketingSms": True, "marketingPush": True}},
    )
    consents = changed["member"]["consents"]
    assert (consents["marketingEmail"], consents["marketingSms"], consents["marketingPush"]) == (
        False,
        True,
        True,
    )
    assert consents["updatedAt"] is not None
    withdrawn = await ok(
        member,
        UPDATE_MEMBER,
        "updateMember",
        input={"id": mine, "consents": {"marketingSms": False}},
    )
    assert withdrawn["member"]["consents"]["marketingSms"] is False
    assert withdrawn["member"]["consents"]["marketingPush"] is True

    refused = await member(UPDATE_MEMBER, input={"id": other, "consents": {"marketingEmail": True}})
    assert refused["errors"][0]["extensions"]["code"] == "FORBIDDEN"
    null = await member.data(
        UPDATE_MEMBER, input={"id": mine, "consents": {"marketingEmail": None}}
    )
    assert null["updateMember"]["errors"][0]["field"] == ["consents", "marketingEmail"]
    rfm = await member(RFM, id=mine)
    assert rfm["errors"][0]["extensions"]["code"] == "FORBIDDEN"
