"""Bad input: a clear UserError (HTTP 200, ``errors[0].code``), an empty result, and nothing
written (API.md §3). Malformed requests (pagination arguments, broken documents, non-JSON
bodies, overly deep queries) get an error, never an HTTP 500."""

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import text

from loyalty.app import create_app
from loyalty.ids import decode_id, encode_id
from tests.conftest import GraphQLClient
from tests.helpers import ADJUST, ENROLL, MEMBER, RECORD_PURCHASE, enroll, key, purchase_input

UPDATE_MEMBER = """
mutation U($input: UpdateMemberInput!) {
  updateMember(input: $input) { member { id status } errors { code field message } }
}
"""

UPDATE_PROGRAM = """
mutation P($input: UpdateProgramInput!) {
  updateProgram(input: $input) {
    program { name currency pointsPerUnit pendingDays pointsExpireAfterDays tierWindowDays }
    errors { code field message }
  }
}
"""

PROGRAM = (
    "{ program { name currency pointsPerUnit pendingDays pointsExpireAfterDays tierWindowDays } }"
)


@dataclass
class Shop:
    """A member with 10 points from one purchase."""

    member_id: str
    external_id: str
    order_id: str
    purchase_id: str


@pytest.fixture
async def shop(pos) -> Shop:
    external_id = f"m-{key()[:12]}"
    member_id = await enroll(pos, external_id)
    order_id = f"order-{key()[:12]}"
    first = (
        await pos.data(RECORD_PURCHASE, input=purchase_input(member_id, "10.00", orderId=order_id))
    )["recordPurchase"]
    assert first["errors"] == []
    assert first["member"]["points"]["available"] == 10
    return Shop(member_id, external_id, order_id, first["purchase"]["id"])


async def stored(db) -> dict[str, Any]:
    """Every row count and every member's balances: what a bad input must leave alone."""
    async with db.read_engine.connect() as connection:
        counts = {
            table: await connection.scalar(text(f"SELECT count(*) FROM {table}"))
            for table in (
                "members",
                "purchases",
                "ledger_transactions",
                "ledger_entries",
                "idempotency_keys",
            )
        }
        members = (
            await connection.execute(
                text(
                    "SELECT id, external_id, email, phone, first_name, last_name, status, "
                    "points_available, points_pending, lifetime_earned FROM members ORDER BY id"
                )
            )
        ).all()
        program = (await connection.execute(text("SELECT * FROM program"))).all()
    return {
        **counts,
        "members": [tuple(m) for m in members],
        "program": [tuple(p) for p in program],
    }


async def seen_by_admin(admin, member_id: str) -> dict[str, Any]:
    """The member's status, balances and ledger, as an admin console shows them."""
    return (await admin.data(MEMBER, id=member_id))["member"]


def assert_user_error(payload: dict[str, Any], code: str, field: list[str] | None) -> None:
    assert [error["code"] for error in payload["errors"]] == [code], payload["errors"]
    error = payload["errors"][0]
    assert error["message"].strip()
    if field is not None:
        assert error["field"] == field
    results = {name: value for name, value in payload.items() if name != "errors"}
    assert all(value is None for value in results.values()), results


def in_future(minutes: int) -> str:
    return (datetime.now(UTC) + timedelta(minutes=minutes)).isoformat()


# --- recordPurchase -------------------------------------------------------------------------

TOTAL = ["total", "amount"]
CURRENCY = ["total", "currency"]


def _amount(value: Any) -> dict[str, Any]:
    return {"total": {"amount": value, "currency": "USD"}}


def _line(**line: Any) -> dict[str, Any]:
    return {"lines": [{"sku": "SKU-1", **line}]}


def bad(what: str, changes, code: str, field: list[str] | None, *marks) -> Any:
    """One bad input: what is wrong, the input fields it changes, the error code, its field."""
    return pytest.param(changes, code, field, id=what, marks=marks)


