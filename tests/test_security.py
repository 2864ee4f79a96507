"""Hostile requests: bounded work per document, no data across roles, no internal errors."""

import json
import logging
import time
from datetime import UTC, datetime, timedelta

import httpx
import jwt
import pytest

from loyalty.app import create_app
from loyalty.auth import service as auth
from loyalty.config import Settings
from tests.conftest import TEST_SECRET_KEY, GraphQLClient
from tests.helpers import enroll, key, purchase_input, record

ISSUE_TOKEN = """mutation($input: IssueMemberTokenInput!) {
  issueMemberToken(input: $input) { token errors { code } } }"""

CREATE_RULE = """mutation($input: CreateEarningRuleInput!) {
  createEarningRule(input: $input) { earningRule { id } errors { code field } } }"""

RECORD_EVENT = """mutation($input: RecordEventInput!) {
  recordEvent(input: $input) {
    pointsAwarded
    member { id email phone purchases(first: 5) { edges { node { orderId } } } }
    errors { code field message }
  }
}"""

PREVIEW = """query($input: PreviewPurchaseInput!) {
  previewPurchase(input: $input) { pointsAwarded errors { code field message } } }"""


def fragment_bomb(levels: int = 20) -> str:
    fragments = [f"fragment F{i} on Query {{ ...F{i + 1} ...F{i + 1} }}" for i in range(levels)] + [
        f"fragment F{levels} on Query {{ program {{ name }} }}"
    ]
    return f"query Bomb{key()[:8]} {{ ...F0 }} " + " ".join(fragments)


async def member_token(app_client: GraphQLClient, member_id: str) -> GraphQLClient:
    issued = await app_client.data(ISSUE_TOKEN, input={"memberId": member_id})
    return app_client.as_(issued["issueMemberToken"]["token"])


def codes(body: dict) -> list[str | None]:
    return [error.get("extensions", {}).get("code") for error in body.get("errors") or []]


async def test_a_fragment_bomb_is_refused_before_validation(admin, app_client, client):
    member = await member_token(app_client, await enroll(admin))
    started = time.perf_counter()
    body = await member(fragment_bomb())
    elapsed = time.perf_counter() - started
    assert codes(body) == ["QUERY_TOO_COMPLEX"]
    assert body["data"] is None
    assert elapsed < 1.0, f"refusing the bomb took {elapsed:.2f} s"
    assert (await client.get("/healthz")).status_code == 200


@pytest.mark.parametrize(
    "document",
    [
        "{ " + " ".join(f"a{i}: program {{ name currency }}" for i in range(29)) + " }",
        "{ " + " ".join("program { name }" for _ in range(400)) + " }",
        "fragment P on Program { name currency pendingDays } "
        "{ " + " ".join(f"p{i}: program {{ ...P ...P ...P }}" for i in range(29)) + " }",
    ],
    ids=["aliases", "repeated fields", "fragments under aliases"],
)
async def test_other_expansion_shapes_stay_cheap(admin, document):
    started = time.perf_counter()
    body = await admin(document)
    # A generous bound: these documents execute too, on a CI machine that may be busy; the
    # figures are bench/validation.py's.
    assert time.perf_counter() - started < 5.0
    assert body.get("data") or codes(body)


async def test_fragment_cycles_are_refused_by_validation(admin):
    body = await admin("fragment A on Query { ...B } fragment B on Query { ...A } { ...A }")
    assert body["errors"] and body["data"] is None


async def test_an_app_key_reads_no_member_through_record_event(admin, app_client):
    member_id = await enroll(admin, email="secret@example.com", phone="+15551234567")
    body = await app_client(
        RECORD_EVENT, input={"idempotencyKey": key(), "memberId": member_id, "type": "app_open"}
    )
    assert "secret@example.com" not in json.dumps(body)
    assert "FORBIDDEN" in codes(body)
    assert body["data"]["recordEvent"]["member"] is None


async def test_an_app_key_sees_the_member_it_enrolls(app_client):
    body = await app_client.data(
        "mutation($input: EnrollMemberInput!) { enrollMember(input: $input) "
        "{ member { id email points { available } } errors { code } } }",
        input={"externalId": f"m-{key()[:10]}", "email": "new@example.com"},
    )
    assert body["enrollMember"]["member"]["email"] == "new@example.com"


