"""Live updates: GraphQL subscriptions over WebSocket (graphql-transport-ws) against a real
uvicorn, on both databases, and across server processes on PostgreSQL.

Nothing here waits on a clock: "does not receive" is shown by order (another member's change
commits first, and the first push is the subscriber's own).
"""

import asyncio
import json
import os
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from loyalty.app import create_app
from loyalty.config import Settings
from loyalty.db import Database
from loyalty.ledger.jobs import release_pending
from tests.cli import free_port
from tests.conftest import TEST_SECRET_KEY, GraphQLClient
from tests.helpers import enroll, grant, record, serving
from tests.test_lifecycle import PROGRAM
from tests.test_roles import issue_token
from tests.test_schema import is_subscription

OPERATIONS = Path(__file__).resolve().parent.parent / "schema" / "operations"
MEMBER_UPDATED = (OPERATIONS / "app" / "member_updated.graphql").read_text()
EVENTS = (OPERATIONS / "admin" / "events.graphql").read_text()
PROTOCOL = "graphql-transport-ws"
WAIT = 30.0
"""Upper bound for a push to arrive (a failing test, not a timing assert)."""


async def open_subscriptions(ws_url: str, field: str) -> int:
    """``loyalty_subscriptions_open`` of the server behind ``ws_url``."""
    url = ws_url.replace("ws://", "http://").replace("/graphql", "/metrics")
    async with httpx.AsyncClient() as http:
        text = (await http.get(url)).text
    line = f'loyalty_subscriptions_open{{field="{field}"}} '
    found = [row for row in text.splitlines() if row.startswith(line)]
    return int(float(found[0].removeprefix(line))) if found else 0


async def until_open(ws_url: str, field: str, count: int) -> None:
    """Waits until the server counts ``count`` open subscriptions of ``field``."""
    async with asyncio.timeout(WAIT):
        while await open_subscriptions(ws_url, field) != count:  # noqa: ASYNC110
            await asyncio.sleep(0.01)


def test_these_are_the_subscription_documents_of_schema_operations() -> None:
    found = {str(p.relative_to(OPERATIONS)) for p in OPERATIONS.rglob("*.graphql")}
    assert {p for p in found if is_subscription(OPERATIONS / p)} == {
        "app/member_updated.graphql",
        "admin/events.graphql",
    }


class Socket:
    """A graphql-transport-ws client over one WebSocket."""

    def __init__(self, connection: ClientConnection, url: str) -> None:
        self.connection = connection
        self.url = url

    async def send(self, message: dict[str, Any]) -> None:
        await self.connection.send(json.dumps(message))

    async def receive(self) -> dict[str, Any]:
        while True:
            message = json.loads(await asyncio.wait_for(self.connection.recv(), WAIT))
            if message["type"] == "ping":
                await self.send({"type": "pong"})
                continue
            return message  # type: ignore[no-any-return]

    async def subscribe(self, query: str, op_id: str = "1", **variables: Any) -> None:
        """Subscribes; returns once the server counts the subscription open (its /metrics),
        so a change committed after this is one the subscription hears of."""
        field = "events" if "events(" in query else "memberUpdated"
        before = await open_subscriptions(self.url, field)
        await self.send_subscribe(query, op_id, **variables)
        await until_open(self.url, field, before + 1)

    async def send_subscribe(self, query: str, op_id: str = "1", **variables: Any) -> None:
        payload = {"query": query, "variables": variables}
        await self.send({"id": op_id, "type": "subscribe", "payload": payload})

    async def next_data(self) -> dict[str, Any]:
        message = await self.receive()
        assert message["type"] == "next", message
        assert "errors" not in message["payload"], message
        return message["payload"]["data"]  # type: ignore[no-any-return]


async def open_socket(url: str, token: str | None) -> tuple[ClientConnection, dict[str, Any]]:
    """Connects and sends connection_init; returns the server's answer (or its close)."""
    connection = await connect(url, subprotocols=[PROTOCOL])  # type: ignore[list-item]
    payload = {"Authorization": f"Bearer {token}"} if token else {}
    await connection.send(json.dumps({"type": "connection_init", "payload": payload}))
    try:
        answer = json.loads(await asyncio.wait_for(connection.recv(), WAIT))
    except ConnectionClosed as closed:
        answer = {"closed": closed.rcvd.code if closed.rcvd else None}
    return connection, answer


