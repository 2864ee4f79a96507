"""Who may call what (API.md §2), through GraphQL over HTTP.

Every operation that exists today is sent by every kind of caller:

- bad credentials (none, unknown, revoked, expired, forged...) get HTTP 401 and
  ``UNAUTHENTICATED`` before anything runs;
- a known caller outside the operation's roles gets a ``FORBIDDEN`` GraphQL error, the field is
  null, nothing of another member leaks and nothing is written;
- an allowed caller gets a working answer.

In the matrix the member token belongs to Alice and every operation that names a member names
Bob, another member: what a member token may do with its *own* member is tested separately
below.
"""

import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import text

from loyalty.auth import service as auth
from loyalty.db import utcnow
from loyalty.ids import decode_id, encode_id
from tests.conftest import TEST_SECRET_KEY, GraphQLClient, make_key
from tests.helpers import ADJUST, ENROLL, RECORD_PURCHASE, enroll, key, purchase_input

pytestmark = pytest.mark.filterwarnings("ignore::jwt.warnings.InsecureKeyLengthWarning")

SECRET_KEY = TEST_SECRET_KEY  # the test settings' secret_key, which signs member tokens

ROLES = ("admin", "pos", "app", "member")

# Who may call what, as API.md §2 lists it. "member" is a member token naming someone else
# than the member the operation is about. program and tiers are readable by every known caller.
MATRIX = """
operation            admin  pos  app  member
member               yes    yes  no   no
memberByExternalId   yes    yes  no   no
members              yes    no   no   no
me                   no     no   no   yes
program              yes    yes  yes  yes
tiers                yes    yes  yes  yes
enrollMember         yes    yes  yes  no
updateMember         yes    no   no   no
issueMemberToken     yes    no   yes  no
recordPurchase       yes    yes  no   no
adjustPoints         yes    no   no   no
updateProgram        yes    no   no   no
"""


def _parse_matrix(table: str) -> dict[str, dict[str, bool]]:
    header, *rows = (line.split() for line in table.strip().splitlines())
    assert tuple(header[1:]) == ROLES
    allowed = {}
    for operation, *cells in rows:
        assert all(cell in ("yes", "no") for cell in cells), operation
        allowed[operation] = {role: cell == "yes" for role, cell in zip(ROLES, cells, strict=True)}
    return allowed


ALLOWED = _parse_matrix(MATRIX)


# --- the world every test starts from -------------------------------------------------------


@dataclass
class World:
    http: httpx.AsyncClient
    callers: dict[str, GraphQLClient]
    """admin, pos and app API keys, and a member token for Alice."""
    alice_id: str
    alice_external_id: str
    bob_id: str
    bob_external_id: str
    bob_email: str
    bad_authorization: dict[str, str | None]
    """Authorization header values that must all be refused with a 401."""


ISSUE_TOKEN = """
mutation Issue($input: IssueMemberTokenInput!) {
  issueMemberToken(input: $input) { token expiresAt errors { code field message } }
}
"""


async def issue_token(caller: GraphQLClient, member_id: str) -> str:
    payload = (await caller.data(ISSUE_TOKEN, input={"memberId": member_id}))["issueMemberToken"]
    assert payload["errors"] == [], payload["errors"]
    return payload["token"]


async def revoked_key(db, http: httpx.AsyncClient) -> str:
    """An admin key that worked until it was revoked."""
    secret = await make_key(db, "admin", "revoked later")
    before = await GraphQLClient(http, secret).post("{ program { name } }")
    assert before.status_code == 200, before.text
    async with db.transaction() as session:
        await auth.revoke_api_key(session, key_id_or_prefix=secret[:12])
    return secret


def member_token(member_id: str, *, secret: str = SECRET_KEY, age: timedelta) -> str:
    """A member token issued ``age`` ago, valid for one hour."""
    token, _ = auth.issue_member_token(
        member_id=decode_id("Member", member_id) or 0,
        secret=secret,
        ttl=timedelta(hours=1),
        now=utcnow() - age,
    )
    return token


