"""The audit log (API.md §6): every committed change says who, what, when and under which
request; refused changes record nothing; only admins read it; nobody edits it."""

import getpass
import json
import re
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from loyalty.audit import service as audit
from tests.cli import arun_cli
from tests.conftest import GraphQLClient, execute_sql
from tests.helpers import (
    ADJUST,
    ENROLL,
    RECORD_PURCHASE,
    enroll,
    grant,
    key,
    purchase_input,
    record,
    refund_input,
)

pytestmark = pytest.mark.filterwarnings("ignore::jwt.warnings.InsecureKeyLengthWarning")

AUDIT_LOG = """
query Audit($first: Int, $after: String, $memberId: ID, $actorKeyId: ID, $operation: String) {
  auditLog(first: $first, after: $after, memberId: $memberId, actorKeyId: $actorKeyId,
           operation: $operation) {
    edges { cursor node {
      id occurredAt actorKind actorRole actorKeyId actorName memberId operation targetIds
      summary requestId
    } }
    pageInfo { hasNextPage hasPreviousPage startCursor endCursor }
  }
}
"""

ISSUE_TOKEN = """
mutation Issue($input: IssueMemberTokenInput!) {
  issueMemberToken(input: $input) { token errors { code } }
}
"""

UPDATE_MEMBER = """
mutation U($input: UpdateMemberInput!) {
  updateMember(input: $input) { member { id firstName } errors { code } }
}
"""

REFUND = """
mutation R($input: RefundPurchaseInput!) {
  refundPurchase(input: $input) { purchase { id } pointsClawedBack errors { code } }
}
"""

HEX_ID = re.compile(r"^[0-9a-f]{32}$")


async def audit_log(admin: GraphQLClient, **arguments: Any) -> list[dict[str, Any]]:
    data = await admin.data(AUDIT_LOG, **arguments)
    return [edge["node"] for edge in data["auditLog"]["edges"]]


async def key_id(db, name: str) -> str:
    async with db.read_engine.connect() as connection:
        found = await connection.scalar(
            text("SELECT id FROM api_keys WHERE name = :n"), {"n": name}
        )
    return str(found)


async def audit_rows(db) -> int:
    async with db.read_engine.connect() as connection:
        return await connection.scalar(text("SELECT count(*) FROM audit_log"))


async def post(
    caller: GraphQLClient, query: str, request_id: str | None = None, **variables: Any
) -> httpx.Response:
    headers = {"Authorization": f"Bearer {caller.token}"}
    if request_id is not None:
        headers["X-Request-Id"] = request_id
    response = await caller.http.post(
        "/graphql", json={"query": query, "variables": variables}, headers=headers
    )
    assert response.status_code == 200, response.text
    assert not response.json().get("errors"), response.json()
    return response