async def test_rule_internals_are_admin_only_on_every_path(admin, pos, app_client):
    rule = await admin.data(
        CREATE_RULE,
        input={
            "name": "Double",
            "startsAt": (datetime.now(UTC) - timedelta(days=1)).isoformat(),
            "effect": {"kind": "FIXED_BONUS", "value": "5"},
            "limits": {"budget": 1000},
        },
    )
    assert rule["createEarningRule"]["errors"] == []
    member_id = await enroll(admin)
    purchase = await record(pos, member_id)
    member = await member_token(app_client, member_id)
    internals = """query($id: ID!) { member(id: $id) {
      purchases(first: 1) { edges { node { pointsBreakdown { points rule { id name budgetUsed
        limits { budget } } } } } }
      ledger(first: 5) { edges { node { kind earningRule { name pointsAwarded } } } } } }"""
    for caller in (pos, member):
        body = await caller(internals, id=member_id)
        assert set(codes(body)) == {"FORBIDDEN"}, body
        assert "budget" not in json.dumps(body.get("data"))
    names = """query($id: ID!) { member(id: $id) { purchases(first: 1) { edges { node {
      pointsBreakdown { points rule { id name } } } } } } }"""
    shown = await member.data(names, id=member_id)
    items = shown["member"]["purchases"]["edges"][0]["node"]["pointsBreakdown"]
    assert [item["rule"]["name"] for item in items if item["rule"]] == ["Double"]
    assert purchase["pointsAwarded"] == sum(item["points"] for item in items)
    assert not codes(await admin(internals, id=member_id))


async def test_a_member_token_cannot_learn_of_another_members_order(admin, pos, app_client):
    mine, theirs = await enroll(admin), await enroll(admin)
    order_id = (await record(pos, theirs))["purchase"]["orderId"]
    member = await member_token(app_client, mine)
    given = purchase_input(mine, orderId=order_id)
    del given["idempotencyKey"]
    payload = (await member.data(PREVIEW, input=given))["previewPurchase"]
    assert payload["errors"] == []
    own_order = (await record(pos, mine))["purchase"]["orderId"]
    given["orderId"] = own_order
    payload = (await member.data(PREVIEW, input=given))["previewPurchase"]
    assert [e["code"] for e in payload["errors"]] == ["ALREADY_EXISTS"]


async def test_a_member_token_reads_only_its_own_objects(admin, pos, app_client):
    mine, theirs = await enroll(admin), await enroll(admin)
    await record(pos, theirs)
    member = await member_token(app_client, mine)
    body = await member("query($id: ID!) { member(id: $id) { email } }", id=theirs)
    assert codes(body) == ["FORBIDDEN"] and body["data"]["member"] is None


async def test_update_tier_to_a_taken_rank_is_invalid(admin):
    create = """mutation($input: CreateTierInput!) { createTier(input: $input) {
      tier { id } errors { code } } }"""
    first = await admin.data(create, input={"name": "A", "rank": 10, "threshold": 100})
    second = await admin.data(create, input={"name": "B", "rank": 11, "threshold": 200})
    tier_id = second["createTier"]["tier"]["id"]
    assert first["createTier"]["errors"] == []
    body = await admin.data(
        """mutation($input: UpdateTierInput!) { updateTier(input: $input) {
          tier { rank } errors { code field } } }""",
        input={"id": tier_id, "rank": 10},
    )
    assert body["updateTier"] == {"tier": None, "errors": [{"code": "INVALID", "field": ["rank"]}]}
    tiers = await admin.data("{ tiers { name rank } }")
    assert {"name": "B", "rank": 11} in tiers["tiers"]


async def test_a_huge_search_string_is_invalid(admin):
    body = await admin(
        "query($s: String) { members(search: $s) { edges { cursor } } }", s="x" * 50_000
    )
    assert codes(body) == ["INVALID"]


async def test_deeply_nested_event_attributes_are_invalid(admin):
    member_id = await enroll(admin)
    nested: dict = {"leaf": 1}
    for _ in range(12):
        nested = {"n": nested}
    body = await admin(
        """mutation($input: RecordEventInput!) { recordEvent(input: $input) {
          pointsAwarded errors { code field } } }""",
        input={
            "idempotencyKey": key(),
            "memberId": member_id,
            "type": "app_open",
            "attributes": nested,
        },
    )
    assert body["data"]["recordEvent"]["errors"] == [{"code": "INVALID", "field": ["attributes"]}]


async def test_a_body_nesting_100000_levels_is_a_400(client, admin_key):
    body = "[" * 100_000 + "]" * 100_000
    response = await client.post(
        "/graphql",
        content=body,
        headers={"Authorization": f"Bearer {admin_key}", "Content-Type": "application/json"},
    )
    assert response.status_code == 400


async def test_variables_nesting_past_the_limit_are_a_400(client, admin_key):
    nested: dict = {}
    for _ in range(40):
        nested = {"n": nested}
    response = await client.post(
        "/graphql",
        json={"query": "{ program { name } }", "variables": {"x": nested}},
        headers={"Authorization": f"Bearer {admin_key}"},
    )
    assert response.status_code == 400


async def test_a_body_over_the_limit_is_a_413(settings, db, admin_key):
    app = create_app(settings.model_copy(update={"max_body_bytes": 2048}), db=db)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://loyalty.test") as http:
        response = await http.post(
            "/graphql",
            json={"query": "{ program { name } }", "variables": {"pad": "x" * 4096}},
            headers={"Authorization": f"Bearer {admin_key}"},
        )
        assert response.status_code == 413
        small = await http.post(
            "/graphql",
            json={"query": "{ program { name } }"},
            headers={"Authorization": f"Bearer {admin_key}"},
        )
        assert small.status_code == 200