BAD_PURCHASES = [
    bad(
        "unknown member id", lambda s: {"memberId": encode_id("Member", 999_999)}, "NOT_FOUND", None
    ),
    bad("malformed member id", lambda s: {"memberId": "garbage"}, "NOT_FOUND", None),
    bad("empty member id", lambda s: {"memberId": ""}, "NOT_FOUND", None),
    bad("the id of a purchase", lambda s: {"memberId": s.purchase_id}, "NOT_FOUND", None),
    bad(
        "a Tier id with the member's key",
        lambda s: {"memberId": encode_id("Tier", decode_id("Member", s.member_id) or 0)},
        "NOT_FOUND",
        None,
    ),
    bad(
        "unknown externalId",
        lambda s: {"memberId": None, "memberExternalId": "nobody-here"},
        "NOT_FOUND",
        ["memberExternalId"],
    ),
    bad(
        "both memberId and externalId",
        lambda s: {"memberExternalId": s.external_id},
        "INVALID",
        None,
    ),
    bad("neither memberId nor externalId", lambda s: {"memberId": None}, "INVALID", None),
    bad("zero amount", lambda s: _amount("0"), "INVALID", TOTAL),
    bad("negative amount", lambda s: _amount("-5.00"), "INVALID", TOTAL),
    bad("two decimal points", lambda s: _amount("12.5.0"), "INVALID", TOTAL),
    bad("exponent", lambda s: _amount("1e400"), "INVALID", TOTAL),
    bad("NaN", lambda s: _amount("NaN"), "INVALID", TOTAL),
    bad("Infinity", lambda s: _amount("Infinity"), "INVALID", TOTAL),
    bad("empty amount", lambda s: _amount(""), "INVALID", TOTAL),
    bad("letters", lambda s: _amount("abc"), "INVALID", TOTAL),
    bad("20-digit amount", lambda s: _amount("12345678901234567890"), "INVALID", TOTAL),
    bad("too many decimals", lambda s: _amount("1.000001"), "INVALID", TOTAL),
    bad("a JSON float", lambda s: _amount(12.5), "INVALID", TOTAL),
    bad(
        "another currency",
        lambda s: {"total": {"amount": "10.00", "currency": "EUR"}},
        "CURRENCY_NOT_SUPPORTED",
        CURRENCY,
    ),
    bad(
        "malformed currency",
        lambda s: {"total": {"amount": "10.00", "currency": "usd1"}},
        "INVALID",
        CURRENCY,
    ),
    bad(
        "empty currency",
        lambda s: {"total": {"amount": "10.00", "currency": ""}},
        "INVALID",
        CURRENCY,
    ),
    bad("duplicate orderId", lambda s: {"orderId": s.order_id}, "ALREADY_EXISTS", ["orderId"]),
    bad("occurredAt in 10 minutes", lambda s: {"occurredAt": in_future(10)}, "INVALID", None),
    bad(
        "occurredAt without a timezone",
        lambda s: {"occurredAt": "2024-01-01T12:00:00"},
        "INVALID",
        ["occurredAt"],
    ),
    bad("orderId of 10,000 chars", lambda s: {"orderId": "x" * 10_000}, "INVALID", ["orderId"]),
    bad("blank orderId", lambda s: {"orderId": "   "}, "INVALID", ["orderId"]),
    bad("storeId of 1,000 chars", lambda s: {"storeId": "s" * 1_000}, "INVALID", ["storeId"]),
    bad("empty idempotency key", lambda s: {"idempotencyKey": ""}, "INVALID", ["idempotencyKey"]),
    bad("blank idempotency key", lambda s: {"idempotencyKey": "  "}, "INVALID", ["idempotencyKey"]),
    bad(
        "idempotency key of 1,000 chars",
        lambda s: {"idempotencyKey": "k" * 1_000},
        "INVALID",
        ["idempotencyKey"],
    ),
    bad(
        "negative quantity",
        lambda s: _line(quantity=-1),
        "INVALID",
        ["lines", "0", "quantity"],
    ),
    bad("zero quantity", lambda s: _line(quantity=0), "INVALID", ["lines", "0", "quantity"]),
    bad(
        "line unitPrice in another currency",
        lambda s: _line(unitPrice={"amount": "10.00", "currency": "EUR"}),
        "CURRENCY_NOT_SUPPORTED",
        ["lines", "0", "unitPrice", "currency"],
    ),
    bad(
        "negative line unitPrice",
        lambda s: _line(unitPrice={"amount": "-1.00", "currency": "USD"}),
        "INVALID",
        ["lines", "0", "unitPrice", "amount"],
    ),
    bad("sku of 1,000 chars", lambda s: _line(sku="s" * 1_000), "INVALID", ["lines", "0", "sku"]),
    bad(
        "501 lines",
        lambda s: {"lines": [{"sku": f"SKU-{i}"} for i in range(501)]},
        "INVALID",
        ["lines"],
    ),
    bad(
        "memberExternalId of 10,000 chars",
        lambda s: {"memberId": None, "memberExternalId": "x" * 10_000},
        "INVALID",
        ["memberExternalId"],
    ),
    bad(
        "points too many for an Int",
        lambda s: _amount("3000000000.00"),
        "INVALID",
        ["total", "amount"],
    ),
    bad(
        "occurredAt in year 1 at +14:00",
        lambda s: {"occurredAt": "0001-01-01T00:00:00+14:00"},
        "INVALID",
        ["occurredAt"],
    ),
    bad("NUL in orderId", lambda s: {"orderId": "ab\x00cd"}, "INVALID", ["orderId"]),
    bad("NUL in storeId", lambda s: {"storeId": "st\x00re"}, "INVALID", ["storeId"]),
]