async def test_admin_and_pos_writes_are_recorded_with_actor_targets_and_request_id(admin, pos, db):
    # given a member enrolled at a till that sends its own request id
    enrolled = await post(
        pos,
        ENROLL,
        "till-7/req 1",
        input={"externalId": "card-1", "email": "ann@example.com", "firstName": "Ann"},
    )
    member_id = enrolled.json()["data"]["enrollMember"]["member"]["id"]

    # when the till records a purchase without a request id, and the admin adjusts points
    recorded = await post(pos, RECORD_PURCHASE, input=purchase_input(member_id, "12.50"))
    purchase_id = recorded.json()["data"]["recordPurchase"]["purchase"]["id"]
    adjusted = await post(
        admin,
        ADJUST,
        "hq-42",
        input={"idempotencyKey": "secret-ish", "memberId": member_id, "points": 5, "reason": "fix"},
    )
    entry_id = adjusted.json()["data"]["adjustPoints"]["entry"]["id"]

    # then the log names each change, newest first
    adjustment, purchase, enrollment = await audit_log(admin)
    admin_key, pos_key = await key_id(db, "test admin"), await key_id(db, "test pos")
    assert adjustment["actorKind"] == "API_KEY"
    assert (adjustment["actorRole"], adjustment["actorKeyId"], adjustment["actorName"]) == (
        "admin",
        admin_key,
        "test admin",
    )
    assert adjustment["operation"] == "adjustPoints"
    assert adjustment["memberId"] == member_id
    assert adjustment["targetIds"] == [member_id, entry_id]
    assert adjustment["summary"] == {
        "memberId": member_id,
        "points": 5,
        "reason": "fix",
        "qualifying": False,
    }
    assert adjustment["requestId"] == "hq-42"
    assert adjusted.headers["x-request-id"] == "hq-42"

    assert (purchase["actorRole"], purchase["actorKeyId"], purchase["actorName"]) == (
        "pos",
        pos_key,
        "test pos",
    )
    assert purchase["operation"] == "recordPurchase"
    assert purchase["memberId"] == member_id
    assert purchase_id in purchase["targetIds"] and member_id in purchase["targetIds"]
    assert "idempotencyKey" not in purchase["summary"]
    assert purchase["summary"]["total"] == {"amount": "12.50", "currency": "USD"}
    assert purchase["summary"]["channel"] == "IN_STORE"
    generated = recorded.headers["x-request-id"]
    assert HEX_ID.match(generated) and purchase["requestId"] == generated

    assert enrollment["operation"] == "enrollMember"
    assert enrollment["requestId"] == "till-7/req 1"
    assert enrollment["targetIds"] == [member_id]
    assert enrollment["summary"]["externalId"] == "[redacted]"  # it names the customer
    # personal data is never kept in the append-only log
    assert enrollment["summary"]["email"] == "[redacted]"
    assert enrollment["summary"]["firstName"] == "[redacted]"
    assert "ann@example.com" not in str(await audit_log(admin))


async def test_program_changes_are_recorded(admin):
    await admin.data(
        """mutation P($input: UpdateProgramInput!) {
             updateProgram(input: $input) { program { name } errors { code } } }""",
        input={"name": "Coffee Club", "pendingDays": 2},
    )
    (entry,) = await audit_log(admin, operation="updateProgram")
    assert entry["summary"] == {"name": "Coffee Club", "pendingDays": 2}
    assert entry["memberId"] is None


async def test_refused_mutations_and_replays_record_nothing(admin, pos, db):
    member_id = await enroll(pos)
    before = await audit_rows(db)

    # a business failure rolls the change back, and its audit entry with it
    refused = await admin.data(
        ADJUST,
        input={"idempotencyKey": key(), "memberId": member_id, "points": -10, "reason": "x"},
    )
    assert refused["adjustPoints"]["errors"][0]["code"] == "INSUFFICIENT_POINTS"
    missing = await admin.data(
        ADJUST, input={"idempotencyKey": key(), "memberId": "nope", "points": 1, "reason": "x"}
    )
    assert missing["adjustPoints"]["errors"][0]["code"] == "NOT_FOUND"
    # a FORBIDDEN attempt never ran
    forbidden = await pos(
        ADJUST, input={"idempotencyKey": key(), "memberId": member_id, "points": 1, "reason": "x"}
    )
    assert forbidden["errors"][0]["extensions"]["code"] == "FORBIDDEN"
    assert await audit_rows(db) == before

    # a retry with the same idempotency key replays the result and changes nothing
    again = purchase_input(member_id)
    await pos.data(RECORD_PURCHASE, input=again)
    await pos.data(RECORD_PURCHASE, input=again)
    assert await audit_rows(db) == before + 1


@pytest.mark.parametrize("caller", ["pos", "app", "member"])
async def test_only_admins_read_the_audit_log(admin, pos, app_client, caller):
    member_id = await enroll(admin)
    token = (await app_client.data(ISSUE_TOKEN, input={"memberId": member_id}))["issueMemberToken"][
        "token"
    ]
    callers = {"pos": pos, "app": app_client, "member": admin.as_(token)}
    body = await callers[caller](AUDIT_LOG)
    assert body["data"] is None
    assert [e["extensions"]["code"] for e in body["errors"]] == ["FORBIDDEN"]