@pytest.fixture
async def world(client, db, admin, pos, app_client) -> World:
    alice_external_id, bob_external_id = f"alice-{key()[:8]}", f"bob-{key()[:8]}"
    bob_email = f"bob-{key()[:8]}@example.com"
    alice_id = await enroll(admin, alice_external_id, email="alice@example.com")
    bob_id = await enroll(admin, bob_external_id, email=bob_email, firstName="Bob")
    bob_points = (
        await admin.data(ADJUST, input={**adjust_input(bob_id), "points": 40, "reason": "welcome"})
    )["adjustPoints"]
    assert bob_points["errors"] == []
    alice_token = await issue_token(app_client, alice_id)
    return World(
        http=client,
        callers={"admin": admin, "pos": pos, "app": app_client, "member": admin.as_(alice_token)},
        alice_id=alice_id,
        alice_external_id=alice_external_id,
        bob_id=bob_id,
        bob_external_id=bob_external_id,
        bob_email=bob_email,
        bad_authorization={
            "no token": None,
            "empty bearer": "Bearer ",
            "wrong scheme": f"Basic {alice_token}",
            "unknown API key": "Bearer lyk_" + secrets.token_urlsafe(32),
            "revoked API key": f"Bearer {await revoked_key(db, client)}",
            "expired member token": f"Bearer {member_token(alice_id, age=timedelta(hours=2))}",
            "forged member token": "Bearer "
            + member_token(alice_id, secret="not-the-secret", age=timedelta(0)),
            "garbage token": "Bearer not-a-token",
        },
    )


def adjust_input(member_id: str) -> dict[str, Any]:
    return {"idempotencyKey": key(), "memberId": member_id, "points": 10, "reason": "goodwill"}


async def written_state(db) -> dict[str, Any]:
    """Everything the operations below could write."""
    async with db.read_engine.connect() as connection:
        counts = {
            table: await connection.scalar(text(f"SELECT count(*) FROM {table}"))
            for table in ("members", "purchases", "ledger_entries", "idempotency_keys")
        }
        members = (
            await connection.execute(
                text(
                    "SELECT id, external_id, email, first_name, status, points_available "
                    "FROM members ORDER BY id"
                )
            )
        ).all()
        program = (
            await connection.execute(text("SELECT name, currency, points_per_unit FROM program"))
        ).all()
    return {
        **counts,
        "members": [tuple(m) for m in members],
        "program": [tuple(p) for p in program],
    }


# --- the operations -------------------------------------------------------------------------


@dataclass(frozen=True)
class Operation:
    field: str
    document: str
    variables: Callable[[World], dict[str, Any]]
    works: Callable[[Any, World], None]
    """Asserts what an allowed caller gets back in ``data[field]``."""

    def __str__(self) -> str:
        return self.field


def _no_errors(payload: dict[str, Any]) -> None:
    assert payload["errors"] == [], payload["errors"]


def _check_member(node: Any, world: World) -> None:
    assert node["id"] == world.bob_id
    assert node["email"] == world.bob_email
    assert node["points"]["available"] == 40


def _check_members(connection: Any, world: World) -> None:
    ids = [edge["node"]["id"] for edge in connection["edges"]]
    assert world.alice_id in ids
    assert world.bob_id in ids


def _check_me(me: Any, world: World) -> None:
    assert me["id"] == world.alice_id


def _check_program(program: Any, world: World) -> None:
    assert program["currency"] == "USD"


def _check_tiers(tiers: Any, world: World) -> None:
    assert isinstance(tiers, list)


def _check_enrolled(payload: Any, world: World) -> None:
    _no_errors(payload)
    assert payload["member"]["status"] == "ACTIVE"


def _check_updated(payload: Any, world: World) -> None:
    _no_errors(payload)
    assert payload["member"]["id"] == world.bob_id
    assert payload["member"]["firstName"] == "Robert"


def _check_token(payload: Any, world: World) -> None:
    _no_errors(payload)
    assert payload["token"]
    assert payload["expiresAt"]