@pytest.mark.parametrize(("changes", "code", "field"), BAD_PURCHASES)
async def test_a_bad_purchase_is_refused_and_writes_nothing(
    pos, admin, db, shop, changes, code, field
):
    before, seen_before = await stored(db), await seen_by_admin(admin, shop.member_id)
    bad = {**purchase_input(shop.member_id, "25.00"), **changes(shop)}

    response = await pos.post(RECORD_PURCHASE, input=bad)

    assert response.status_code == 200, response.text
    body = response.json()
    assert not body.get("errors"), body["errors"]
    assert_user_error(body["data"]["recordPurchase"], code, field)
    assert await stored(db) == before
    assert await seen_by_admin(admin, shop.member_id) == seen_before
    if bad["idempotencyKey"].strip() and len(bad["idempotencyKey"]) <= 255:
        # Nothing was written, not even the idempotency key: it is free for a good request.
        retry = purchase_input(shop.member_id, "25.00", idempotencyKey=bad["idempotencyKey"])
        assert (await pos.data(RECORD_PURCHASE, input=retry))["recordPurchase"]["errors"] == []


@pytest.mark.parametrize("status", ["SUSPENDED", "CLOSED"])
@pytest.mark.parametrize("by", ["memberId", "memberExternalId"])
async def test_an_inactive_member_cannot_earn(pos, admin, db, shop, status, by):
    changed = (await admin.data(UPDATE_MEMBER, input={"id": shop.member_id, "status": status}))[
        "updateMember"
    ]
    assert changed["errors"] == []
    assert changed["member"]["status"] == status
    before, seen_before = await stored(db), await seen_by_admin(admin, shop.member_id)
    who = (
        {"memberId": shop.member_id}
        if by == "memberId"
        else {"memberId": None, "memberExternalId": shop.external_id}
    )

    payload = (await pos.data(RECORD_PURCHASE, input=purchase_input(shop.member_id, **who)))[
        "recordPurchase"
    ]

    assert_user_error(payload, "MEMBER_INACTIVE", None)
    assert await stored(db) == before
    assert await seen_by_admin(admin, shop.member_id) == seen_before