async def test_member_token_writes_name_the_member(admin, app_client):
    member_id = await enroll(admin)
    token = (await app_client.data(ISSUE_TOKEN, input={"memberId": member_id}))["issueMemberToken"][
        "token"
    ]
    member = admin.as_(token)
    await member.data(UPDATE_MEMBER, input={"id": member_id, "firstName": "Zed"})

    update, issued, _enrolled = await audit_log(admin)
    assert (update["actorKind"], update["actorRole"], update["actorKeyId"]) == (
        "MEMBER_TOKEN",
        "member",
        None,
    )
    assert update["memberId"] == member_id
    assert update["summary"] == {"id": member_id, "firstName": "[redacted]"}
    assert (issued["operation"], issued["actorRole"], issued["memberId"]) == (
        "issueMemberToken",
        "app",
        member_id,
    )
    assert token not in str(issued)


async def test_filters_and_pagination(admin, pos, db):
    ann, bob = await enroll(pos), await enroll(pos)
    await grant(admin, ann, 10)
    sale = await record(pos, ann, "10.00")
    await admin.data(
        REFUND,
        input=refund_input(sale["purchase"]["id"], "5.00"),
    )
    await record(pos, bob, "3.00")

    everything = await audit_log(admin)
    assert [e["operation"] for e in everything] == [
        "recordPurchase",
        "refundPurchase",
        "recordPurchase",
        "adjustPoints",
        "enrollMember",
        "enrollMember",
    ]

    # by member: a refund names the purchase, and the log finds its member through it
    about_ann = await audit_log(admin, memberId=ann)
    assert [e["operation"] for e in about_ann] == [
        "refundPurchase",
        "recordPurchase",
        "adjustPoints",
        "enrollMember",
    ]
    assert {e["memberId"] for e in about_ann} == {ann}

    # by key and by operation, alone and together
    pos_key = await key_id(db, "test pos")
    by_pos = await audit_log(admin, actorKeyId=pos_key)
    assert [e["operation"] for e in by_pos] == ["recordPurchase", "recordPurchase"] + [
        "enrollMember"
    ] * 2
    assert [e["memberId"] for e in await audit_log(admin, operation="recordPurchase")] == [bob, ann]
    both = await audit_log(admin, actorKeyId=pos_key, operation="enrollMember", memberId=bob)
    assert [e["memberId"] for e in both] == [bob]

    # IDs that name nothing match nothing
    assert await audit_log(admin, memberId="not-an-id") == []
    assert await audit_log(admin, actorKeyId="9999") == []
    assert await audit_log(admin, actorKeyId="abc") == []
    assert await audit_log(admin, actorKeyId="²") == []  # a Unicode digit int() refuses

    # pages of two, newest first, walk the whole log once
    seen, after, pages = [], None, 0
    while True:
        data = (await admin.data(AUDIT_LOG, first=2, after=after))["auditLog"]
        seen += [edge["node"]["id"] for edge in data["edges"]]
        assert data["pageInfo"]["hasPreviousPage"] is (after is not None)
        pages += 1
        if not data["pageInfo"]["hasNextPage"]:
            break
        after = data["pageInfo"]["endCursor"]
    assert pages == 3 and seen == [e["id"] for e in everything]

    too_many = await admin(AUDIT_LOG, first=101)
    assert too_many["data"] is None
    assert too_many["errors"][0]["extensions"]["code"] == "INVALID"


@pytest.mark.parametrize(
    "statement", ["UPDATE audit_log SET operation = 'x'", "DELETE FROM audit_log"]
)
async def test_the_table_refuses_update_and_delete(admin, pos, db, statement):
    await enroll(pos)
    with pytest.raises(DBAPIError, match="append-only"):
        await execute_sql(db, statement)
    (entry,) = await audit_log(admin)
    assert entry["operation"] == "enrollMember"