@asynccontextmanager
async def session(url: str, token: str) -> AsyncIterator[Socket]:
    """A signed-in connection."""
    connection, answer = await open_socket(url, token)
    assert answer == {"type": "connection_ack"}, answer
    try:
        yield Socket(connection, url)
    finally:
        await connection.close()


@pytest.fixture
async def ws_url(settings: Settings, db: Database) -> AsyncIterator[str]:
    """The app served by a real uvicorn in this process, on a free port."""
    app = create_app(settings, db=db)
    async with serving(app) as port:
        yield f"ws://127.0.0.1:{port}/graphql"
    await app.state.feed.close()


async def member_with_token(pos: GraphQLClient, app_client: GraphQLClient) -> tuple[str, str]:
    member_id = await enroll(pos)
    return member_id, await issue_token(app_client, member_id)


async def test_a_member_token_receives_its_own_balance_and_not_another_members(
    ws_url, pos, app_client
):
    # given two members, one subscribed with its token
    me, token = await member_with_token(pos, app_client)
    other = await enroll(pos)
    async with session(ws_url, token) as socket:
        await socket.subscribe(MEMBER_UPDATED)
        # when the other member's purchase commits first, then the subscriber's
        await record(pos, other, "40.00")
        after = await record(pos, me, "25.00")
        # then the first push is the subscriber's own new balance
        pushed = (await socket.next_data())["memberUpdated"]
        assert pushed["id"] == me
        assert pushed["points"] == after["member"]["points"]
        assert pushed["points"]["available"] > 0


async def test_each_committed_change_is_pushed_once(ws_url, pos, admin, app_client):
    me, token = await member_with_token(pos, app_client)
    async with session(ws_url, token) as socket:
        await socket.subscribe(MEMBER_UPDATED)
        first = await record(pos, me, "10.00")
        assert (await socket.next_data())["memberUpdated"]["points"] == first["member"]["points"]
        await grant(admin, me, 7)
        pushed = (await socket.next_data())["memberUpdated"]["points"]
        assert pushed["available"] == first["member"]["points"]["available"] + 7


async def test_admin_events_are_filtered_by_type(ws_url, pos, admin, admin_key):
    member_id = await enroll(pos)
    async with session(ws_url, admin_key) as socket:
        await socket.subscribe(EVENTS, types=["purchase.recorded"])
        # when an adjustment (points.adjusted) and a purchase (points.earned,
        # purchase.recorded) commit
        await grant(admin, member_id, 5)
        made = await record(pos, member_id, "12.00")
        # then only the purchase arrives, with the webhook body's fields
        event = (await socket.next_data())["events"]
        assert event["type"] == "purchase.recorded"
        assert event["memberId"] == member_id
        assert event["data"]["purchase"]["pointsAwarded"] == made["pointsAwarded"]
        assert len(event["id"]) == 36


async def test_admin_events_without_types_receive_every_type(ws_url, pos, admin_key):
    member_id = await enroll(pos)
    async with session(ws_url, admin_key) as socket:
        await socket.subscribe(EVENTS)
        await record(pos, member_id, "12.00")
        types = {(await socket.next_data())["events"]["type"] for _ in range(2)}
        assert types == {"points.earned", "purchase.recorded"}


async def test_unknown_event_types_are_invalid(ws_url, admin_key):
    async with session(ws_url, admin_key) as socket:
        await socket.send_subscribe(EVENTS, types=["points.earned", "no.such"])
        message = await socket.receive()
        assert message["type"] in ("next", "error"), message
        errors = message["payload"] if message["type"] == "error" else message["payload"]["errors"]
        assert errors[0]["extensions"]["code"] == "INVALID"


async def test_a_jobs_set_based_events_reach_the_member_and_admins(
    ws_url, db, admin, admin_key, pos, app_client
):
    # given points pending for a member subscribed, and an admin watching releases
    await admin.data(PROGRAM, input={"pendingDays": 7})
    me, token = await member_with_token(pos, app_client)
    bought = datetime.now(UTC) - timedelta(days=2)
    await record(pos, me, "40.00", occurredAt=bought.isoformat())
    async with session(ws_url, token) as member, session(ws_url, admin_key) as staff:
        await member.subscribe(MEMBER_UPDATED)
        await staff.subscribe(EVENTS, types=["points.released"])
        # when the job releases them (one INSERT ... SELECT of events)
        assert (await release_pending(db, now=bought + timedelta(days=7))).points == 40
        # then both hear of it
        points = (await member.next_data())["memberUpdated"]["points"]
        assert (points["available"], points["pending"]) == (40, 0)
        event = (await staff.next_data())["events"]
        assert (event["type"], event["memberId"]) == ("points.released", me)
    # and closing the connections closes the subscriptions
    await until_open(ws_url, "memberUpdated", 0)
    await until_open(ws_url, "events", 0)