async def test_a_duplicate_order_keeps_the_first_purchase(pos, admin, db, shop):
    again = purchase_input(shop.member_id, "99.00", orderId=shop.order_id)

    payload = (await pos.data(RECORD_PURCHASE, input=again))["recordPurchase"]

    assert_user_error(payload, "ALREADY_EXISTS", ["orderId"])
    member = await seen_by_admin(admin, shop.member_id)
    assert member["points"]["available"] == 10
    assert [edge["node"]["points"] for edge in member["ledger"]["edges"]] == [10]


async def test_a_purchase_whose_points_overflow_int_writes_nothing(pos, admin, db, shop):
    """3,000,000,000.00 USD at 1 point per unit: 3e9 points, more than a GraphQL Int holds."""
    before, seen_before = await stored(db), await seen_by_admin(admin, shop.member_id)

    response = await pos.post(
        RECORD_PURCHASE, input=purchase_input(shop.member_id, "3000000000.00")
    )

    assert response.status_code == 200, response.text
    assert await stored(db) == before, "the purchase was recorded although the answer is an error"
    assert await seen_by_admin(admin, shop.member_id) == seen_before


async def test_a_bad_purchase_integer_is_a_graphql_error_not_a_500(pos, db, shop):
    before = await stored(db)
    response = await pos.post(
        RECORD_PURCHASE, input=purchase_input(shop.member_id, lines=[{"quantity": 2**31}])
    )

    assert response.status_code < 500, response.text
    assert response.json()["errors"]
    assert await stored(db) == before


# --- enrollMember ---------------------------------------------------------------------------

BAD_ENROLLMENTS = [
    bad(
        "duplicate externalId",
        lambda s: {"externalId": s.external_id},
        "ALREADY_EXISTS",
        ["externalId"],
    ),
    bad(
        "duplicate externalId with spaces around",
        lambda s: {"externalId": f"  {s.external_id} "},
        "ALREADY_EXISTS",
        ["externalId"],
    ),
    bad("empty externalId", lambda s: {"externalId": ""}, "INVALID", ["externalId"]),
    bad("blank externalId", lambda s: {"externalId": "   "}, "INVALID", ["externalId"]),
    bad(
        "externalId of 1,000 chars",
        lambda s: {"externalId": "e" * 1_000},
        "INVALID",
        ["externalId"],
    ),
    bad("bad email", lambda s: {"email": "not-an-email"}, "INVALID", ["email"]),
    bad("email with two @", lambda s: {"email": "a@b@example.com"}, "INVALID", ["email"]),
    bad(
        "email of 1,000 chars",
        lambda s: {"email": "a" * 990 + "@example.com"},
        "INVALID",
        ["email"],
    ),
    bad("bad phone", lambda s: {"phone": "12345"}, "INVALID", ["phone"]),
    bad("phone with letters", lambda s: {"phone": "+1 415 CALL ME"}, "INVALID", ["phone"]),
    bad("firstName of 1,000 chars", lambda s: {"firstName": "F" * 1_000}, "INVALID", ["firstName"]),
    bad("lastName of 101 chars", lambda s: {"lastName": "L" * 101}, "INVALID", ["lastName"]),
    bad("NUL in externalId", lambda s: {"externalId": "a\x00b"}, "INVALID", ["externalId"]),
    bad("NUL in email", lambda s: {"email": "a\x00b@example.com"}, "INVALID", ["email"]),
    bad("NUL in firstName", lambda s: {"firstName": "Al\x00"}, "INVALID", ["firstName"]),
]


@pytest.mark.parametrize(("fields", "code", "field"), BAD_ENROLLMENTS)
async def test_a_bad_enrollment_is_refused_and_writes_nothing(pos, db, shop, fields, code, field):
    before = await stored(db)

    response = await pos.post(ENROLL, input={"externalId": f"new-{key()[:12]}", **fields(shop)})

    assert response.status_code == 200, response.text
    body = response.json()
    assert not body.get("errors"), body["errors"]
    assert_user_error(body["data"]["enrollMember"], code, field)
    assert await stored(db) == before