async def test_cli_key_changes_are_audited(client, database_url, db):
    created = await arun_cli(database_url, "apikey", "create", "--role", "admin", "--name", "hq")
    assert created.returncode == 0, created.stderr
    admin = GraphQLClient(client, created.stdout.strip().splitlines()[-1])
    new_id = await key_id(db, "hq")
    revoked_key = await arun_cli(database_url, "apikey", "create", "--role", "pos", "--name", "t")
    till_id = await key_id(db, "t")
    revoked = await arun_cli(database_url, "apikey", "revoke", till_id)
    assert revoked.returncode == 0, revoked.stderr
    assert revoked_key.returncode == 0

    revoke, create_till, create_hq = await audit_log(admin)
    assert [e["operation"] for e in (revoke, create_till, create_hq)] == [
        "apikey revoke",
        "apikey create",
        "apikey create",
    ]
    assert all(e["actorKind"] == "CLI" and e["requestId"] is None for e in (revoke, create_hq))
    assert create_hq["actorName"] == getpass.getuser()
    assert create_hq["targetIds"] == [new_id]
    assert create_hq["summary"] == {"role": "admin", "name": "hq"}
    assert (revoke["targetIds"], revoke["summary"]) == ([till_id], {"key": till_id})
    # the secret printed once is nowhere in the log
    assert created.stdout.strip().splitlines()[-1] not in str(create_hq)


async def test_every_response_echoes_a_request_id(client, admin):
    given = await client.post("/healthz", headers={"X-Request-Id": "lb-1234"})
    assert given.headers["x-request-id"] == "lb-1234"
    generated = await client.post("/graphql", json={"query": "{ program { name } }"})
    assert generated.status_code == 401
    assert HEX_ID.match(generated.headers["x-request-id"])
    distinct = {(await client.get("/healthz")).headers["x-request-id"] for _ in range(3)}
    assert len(distinct) == 3

    # an id that is too long or not printable ASCII is replaced, never echoed
    for bad in ("x" * 129, "caf\u00e9", "   "):
        response = await client.get("/healthz", headers=[(b"x-request-id", bad.encode("utf-8"))])
        assert HEX_ID.match(response.headers["x-request-id"]), bad
    assert (await client.get("/healthz", headers={"X-Request-Id": "y" * 128})).headers[
        "x-request-id"
    ] == "y" * 128


def test_summaries_drop_mask_and_bound_the_input():
    summary = audit.summarize(
        {
            "idempotencyKey": "k-1",
            "codes": ["A1", "B2", "C3"],
            "phone": "+1555",
            "email": None,
            "name": "n" * 500,
            "skus": [f"sku-{i}" for i in range(25)],
            "deep": {"a": {"b": {"c": {"d": {"e": 1}}}}},
            "total": {"amount": Decimal("1.50"), "currency": "USD"},
            "at": datetime(2026, 1, 2, 3, 4, tzinfo=UTC),
        }
    )
    assert "idempotencyKey" not in summary
    assert summary["codes"] == "[3 redacted]" and summary["phone"] == "[redacted]"
    assert summary["email"] is None  # a cleared field says it was cleared
    assert summary["name"] == "n" * 200 + "…"
    assert summary["skus"][:2] == ["sku-0", "sku-1"] and summary["skus"][-1] == "… 5 more"
    assert len(summary["skus"]) == 21
    assert summary["deep"] == {"a": {"b": {"c": {"d": "…"}}}}
    assert summary["total"] == {"amount": "1.50", "currency": "USD"}
    assert summary["at"] == "2026-01-02T03:04:00+00:00"
    huge = audit.summarize({f"field{i}": "x" * 200 for i in range(40)})
    assert huge["truncated"] is True and len(json.dumps(huge)) < audit.MAX_SUMMARY_BYTES