def _check_purchase(payload: Any, world: World) -> None:
    _no_errors(payload)
    assert payload["pointsAwarded"] == 25
    assert payload["member"]["id"] == world.bob_id


def _check_adjustment(payload: Any, world: World) -> None:
    _no_errors(payload)
    assert payload["entry"]["points"] == 10
    assert payload["member"]["points"]["available"] == 50


def _check_program_update(payload: Any, world: World) -> None:
    _no_errors(payload)
    assert payload["program"]["name"] == "Renamed"


MEMBER_FIELDS = "id externalId email firstName status points { available }"

OPERATIONS = [
    Operation(
        "member",
        f"query Q($id: ID!) {{ member(id: $id) {{ {MEMBER_FIELDS} }} }}",
        lambda w: {"id": w.bob_id},
        _check_member,
    ),
    Operation(
        "memberByExternalId",
        f"query Q($x: String!) {{ memberByExternalId(externalId: $x) {{ {MEMBER_FIELDS} }} }}",
        lambda w: {"x": w.bob_external_id},
        _check_member,
    ),
    Operation(
        "members",
        f"{{ members(first: 10) {{ edges {{ node {{ {MEMBER_FIELDS} }} }} }} }}",
        lambda w: {},
        _check_members,
    ),
    Operation("me", f"{{ me {{ {MEMBER_FIELDS} }} }}", lambda w: {}, _check_me),
    Operation(
        "program",
        "{ program { name currency pointsPerUnit pendingDays } }",
        lambda w: {},
        _check_program,
    ),
    Operation(
        "tiers", "{ tiers { id name rank threshold multiplier } }", lambda w: {}, _check_tiers
    ),
    Operation(
        "enrollMember",
        ENROLL,
        lambda w: {"input": {"externalId": f"new-{key()[:12]}"}},
        _check_enrolled,
    ),
    Operation(
        "updateMember",
        f"""mutation U($input: UpdateMemberInput!) {{
          updateMember(input: $input) {{ member {{ {MEMBER_FIELDS} }} errors {{ code }} }}
        }}""",
        lambda w: {"input": {"id": w.bob_id, "firstName": "Robert"}},
        _check_updated,
    ),
    Operation(
        "issueMemberToken", ISSUE_TOKEN, lambda w: {"input": {"memberId": w.bob_id}}, _check_token
    ),
    Operation(
        "recordPurchase",
        RECORD_PURCHASE,
        lambda w: {"input": purchase_input(w.bob_id, "25.00")},
        _check_purchase,
    ),
    Operation(
        "adjustPoints", ADJUST, lambda w: {"input": adjust_input(w.bob_id)}, _check_adjustment
    ),
    Operation(
        "updateProgram",
        """mutation P($input: UpdateProgramInput!) {
          updateProgram(input: $input) { program { name currency } errors { code } }
        }""",
        lambda w: {"input": {"name": "Renamed"}},
        _check_program_update,
    ),
]


def test_the_matrix_covers_every_operation():
    assert [operation.field for operation in OPERATIONS] == list(ALLOWED)


def _field(body: dict[str, Any], field: str) -> Any:
    return (body.get("data") or {}).get(field)


def _codes(body: dict[str, Any]) -> list[str | None]:
    return [(error.get("extensions") or {}).get("code") for error in body.get("errors") or []]


# --- known callers: allowed or FORBIDDEN ----------------------------------------------------


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("operation", OPERATIONS, ids=str)
async def test_role_matrix(world, db, operation, role):
    caller = world.callers[role]
    before = await written_state(db)

    response = await caller.post(operation.document, **operation.variables(world))

    assert response.status_code == 200, response.text
    body = response.json()
    if ALLOWED[operation.field][role]:
        assert not body.get("errors"), body["errors"]
        operation.works(body["data"][operation.field], world)
    else:
        assert _codes(body) == ["FORBIDDEN"], body
        assert _field(body, operation.field) is None
        assert world.bob_email not in response.text
        assert await written_state(db) == before