@pytest.mark.parametrize(
    ("fields", "code", "field"),
    [
        pytest.param({"email": "not-an-email"}, "INVALID", "email", id="bad email"),
        pytest.param({"phone": "12345"}, "INVALID", "phone", id="bad phone"),
        pytest.param({"firstName": "F" * 1_000}, "INVALID", "firstName", id="long firstName"),
        pytest.param(
            {"firstName": "Valid", "lastName": "L" * 101}, "INVALID", "lastName", id="half valid"
        ),
        pytest.param({"status": None}, "INVALID", "status", id="null status"),
    ],
)
async def test_a_bad_profile_update_is_refused_and_writes_nothing(
    admin, db, shop, fields, code, field
):
    before = await stored(db)

    payload = (await admin.data(UPDATE_MEMBER, input={"id": shop.member_id, **fields}))[
        "updateMember"
    ]

    assert_user_error(payload, code, [field])
    assert await stored(db) == before


async def test_updating_an_unknown_member_is_not_found(admin, db, shop):
    before = await stored(db)
    for member_id in (encode_id("Member", 999_999), "garbage", shop.purchase_id):
        payload = (await admin.data(UPDATE_MEMBER, input={"id": member_id, "firstName": "X"}))[
            "updateMember"
        ]
        assert_user_error(payload, "NOT_FOUND", None)
    assert await stored(db) == before


# --- adjustPoints ---------------------------------------------------------------------------


def adjustment(member_id: str, points: int = 5, reason: str = "goodwill") -> dict[str, Any]:
    return {"idempotencyKey": key(), "memberId": member_id, "points": points, "reason": reason}


BAD_ADJUSTMENTS = [
    ("zero points", lambda s: adjustment(s.member_id, 0), "INVALID", ["points"]),
    ("empty reason", lambda s: adjustment(s.member_id, reason=""), "INVALID", ["reason"]),
    ("blank reason", lambda s: adjustment(s.member_id, reason="  "), "INVALID", ["reason"]),
    (
        "reason of 10,000 chars",
        lambda s: adjustment(s.member_id, reason="r" * 10_000),
        "INVALID",
        ["reason"],
    ),
    (
        "a debit larger than available",
        lambda s: adjustment(s.member_id, -11),
        "INSUFFICIENT_POINTS",
        None,
    ),
    (
        "a billion points",
        lambda s: adjustment(s.member_id, 1_000_000_000),
        "INVALID",
        ["points"],
    ),
    (
        "unknown member",
        lambda s: adjustment(encode_id("Member", 999_999)),
        "NOT_FOUND",
        ["memberId"],
    ),
    ("malformed member id", lambda s: adjustment("garbage"), "NOT_FOUND", ["memberId"]),
    (
        "empty idempotency key",
        lambda s: {**adjustment(s.member_id), "idempotencyKey": ""},
        "INVALID",
        ["idempotencyKey"],
    ),
]


@pytest.mark.parametrize(
    ("make_input", "code", "field"),
    [pytest.param(i, code, f, id=what) for what, i, code, f in BAD_ADJUSTMENTS],
)
async def test_a_bad_adjustment_is_refused_and_writes_nothing(
    admin, db, shop, make_input, code, field
):
    before, seen_before = await stored(db), await seen_by_admin(admin, shop.member_id)

    response = await admin.post(ADJUST, input=make_input(shop))

    assert response.status_code == 200, response.text
    body = response.json()
    assert not body.get("errors"), body["errors"]
    assert_user_error(body["data"]["adjustPoints"], code, field)
    assert await stored(db) == before
    member = await seen_by_admin(admin, shop.member_id)
    assert member == seen_before
    assert member["points"]["available"] == 10