@pytest.mark.parametrize(
    ("role", "document"),
    [("pos", EVENTS), ("member", EVENTS), ("admin", MEMBER_UPDATED), ("pos", MEMBER_UPDATED)],
)
async def test_roles_outside_a_subscription_are_forbidden(
    ws_url, pos, app_client, admin_key, pos_key, role, document
):
    token = {"admin": admin_key, "pos": pos_key}.get(role)
    if token is None:
        _, token = await member_with_token(pos, app_client)
    async with session(ws_url, token) as socket:
        await socket.send_subscribe(document)
        message = await socket.receive()
        errors = message["payload"] if message["type"] == "error" else message["payload"]["errors"]
        assert errors[0]["extensions"]["code"] == "FORBIDDEN", message


@pytest.mark.parametrize("token", [None, "not-a-token", "lk_unknownkey"])
async def test_missing_or_bad_credentials_in_connection_init_are_refused(ws_url, token):
    connection, answer = await open_socket(ws_url, token)
    await connection.close()
    assert answer == {"closed": 4403}


async def test_a_subscription_ends_when_its_member_is_closed(ws_url, pos, admin, app_client):
    me, token = await member_with_token(pos, app_client)
    async with session(ws_url, token) as socket:
        await socket.subscribe(MEMBER_UPDATED)
        closed = await admin.data(
            "mutation($input: UpdateMemberInput!) { updateMember(input: $input) "
            "{ errors { code } } }",
            input={"id": me, "status": "CLOSED"},
        )
        assert closed["updateMember"]["errors"] == []
        message = await socket.receive()
        assert message["type"] == "next"
        assert message["payload"]["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"


@pytest.fixture
async def other_server(settings: Settings, backend: str) -> AsyncIterator[str]:
    """``loyalty serve`` in a process of its own, on the same database."""
    if backend != "postgres":
        pytest.skip("across processes through LISTEN/NOTIFY: PostgreSQL only")
    port = free_port()
    env = {
        **os.environ,
        "LOYALTY_DATABASE_URL": settings.database_url,
        "LOYALTY_SECRET_KEY": TEST_SECRET_KEY,
    }
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        *("-m", "loyalty", "serve", "--port", str(port), "--workers", "1"),
        env=env,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )
    try:
        async with httpx.AsyncClient() as http, asyncio.timeout(WAIT):
            while True:
                assert process.returncode is None, "loyalty serve exited"
                try:
                    if (await http.get(f"http://127.0.0.1:{port}/healthz")).status_code == 200:
                        break
                except httpx.TransportError:
                    await asyncio.sleep(0.05)
        yield f"ws://127.0.0.1:{port}/graphql"
    finally:
        process.terminate()
        await process.wait()


async def test_a_purchase_through_another_process_reaches_the_subscriber(
    other_server, pos, app_client, admin_key
):
    # given a member subscribed on one server process, and an admin on the same one
    me, token = await member_with_token(pos, app_client)
    async with session(other_server, token) as member, session(other_server, admin_key) as staff:
        await member.subscribe(MEMBER_UPDATED)
        await staff.subscribe(EVENTS, types=["points.earned"])
        # when the purchase is recorded through this process's app
        after = await record(pos, me, "30.00")
        # then both hear of it
        pushed = (await member.next_data())["memberUpdated"]
        assert pushed["points"] == after["member"]["points"]
        event = (await staff.next_data())["events"]
        assert (event["type"], event["memberId"]) == ("points.earned", me)


@pytest.mark.parametrize("document", [MEMBER_UPDATED, EVENTS])
async def test_a_subscription_over_http_is_a_bad_request(admin, document):
    response = await admin.post(document)
    assert response.status_code == 400
    assert response.json()["errors"][0]["extensions"]["code"] == "BAD_REQUEST"
    assert "WebSocket" in response.json()["errors"][0]["message"]


async def test_queries_and_mutations_are_refused_over_the_websocket(ws_url, admin_key):
    async with session(ws_url, admin_key) as socket:
        await socket.send_subscribe("{ program { name } }")
        message = await socket.receive()
        assert message["type"] == "error"
        assert message["payload"][0]["extensions"]["code"] == "BAD_REQUEST"
        # and the connection still serves subscriptions
        await socket.subscribe(EVENTS, op_id="2")