@pytest.mark.parametrize("declared", ["²", "1" * 40, "-1", "x"])
async def test_an_odd_content_length_is_never_a_500(client, admin_key, declared):
    response = await client.post(
        "/graphql",
        content=b'{"query": "{ program { name } }"}',
        headers={
            "Authorization": f"Bearer {admin_key}",
            "Content-Type": "application/json",
            "Content-Length": declared.encode("latin-1"),  # bytes: "²" is not ASCII
        },
    )
    assert response.status_code in {200, 400, 413}


@pytest.mark.parametrize("subject", ["²", "1" * 30, "-1", " 1", 5])
async def test_signed_tokens_with_odd_subjects_are_401(client, subject):
    now = datetime.now(UTC)
    token = jwt.encode(
        {
            "sub": subject,
            "aud": auth.TOKEN_AUDIENCE,
            "iss": auth.TOKEN_ISSUER,
            "iat": int(now.timestamp()),
            "exp": int((now + timedelta(minutes=5)).timestamp()),
        },
        TEST_SECRET_KEY,
        algorithm="HS256",
    )
    response = await GraphQLClient(client, token).post("{ me { id } }")
    assert response.status_code == 401
    assert codes(response.json()) == ["UNAUTHENTICATED"]


async def test_no_suggestions_outside_debug(admin):
    body = await admin("{ programm { name } }")
    assert "Did you mean" not in json.dumps(body)
    body = await admin("{ rewards(first: 1, availableOnl: true) { edges { cursor } } }")
    assert "Did you mean" not in json.dumps(body)


async def test_several_operations_need_an_operation_name(admin):
    body = await admin("query A { program { name } } query B { tiers { name } }")
    assert body["data"] is None and body["errors"]
    response = await admin.http.post(
        "/graphql",
        json={"query": "query A { program { name } } query B { tiers { name } }"},
        headers={
            "Authorization": f"Bearer {admin.token}",
            "Accept": "application/graphql-response+json",
        },
    )
    assert response.status_code == 400
    named = await admin.http.post(
        "/graphql",
        json={
            "query": "query A { program { name } } query B { tiers { name } }",
            "operationName": "B",
        },
        headers={"Authorization": f"Bearer {admin.token}"},
    )
    assert named.status_code == 200 and "tiers" in named.json()["data"]


async def test_graphql_response_json_answers_400_to_invalid_documents(client, admin_key):
    headers = {
        "Authorization": f"Bearer {admin_key}",
        "Accept": "application/graphql-response+json",
    }
    bad = await client.post("/graphql", json={"query": "{ nothing }"}, headers=headers)
    assert bad.status_code == 400
    assert bad.headers["content-type"].startswith("application/graphql-response+json")
    good = await client.post("/graphql", json={"query": "{ program { name } }"}, headers=headers)
    assert good.status_code == 200
    assert good.headers["content-type"].startswith("application/graphql-response+json")
    legacy = await client.post(
        "/graphql", json={"query": "{ nothing }"}, headers={"Authorization": f"Bearer {admin_key}"}
    )
    assert legacy.status_code == 200


async def test_unknown_paths_share_one_metrics_label(client):
    for i in range(20):
        assert (await client.get(f"/no-such-path-{key()[:8]}-{i}")).status_code == 404
    metrics = (await client.get("/metrics")).text
    assert "no-such-path" not in metrics
    assert 'path="unmatched"' in metrics


async def test_a_request_over_the_time_limit_is_stopped(settings, db, admin_key):
    app = create_app(settings.model_copy(update={"request_timeout_seconds": 1e-9}), db=db)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://loyalty.test") as http:
        response = await http.post(
            "/graphql",
            json={"query": "{ program { name } tiers { name } }"},
            headers={"Authorization": f"Bearer {admin_key}"},
        )
    assert response.status_code == 503
    assert codes(response.json()) == ["TIMEOUT"]


async def test_client_errors_log_one_line_without_a_traceback(admin, pos, caplog):
    caplog.set_level(logging.INFO, logger="loyalty.graphql")
    await pos("{ members(first: 1) { edges { cursor } } }")
    await admin("{ members(first: 5000) { edges { cursor } } }")
    await admin("query { member(id: 5) { id } }")
    records = [r for r in caplog.records if r.name == "loyalty.graphql"]
    assert records, "client errors are logged"
    assert all(r.levelno == logging.INFO and r.exc_info is None for r in records)
    assert any("FORBIDDEN" in r.getMessage() for r in records)


def test_default_limits():
    settings = Settings()
    assert settings.max_body_bytes == 1024 * 1024
    assert settings.request_timeout_seconds == 10
    assert settings.max_fields == 1000


async def test_malformed_requests_get_a_json_error(client, admin_key):
    headers = {"Authorization": f"Bearer {admin_key}", "Content-Type": "application/json"}
    for body in ('{"query": ', "[1, 2]", '{"variables": {}}'):
        response = await client.post("/graphql", content=body, headers=headers)
        assert response.status_code == 400
        assert codes(response.json()) == ["BAD_REQUEST"]