async def test_a_debit_of_exactly_the_balance_is_allowed(admin, shop):
    """The boundary of INSUFFICIENT_POINTS: taking available to zero is fine."""
    payload = (await admin.data(ADJUST, input=adjustment(shop.member_id, -10)))["adjustPoints"]

    assert payload["errors"] == []
    assert payload["member"]["points"]["available"] == 0


async def test_a_closed_member_cannot_be_adjusted(admin, db, shop):
    await admin.data(UPDATE_MEMBER, input={"id": shop.member_id, "status": "CLOSED"})
    before = await stored(db)

    payload = (await admin.data(ADJUST, input=adjustment(shop.member_id, 5)))["adjustPoints"]

    assert_user_error(payload, "MEMBER_INACTIVE", None)
    assert await stored(db) == before


async def test_points_beyond_int32_are_a_graphql_error_not_a_500(admin, db, shop):
    before = await stored(db)

    response = await admin.post(ADJUST, input=adjustment(shop.member_id, 2**40))

    assert response.status_code < 500, response.text
    assert response.json()["errors"]
    assert await stored(db) == before


# --- updateProgram --------------------------------------------------------------------------

BAD_PROGRAM_CHANGES = [
    ("negative pendingDays", {"pendingDays": -1}, ["pendingDays"]),
    ("null pendingDays", {"pendingDays": None}, ["pendingDays"]),
    ("pendingDays of 10 years", {"pendingDays": 3650}, ["pendingDays"]),
    ("currency of 4 letters", {"currency": "EURO"}, ["currency"]),
    ("currency in digits", {"currency": "123"}, ["currency"]),
    ("empty currency", {"currency": ""}, ["currency"]),
    ("currency change once purchases exist", {"currency": "EUR"}, ["currency"]),
    ("pointsPerUnit abc", {"pointsPerUnit": "abc"}, ["pointsPerUnit"]),
    ("negative pointsPerUnit", {"pointsPerUnit": "-1"}, ["pointsPerUnit"]),
    ("NaN pointsPerUnit", {"pointsPerUnit": "NaN"}, ["pointsPerUnit"]),
    ("empty name", {"name": ""}, ["name"]),
    ("name of 1,000 chars", {"name": "n" * 1_000}, ["name"]),
    ("zero tierWindowDays", {"tierWindowDays": 0}, ["tierWindowDays"]),
    ("zero pointsExpireAfterDays", {"pointsExpireAfterDays": 0}, ["pointsExpireAfterDays"]),
    (
        "a good change beside a bad one",
        {"name": "New name", "pointsPerUnit": "2", "pendingDays": -1},
        ["pendingDays"],
    ),
]


@pytest.mark.parametrize(
    ("changes", "field"),
    [pytest.param(c, f, id=what) for what, c, f in BAD_PROGRAM_CHANGES],
)
async def test_a_bad_program_change_is_refused_and_writes_nothing(admin, db, shop, changes, field):
    before, program_before = await stored(db), (await admin.data(PROGRAM))["program"]

    response = await admin.post(UPDATE_PROGRAM, input=changes)

    assert response.status_code == 200, response.text
    body = response.json()
    assert not body.get("errors"), body["errors"]
    assert_user_error(body["data"]["updateProgram"], "INVALID", field)
    assert await stored(db) == before
    assert (await admin.data(PROGRAM))["program"] == program_before


# --- pagination arguments -------------------------------------------------------------------


@pytest.mark.parametrize(
    "query",
    [
        pytest.param("{ members(first: 1000) { edges { node { id } } } }", id="first 1000"),
        pytest.param("{ members(first: 101) { edges { node { id } } } }", id="first 101"),
        pytest.param("{ members(first: -1) { edges { node { id } } } }", id="first -1"),
        pytest.param('{ members(after: "junk") { edges { node { id } } } }', id="after junk"),
        pytest.param('{ members(after: "") { edges { node { id } } } }', id="after empty"),
        pytest.param(
            f'{{ members(after: "{encode_id("Member", 1)}") {{ edges {{ node {{ id }} }} }} }}',
            id="after a member id",
        ),
    ],
)
async def test_bad_pagination_arguments_are_a_graphql_error(admin, shop, query):
    response = await admin.post(query)

    assert response.status_code == 200, response.text
    body = response.json()
    assert [error["extensions"]["code"] for error in body["errors"]] == ["INVALID"], body
    assert (body.get("data") or {}).get("members") is None