# --- bad credentials: 401 before anything runs ----------------------------------------------

BAD_CREDENTIALS = [
    "no token",
    "empty bearer",
    "wrong scheme",
    "unknown API key",
    "revoked API key",
    "expired member token",
    "forged member token",
    "garbage token",
]


@pytest.mark.parametrize("credential", BAD_CREDENTIALS)
async def test_bad_credentials_get_401_on_every_operation(world, db, credential):
    """Authentication runs before GraphQL, so one test per credential sends every operation."""
    authorization = world.bad_authorization[credential]
    headers = {} if authorization is None else {"Authorization": authorization}
    before = await written_state(db)
    wrong = {}

    for operation in OPERATIONS:
        response = await world.http.post(
            "/graphql",
            json={"query": operation.document, "variables": operation.variables(world)},
            headers=headers,
        )
        body = response.json()
        if (
            response.status_code != 401
            or _codes(body)[:1] != ["UNAUTHENTICATED"]
            or body.get("data") is not None
            or world.bob_email in response.text
        ):
            wrong[operation.field] = (response.status_code, response.text[:300])

    assert wrong == {}
    assert await written_state(db) == before


# --- a member token and its own member ------------------------------------------------------

UPDATE_MEMBER = """
mutation U($input: UpdateMemberInput!) {
  updateMember(input: $input) {
    member { id firstName lastName email phone status }
    errors { code field message }
  }
}
"""

MEMBER_BY_ID = f"query Q($id: ID!) {{ member(id: $id) {{ {MEMBER_FIELDS} }} }}"
MEMBER_BY_EXTERNAL_ID = (
    f"query Q($x: String!) {{ memberByExternalId(externalId: $x) {{ {MEMBER_FIELDS} }} }}"
)


async def test_a_member_token_reads_its_own_member_by_id_and_through_me(world):
    alice = world.callers["member"]

    by_id = (await alice.data(MEMBER_BY_ID, id=world.alice_id))["member"]
    me = (await alice.data(f"{{ me {{ {MEMBER_FIELDS} }} }}"))["me"]

    assert by_id == me
    assert me["id"] == world.alice_id
    assert me["externalId"] == world.alice_external_id
    assert me["email"] == "alice@example.com"


async def test_a_member_token_reads_its_own_history(world, pos):
    await pos.data(RECORD_PURCHASE, input=purchase_input(world.alice_id, "12.00"))
    alice = world.callers["member"]

    me = (
        await alice.data(
            """{ me { points { available }
                 ledger(first: 5) { edges { node { kind points purchase { orderId } } } }
                 purchases(first: 5) { edges { node { total { amount } member { id } } } } } }"""
        )
    )["me"]

    assert me["points"]["available"] == 12
    assert [edge["node"]["kind"] for edge in me["ledger"]["edges"]] == ["EARN"]
    assert [edge["node"]["member"]["id"] for edge in me["purchases"]["edges"]] == [world.alice_id]


async def test_a_member_token_reads_its_own_member_by_external_id(world):
    alice = world.callers["member"]

    found = (await alice.data(MEMBER_BY_EXTERNAL_ID, x=world.alice_external_id))[
        "memberByExternalId"
    ]

    assert found["id"] == world.alice_id


@pytest.mark.parametrize(
    ("query", "variables"),
    [
        pytest.param(MEMBER_BY_ID, lambda w: {"id": w.bob_id}, id="another member by id"),
        pytest.param(
            MEMBER_BY_EXTERNAL_ID, lambda w: {"x": w.bob_external_id}, id="another by externalId"
        ),
        pytest.param(MEMBER_BY_ID, lambda w: {"id": encode_id("Member", 999_999)}, id="unknown id"),
        pytest.param(MEMBER_BY_ID, lambda w: {"id": "garbage"}, id="malformed id"),
        pytest.param(
            MEMBER_BY_EXTERNAL_ID, lambda w: {"x": "nobody-by-this-name"}, id="unknown externalId"
        ),
    ],
)
async def test_a_member_token_learns_nothing_about_other_members(world, query, variables):
    """Not even whether an id or externalId exists: the answer is FORBIDDEN either way."""
    response = await world.callers["member"].post(query, **variables(world))

    assert response.status_code == 200, response.text
    body = response.json()
    assert _codes(body) == ["FORBIDDEN"], body
    assert all(value is None for value in (body.get("data") or {}).values())
    assert world.bob_email not in response.text