@pytest.mark.parametrize(
    "arguments", ["first: 1000", "first: -1", 'after: "junk"'], ids=["first", "negative", "after"]
)
async def test_bad_pagination_of_a_member_ledger_is_a_graphql_error(admin, shop, arguments):
    ledger = f"ledger({arguments}) {{ edges {{ cursor }} }}"
    response = await admin.post(
        f"query M($id: ID!) {{ member(id: $id) {{ {ledger} }} }}", id=shop.member_id
    )

    assert response.status_code == 200, response.text
    body = response.json()
    assert [error["extensions"]["code"] for error in body["errors"]] == ["INVALID"], body


# --- malformed requests ---------------------------------------------------------------------


@pytest.fixture
async def server(settings, db, admin_key) -> AsyncIterator[GraphQLClient]:
    """An admin talking to the app as a real server answers: an unhandled exception is a 500."""
    app = create_app(settings, db=db)
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://loyalty.test") as http:
        yield GraphQLClient(http, admin_key)


def assert_refused_without_500(response: httpx.Response) -> None:
    """A 4xx, or a 200 carrying GraphQL errors and no data."""
    assert response.status_code < 500, (response.status_code, response.text)
    if response.status_code == 200:
        body = response.json()
        assert body["errors"], body
        assert not any((body.get("data") or {}).values()), body
    else:
        assert response.status_code >= 400, (response.status_code, response.text)


def _nested_member_query(levels: int) -> str:
    """member { id purchases { edges { node { member { id ... } } } } }: 4 levels per round."""
    selection = "id"
    for _ in range(levels):
        selection = f"id purchases(first: 1) {{ edges {{ node {{ member {{ {selection} }} }} }} }}"
    return f"query Deep($id: ID!) {{ member(id: $id) {{ {selection} }} }}"


async def test_a_query_deeper_than_10_is_refused_not_a_500(server, shop):
    deep = _nested_member_query(3)  # depth 14

    response = await server.post(deep, id=shop.member_id)

    assert_refused_without_500(response)
    assert "depth" in response.json()["errors"][0]["message"].lower()


async def test_a_query_within_the_depth_limit_works(admin, shop):
    shallow = _nested_member_query(2)  # depth 10

    data = await admin.data(shallow, id=shop.member_id)

    assert data["member"]["purchases"]["edges"][0]["node"]["member"]["id"] == shop.member_id


@pytest.mark.parametrize(
    "document",
    [
        pytest.param("{ member(id: ", id="unterminated"),
        pytest.param("query {", id="empty selection"),
        pytest.param("mutation { }", id="empty mutation"),
        pytest.param("{ nope }", id="unknown field"),
        pytest.param("{ member(id: 5) { id } } }", id="stray brace"),
        pytest.param("", id="empty document"),
        pytest.param("query A { program { name } } query A { tiers { id } }", id="two named A"),
        pytest.param("subscription { program { name } }", id="subscription"),
        pytest.param(
            "fragment A on Member { purchases { edges { node { member { ...A } } } } } "
            '{ member(id: "x") { ...A } }',
            id="fragment cycle",
        ),
        pytest.param(
            "{ " + " ".join(f"a{i}: program {{ name }}" for i in range(50)) + " }",
            id="50 aliases",
        ),
        pytest.param("{ " + "program { name } " * 3000 + "}", id="3000 fields"),
        pytest.param("{ program { name " + "}" * 5000, id="5000 closing braces"),
        pytest.param("{ " + "[" * 5000 + " }", id="5000 brackets"),
    ],
)
async def test_a_broken_document_is_an_error_not_a_500(server, document):
    response = await server.post(document)

    assert_refused_without_500(response)