async def test_a_member_token_updates_its_own_profile(world, admin):
    alice = world.callers["member"]

    payload = (
        await alice.data(
            UPDATE_MEMBER,
            input={"id": world.alice_id, "firstName": "Alice", "phone": "+14155550100"},
        )
    )["updateMember"]

    assert payload["errors"] == []
    assert payload["member"]["firstName"] == "Alice"
    stored = (await admin.data(MEMBER_BY_ID, id=world.alice_id))["member"]
    assert stored["firstName"] == "Alice"


@pytest.mark.parametrize("status", ["ACTIVE", "SUSPENDED", "CLOSED"])
async def test_a_member_token_cannot_change_its_own_status(world, db, status):
    alice = world.callers["member"]
    before = await written_state(db)

    response = await alice.post(
        UPDATE_MEMBER, input={"id": world.alice_id, "firstName": "Sneaky", "status": status}
    )

    body = response.json()
    assert response.status_code == 200, response.text
    assert _codes(body) == ["FORBIDDEN"], body
    assert _field(body, "updateMember") is None
    assert await written_state(db) == before


async def test_a_member_token_cannot_update_another_member(world, db, admin):
    alice = world.callers["member"]
    before = await written_state(db)

    response = await alice.post(UPDATE_MEMBER, input={"id": world.bob_id, "email": "x@evil.test"})

    body = response.json()
    assert _codes(body) == ["FORBIDDEN"], body
    assert _field(body, "updateMember") is None
    assert await written_state(db) == before
    bob = (await admin.data(MEMBER_BY_ID, id=world.bob_id))["member"]
    assert bob["email"] == world.bob_email


async def test_a_member_token_cannot_issue_tokens_even_for_itself(world):
    response = await world.callers["member"].post(ISSUE_TOKEN, input={"memberId": world.alice_id})

    body = response.json()
    assert _codes(body) == ["FORBIDDEN"], body
    assert _field(body, "issueMemberToken") is None


async def test_a_token_issued_by_the_app_names_its_member(world, app_client):
    token = await issue_token(app_client, world.bob_id)

    me = (await app_client.as_(token).data("{ me { id email } }"))["me"]

    assert me == {"id": world.bob_id, "email": world.bob_email}


async def test_a_member_token_stays_valid_until_it_expires(world):
    """A token issued 59 minutes ago with a one-hour lifetime still works."""
    almost_expired = world.callers["admin"].as_(
        member_token(world.alice_id, age=timedelta(minutes=59))
    )

    me = (await almost_expired.data("{ me { id } }"))["me"]

    assert me["id"] == world.alice_id


async def test_the_401_says_how_to_authenticate(world):
    response = await world.http.post("/graphql", json={"query": "{ program { name } }"})

    assert response.status_code == 401
    assert response.headers["www-authenticate"].lower().startswith("bearer")
    assert response.json()["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"


async def test_a_closed_members_token_stops_working_at_once(admin, app_client, pos):
    member_id = await enroll(pos)
    issued = await app_client.data(
        "mutation($input: IssueMemberTokenInput!) { issueMemberToken(input: $input) "
        "{ token errors { code } } }",
        input={"memberId": member_id},
    )
    phone = app_client.as_(issued["issueMemberToken"]["token"])
    assert (await phone.data("{ me { id } }"))["me"]["id"] == member_id

    await admin.data(
        "mutation($input: UpdateMemberInput!) { updateMember(input: $input) { errors { code } } }",
        input={"id": member_id, "status": "CLOSED"},
    )

    refused = await phone.post("{ me { id } }")
    assert refused.status_code == 401
    assert refused.json()["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"