@pytest.mark.parametrize(
    ("content", "content_type"),
    [
        pytest.param(b"this is not json", "application/json", id="not JSON"),
        pytest.param(b'{"query": "{ program { name } }"', "application/json", id="cut JSON"),
        pytest.param(b"", "application/json", id="empty body"),
        pytest.param(b"[1, 2, 3]", "application/json", id="a JSON array"),
        pytest.param(b'"{ program { name } }"', "application/json", id="a JSON string"),
        pytest.param(b"null", "application/json", id="JSON null"),
        pytest.param(b"42", "application/json", id="a JSON number"),
        pytest.param(b'{"query": 42}', "application/json", id="query not a string"),
        pytest.param(b"{}", "application/json", id="no query"),
        pytest.param(
            b'{"query": "{ program { name } }", "variables": "x"}',
            "application/json",
            id="variables not an object",
        ),
        pytest.param(
            b'{"query": "{ program { name } }", "operationName": 5}',
            "application/json",
            id="operationName not a string",
        ),
        pytest.param(b"\xff\xfe\x00garbage", "application/json", id="not UTF-8"),
        pytest.param(b"query=%7B%7D", "application/x-www-form-urlencoded", id="form body"),
        pytest.param(b"{ program { name } }", "text/plain", id="plain text"),
    ],
)
async def test_a_malformed_body_is_an_error_not_a_500(server, content, content_type):
    response = await server.http.post(
        "/graphql",
        content=content,
        headers={"Authorization": f"Bearer {server.token}", "Content-Type": content_type},
    )

    assert 400 <= response.status_code < 500, (response.status_code, response.text)


async def test_a_variable_of_the_wrong_type_is_an_error_not_a_500(server, db, shop):
    before = await stored(db)

    response = await server.post(RECORD_PURCHASE, input={"memberId": shop.member_id})

    assert_refused_without_500(response)
    assert await stored(db) == before


async def test_a_lone_surrogate_in_a_string_is_invalid(server, db, shop):
    before = await stored(db)
    body = json.dumps(
        {
            "query": RECORD_PURCHASE,
            "variables": {"input": purchase_input(shop.member_id, orderId="SURROGATE")},
        }
    ).replace("SURROGATE", "ab\\ud800cd")

    response = await server.http.post(
        "/graphql",
        content=body.encode(),
        headers={"Authorization": f"Bearer {server.token}", "Content-Type": "application/json"},
    )

    assert await stored(db) == before
    assert response.status_code == 200, response.text
    body = response.json()
    assert not body.get("errors"), body["errors"]
    assert_user_error(body["data"]["recordPurchase"], "INVALID", ["orderId"])


@pytest.mark.parametrize(
    ("document", "variables", "field"),
    [
        pytest.param(
            "query Q($x: String!) { memberByExternalId(externalId: $x) { id } }",
            {"x": "a\x00b"},
            "memberByExternalId",
            id="memberByExternalId",
        ),
        pytest.param(
            RECORD_PURCHASE,
            {"input": {**purchase_input("unused"), "memberId": None, "memberExternalId": "a\x00b"}},
            "recordPurchase",
            id="recordPurchase by externalId",
        ),
    ],
)
async def test_looking_up_an_external_id_with_a_nul_finds_nothing(
    server, db, shop, document, variables, field
):
    """SQLite answers "nobody"; PostgreSQL cannot compare a NUL and must not turn it into a 500."""
    before = await stored(db)

    response = await server.post(document, **variables)

    assert response.status_code == 200, response.text
    body = response.json()
    assert not body.get("errors"), body
    result = body["data"][field]
    if field == "recordPurchase":
        assert_user_error(result, "NOT_FOUND", ["memberExternalId"])
    else:
        assert result is None
    assert await stored(db) == before
