"""Webhooks end to end: a real HTTP receiver on 127.0.0.1, the worker, Standard Webhooks
signatures verified with the ``standardwebhooks`` package, retries, dead letters,
redelivery, order per member, several workers, SIGTERM, SSRF refusals and roles."""

import asyncio
import json
import os
import signal
import sys
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import update
from standardwebhooks.webhooks import Webhook as Verifier
from standardwebhooks.webhooks import WebhookVerificationError
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, RedirectResponse, Response
from starlette.routing import Route

from loyalty.config import Settings
from loyalty.db import Database, utcnow
from loyalty.errors import DomainError
from loyalty.outbox.models import Event
from loyalty.outbox.models import Webhook as WebhookRow
from loyalty.outbox.webhooks import check_url
from loyalty.outbox.worker import run
from tests.conftest import TEST_SECRET_KEY, execute_sql
from tests.helpers import enroll, record, serving

CREATE = """mutation($input: CreateWebhookInput!) { createWebhook(input: $input) {
  webhook { id url events description active disabledReason createdAt } secret
  errors { code field message } } }"""
UPDATE = """mutation($input: UpdateWebhookInput!) { updateWebhook(input: $input) {
  webhook { id url events description active } errors { code field message } } }"""
DELETE = """mutation($input: DeleteWebhookInput!) { deleteWebhook(input: $input) {
  webhook { id } errors { code field } } }"""
ROTATE = """mutation($input: RotateWebhookSecretInput!) { rotateWebhookSecret(input: $input) {
  webhook { id } secret errors { code field } } }"""
REDELIVER = """mutation($input: RedeliverWebhookDeliveryInput!) {
  redeliverWebhookDelivery(input: $input) {
    delivery { id status attempts } errors { code field } } }"""
DELIVERIES = """query($id: ID!, $status: WebhookDeliveryStatus) {
  webhookDeliveries(webhookId: $id, status: $status, first: 100) {
    edges { node { id eventId eventType status attempts lastAttemptAt responseStatus
                   responseBody lastError } } } }"""
WEBHOOKS = "{ webhooks(first: 10) { edges { node { id url events active } } } }"
WEBHOOK = "query($id: ID!) { webhook(id: $id) { id url active disabledReason } }"


@pytest.fixture
def settings(database_url: str) -> Settings:
    """Local receivers allowed; retries due at once and three attempts, so ``--once`` drains."""
    return Settings(
        database_url=database_url,
        secret_key=TEST_SECRET_KEY,
        debug=False,
        webhook_allow_http=True,
        webhook_retry_base_seconds=0,
        webhook_max_attempts=3,
        webhook_timeout_seconds=5,
    )


class Receiver:
    """Records every request; answers the statuses of ``script`` in turn, then 200."""

    def __init__(self) -> None:
        self.requests: list[tuple[dict[str, str], bytes, int]] = []
        self.script: list[int] = []
        self.url = ""
        self.redirect_url = ""
        self.arrived = asyncio.Event()
        self.hang_next = False
        self.release = asyncio.Event()

    async def hook(self, request: Request) -> Response:
        body = await request.body()
        if self.hang_next:
            self.hang_next = False
            self.requests.append((dict(request.headers), body, 0))
            self.arrived.set()
            await self.release.wait()
            return PlainTextResponse("too late")
        status = self.script.pop(0) if self.script else 200
        self.requests.append((dict(request.headers), body, status))
        self.arrived.set()
        return PlainTextResponse("x" * 5000 if status >= 500 else "ok", status_code=status)

    async def redirect(self, request: Request) -> Response:
        return RedirectResponse(self.url, status_code=302)

    def delivered(self) -> list[dict[str, Any]]:
        return [json.loads(body) for _, body, status in self.requests if status == 200]


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    target = Receiver()
    app = Starlette(
        routes=[
            Route("/hook", target.hook, methods=["POST"]),
            Route("/redirect", target.redirect, methods=["POST"]),
        ]
    )
    async with serving(app) as port:
        target.url = f"http://127.0.0.1:{port}/hook"
        target.redirect_url = f"http://127.0.0.1:{port}/redirect"
        yield target
        target.release.set()


async def create(admin: Any, url: str, events: list[str]) -> dict[str, Any]:
    payload = (await admin.data(CREATE, input={"url": url, "events": events}))["createWebhook"]
    assert payload["errors"] == [], payload["errors"]
    return payload


async def drain(db: Database, settings: Settings) -> Any:
    return await run(db, settings, once=True, stop=asyncio.Event())


async def deliveries(admin: Any, webhook_id: str, status: str | None = None) -> list[dict]:
    data = await admin.data(DELIVERIES, id=webhook_id, status=status)
    return [edge["node"] for edge in data["webhookDeliveries"]["edges"]]


async def test_deliveries_are_signed_and_verify_with_standardwebhooks(
    admin, pos, db, settings, receiver
):
    made = await create(admin, receiver.url, ["member.enrolled", "points.earned"])
    assert made["secret"].startswith("whsec_")
    assert made["webhook"]["active"] is True
    member = await enroll(pos)
    await record(pos, member, "12.00")

    report = await drain(db, settings)

    assert report.delivered == 2
    verifier = Verifier(made["secret"])
    payloads = [verifier.verify(body, headers) for headers, body, _ in receiver.requests]
    assert [p["type"] for p in payloads] == ["member.enrolled", "points.earned"]
    for (headers, _, _), payload in zip(receiver.requests, payloads, strict=True):
        assert headers["webhook-id"] == payload["id"]
        assert headers["webhook-signature"].startswith("v1,")
        assert payload["memberId"] == member
        assert set(payload) == {"id", "type", "occurredAt", "memberId", "data"}
    assert payloads[1]["data"]["points"] == 12
    with pytest.raises(WebhookVerificationError):
        Verifier(made["secret"]).verify(receiver.requests[0][1] + b" ", receiver.requests[0][0])

    listed = await deliveries(admin, made["webhook"]["id"])
    assert {(d["status"], d["attempts"], d["responseStatus"]) for d in listed} == {
        ("DELIVERED", 1, 200)
    }
    assert {d["eventId"] for d in listed} == {p["id"] for p in payloads}
    assert await drain(db, settings) is not None
    assert len(receiver.requests) == 2, "nothing is sent twice"


async def test_5xx_is_retried_then_dead_lettered_then_redelivered(
    admin, pos, db, settings, receiver
):
    made = await create(admin, receiver.url, ["member.enrolled"])
    webhook_id = made["webhook"]["id"]
    await enroll(pos)
    receiver.script = [500, 503]

    await drain(db, settings)

    assert [status for *_, status in receiver.requests] == [500, 503, 200]
    assert len({headers["webhook-id"] for headers, *_ in receiver.requests}) == 1
    [delivery] = await deliveries(admin, webhook_id)
    assert (delivery["status"], delivery["attempts"]) == ("DELIVERED", 3)

    await enroll(pos)
    receiver.script = [500, 500, 500]
    await drain(db, settings)
    [failed] = await deliveries(admin, webhook_id, "FAILED")
    assert (failed["attempts"], failed["responseStatus"]) == (3, 500)
    assert len(failed["responseBody"]) == 1024, "at most 1 KB of the answer is kept"
    assert failed["lastError"] == "HTTP 500"

    again = (await admin.data(REDELIVER, input={"deliveryId": failed["id"]}))[
        "redeliverWebhookDelivery"
    ]
    assert again["errors"] == []
    assert (again["delivery"]["status"], again["delivery"]["attempts"]) == ("PENDING", 0)
    await drain(db, settings)
    assert await deliveries(admin, webhook_id, "FAILED") == []
    assert receiver.requests[-1][2] == 200

    missing = await admin.data(REDELIVER, input={"deliveryId": "nope"})
    assert missing["redeliverWebhookDelivery"]["errors"][0]["code"] == "NOT_FOUND"


async def test_an_endpoint_failing_too_long_is_disabled_with_a_reason(
    admin, pos, db, settings, receiver
):
    # given an endpoint whose deliveries have failed, first failure 73 hours ago
    made = await create(admin, receiver.url, ["member.enrolled"])
    webhook_id = made["webhook"]["id"]
    await enroll(pos)
    receiver.script = [500, 500, 500]
    await drain(db, settings)
    assert (await admin.data(WEBHOOK, id=webhook_id))["webhook"]["active"] is True
    async with db.transaction() as session:
        await session.execute(
            update(WebhookRow).values(failing_since=utcnow() - timedelta(hours=73))
        )

    # when the next delivery fails too
    await enroll(pos)
    receiver.script = [500]
    await drain(db, settings)

    # then the endpoint is disabled with a reason, and what comes next waits for it
    hook = (await admin.data(WEBHOOK, id=webhook_id))["webhook"]
    assert hook["active"] is False
    assert "72 hours" in hook["disabledReason"]
    await enroll(pos)
    sent = len(receiver.requests)
    await drain(db, settings)
    assert len(receiver.requests) == sent
    assert len(await deliveries(admin, webhook_id, "PENDING")) == 2

    # and re-enabling it sends what waited, and clears the reason
    enabled = (await admin.data(UPDATE, input={"id": webhook_id, "active": True}))["updateWebhook"]
    assert enabled["errors"] == []
    hook = (await admin.data(WEBHOOK, id=webhook_id))["webhook"]
    assert (hook["active"], hook["disabledReason"]) == (True, None)
    await drain(db, settings)
    assert await deliveries(admin, webhook_id, "PENDING") == []
    assert receiver.requests[-1][2] == 200


def metric(text: str, name: str) -> float:
    """One sample of the Prometheus text ``text``, such as ``loyalty_outbox_lag_seconds``."""
    [value] = [line.split(" ")[-1] for line in text.splitlines() if line.startswith(name + " ")]
    return float(value)


async def test_metrics_report_outbox_lag_and_deliveries_by_status(
    admin, pos, db, settings, receiver, client
):
    # given an event written an hour ago that no worker has handled yet
    made = await create(admin, receiver.url, ["member.enrolled"])
    await enroll(pos)
    async with db.transaction() as session:
        await session.execute(update(Event).values(created_at=utcnow() - timedelta(hours=1)))
    text = (await client.get("/metrics")).text
    assert metric(text, "loyalty_outbox_lag_seconds") >= 3600
    assert metric(text, 'loyalty_webhook_deliveries{status="PENDING"}') == 0

    # when the worker delivers it, and another event fails three times
    await drain(db, settings)
    await enroll(pos)
    receiver.script = [500, 500, 500]
    await drain(db, settings)

    # then nothing is waiting, and deliveries and attempts are counted by status
    text = (await client.get("/metrics")).text
    assert metric(text, "loyalty_outbox_lag_seconds") == 0
    assert metric(text, 'loyalty_webhook_deliveries{status="DELIVERED"}') == 1
    assert metric(text, 'loyalty_webhook_deliveries{status="FAILED"}') == 1
    assert metric(text, 'loyalty_webhook_delivery_attempts{status="DELIVERED"}') == 1
    assert metric(text, 'loyalty_webhook_delivery_attempts{status="FAILED"}') == 3

    # and a paused endpoint's deliveries are counted as waiting, but are no lag
    await admin.data(UPDATE, input={"id": made["webhook"]["id"], "active": False})
    await enroll(pos)
    await drain(db, settings)
    text = (await client.get("/metrics")).text
    assert metric(text, 'loyalty_webhook_deliveries{status="PENDING"}') == 1
    assert metric(text, "loyalty_outbox_lag_seconds") == 0, "a paused endpoint is no lag"


async def test_4xx_is_final_and_408_429_are_retried_and_redirects_not_followed(
    admin, pos, db, settings, receiver
):
    made = await create(admin, receiver.url, ["member.enrolled"])
    receiver.script = [429, 408, 404]
    await enroll(pos)
    await drain(db, settings)
    [delivery] = await deliveries(admin, made["webhook"]["id"])
    assert (delivery["status"], delivery["attempts"], delivery["responseStatus"]) == (
        "FAILED",
        3,
        404,
    )

    moved = await create(admin, receiver.redirect_url, ["member.updated"])
    before = len(receiver.requests)
    await admin.data(
        "mutation($input: UpdateMemberInput!) { updateMember(input: $input) { errors { code } } }",
        input={"id": await enroll(pos), "firstName": "Bo"},
    )
    await drain(db, settings)
    [delivery] = await deliveries(admin, moved["webhook"]["id"])
    assert (delivery["status"], delivery["responseStatus"]) == ("FAILED", 302)
    assert delivery["lastError"] == "redirects are not followed"
    assert len(receiver.requests) == before + 1, "only the 404 of the first endpoint's retry"


async def test_order_per_member_holds_across_retries(admin, pos, db, settings, receiver):
    await create(admin, receiver.url, ["member.enrolled", "points.earned", "purchase.recorded"])
    member = await enroll(pos)
    for amount in ("1.00", "2.00", "3.00"):
        await record(pos, member, amount)
    receiver.script = [500, 500]

    await drain(db, settings)

    delivered = receiver.delivered()
    assert [(p["type"], p["data"].get("points")) for p in delivered] == [
        ("member.enrolled", None),
        ("purchase.recorded", None),
        ("points.earned", 1),
        ("purchase.recorded", None),
        ("points.earned", 2),
        ("purchase.recorded", None),
        ("points.earned", 3),
    ]


async def test_two_workers_never_send_one_delivery_twice(admin, pos, db, settings, receiver):
    await create(admin, receiver.url, ["member.enrolled"])
    for _ in range(30):
        await enroll(pos)
    other = Database(settings.database_url)
    try:
        await asyncio.gather(drain(db, settings), drain(other, settings))
    finally:
        await other.dispose()
    ids = [headers["webhook-id"] for headers, *_ in receiver.requests]
    assert len(ids) == 30
    assert len(set(ids)) == 30


async def test_the_worker_command_stops_on_sigterm(admin, pos, db, settings, receiver):
    await create(admin, receiver.url, ["member.enrolled"])
    env = {
        **os.environ,
        "LOYALTY_DATABASE_URL": settings.database_url,
        "LOYALTY_WEBHOOK_ALLOW_HTTP": "1",
        "LOYALTY_SECRET_KEY": TEST_SECRET_KEY,
    }
    worker = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "loyalty",
        "worker",
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        await enroll(pos)
        async with asyncio.timeout(60):
            await receiver.arrived.wait()
        worker.send_signal(signal.SIGTERM)
        async with asyncio.timeout(30):
            out, err = await worker.communicate()
    finally:
        if worker.returncode is None:
            worker.kill()
            await worker.wait()
    assert worker.returncode == 0, err.decode()
    assert b"1 delivered" in out


async def test_webhook_management(admin, pos, db, settings, receiver):
    made = await create(admin, receiver.url, ["member.enrolled"])
    webhook_id = made["webhook"]["id"]

    unknown = (await admin.data(CREATE, input={"url": receiver.url, "events": ["nope.x"]}))[
        "createWebhook"
    ]
    assert (unknown["errors"][0]["code"], unknown["errors"][0]["field"]) == ("INVALID", ["events"])
    assert unknown["webhook"] is None and unknown["secret"] is None
    for bad in ([], ["member.enrolled"] * 101, ["x" * 10_000]):
        refused = (await admin.data(CREATE, input={"url": receiver.url, "events": bad}))[
            "createWebhook"
        ]
        assert refused["errors"][0]["field"] == ["events"]
        assert len(refused["errors"][0]["message"]) < 600
    for bad_url in ("x" * 3000, "https://[::1", "http://", "https://exa mple.com/"):
        given = {"url": bad_url, "events": ["member.enrolled"]}
        refused = (await admin.data(CREATE, input=given))["createWebhook"]
        assert refused["errors"][0]["field"] == ["url"], bad_url

    changed = (
        await admin.data(
            UPDATE, input={"id": webhook_id, "events": ["member.updated"], "description": "CRM"}
        )
    )["updateWebhook"]
    assert changed["errors"] == []
    assert changed["webhook"]["events"] == ["member.updated"]
    assert changed["webhook"]["description"] == "CRM"

    rotated = (await admin.data(ROTATE, input={"id": webhook_id}))["rotateWebhookSecret"]
    assert rotated["secret"] != made["secret"]
    member = await enroll(pos)
    await admin.data(
        "mutation($input: UpdateMemberInput!) { updateMember(input: $input) { errors { code } } }",
        input={"id": member, "lastName": "Ng"},
    )
    await drain(db, settings)
    [(headers, body, _)] = receiver.requests
    assert Verifier(rotated["secret"]).verify(body, headers)["type"] == "member.updated"

    listed = (await admin.data(WEBHOOKS))["webhooks"]["edges"]
    assert [edge["node"]["id"] for edge in listed] == [webhook_id]
    gone = (await admin.data(DELETE, input={"id": webhook_id}))["deleteWebhook"]
    assert gone["errors"] == []
    assert (await admin.data(WEBHOOK, id=webhook_id))["webhook"] is None
    again = (await admin.data(DELETE, input={"id": webhook_id}))["deleteWebhook"]
    assert again["errors"][0]["code"] == "NOT_FOUND"


async def test_only_admins_manage_webhooks(admin, pos, app_client, receiver):
    for caller in (pos, app_client):
        body = await caller(CREATE, input={"url": receiver.url, "events": ["member.enrolled"]})
        assert body["errors"][0]["extensions"]["code"] == "FORBIDDEN"
        assert body["data"] is None
        body = await caller(WEBHOOKS)
        assert body["errors"][0]["extensions"]["code"] == "FORBIDDEN"


@pytest.mark.parametrize(
    "url",
    [
        "http://example.com/hook",
        "https://127.0.0.1/hook",
        "https://localhost/hook",
        "https://10.1.2.3/hook",
        "https://192.168.0.10/hook",
        "https://169.254.169.254/latest/meta-data",
        "https://[::1]/hook",
        "https://[::ffff:127.0.0.1]/hook",
        "https://0.0.0.0/hook",
        "https://user:pw@example.com/hook",
        "ftp://example.com/hook",
        "not a url",
    ],
)
async def test_ssrf_and_bad_urls_are_refused(url):
    with pytest.raises(DomainError) as refused:
        await check_url(url, allow_local=False)
    assert (refused.value.code, refused.value.field) == ("INVALID", ["url"])


async def test_public_https_urls_are_accepted_and_local_ones_when_allowed():
    assert await check_url("https://8.8.8.8/hook", allow_local=False) == "https://8.8.8.8/hook"
    assert await check_url("http://127.0.0.1:9/x", allow_local=True) == "http://127.0.0.1:9/x"


async def test_timeouts_and_a_receiver_that_is_down_are_retried(admin, pos, db, settings, receiver):
    made = await create(admin, receiver.url, ["member.enrolled"])
    receiver.hang_next = True
    await enroll(pos)
    await drain(db, settings.model_copy(update={"webhook_timeout_seconds": 0.5}))
    [delivery] = await deliveries(admin, made["webhook"]["id"])
    assert (delivery["status"], delivery["attempts"]) == ("DELIVERED", 2)
    assert [status for *_, status in receiver.requests] == [0, 200]

    down = await create(admin, "http://127.0.0.1:1/hook", ["member.updated"])
    member = await enroll(pos)
    await admin.data(
        "mutation($input: UpdateMemberInput!) { updateMember(input: $input) { errors { code } } }",
        input={"id": member, "firstName": "Cy"},
    )
    await drain(db, settings)
    [failed] = await deliveries(admin, down["webhook"]["id"])
    assert (failed["status"], failed["attempts"], failed["responseStatus"]) == ("FAILED", 3, None)
    assert failed["lastError"].startswith("connection failed")

    webhook_id = down["webhook"]["id"]
    await admin.data(UPDATE, input={"id": webhook_id, "url": receiver.url})
    await admin.data(REDELIVER, input={"deliveryId": failed["id"]})
    await drain(db, settings)
    assert receiver.delivered()[-1]["type"] == "member.updated"


async def test_a_killed_worker_loses_nothing(admin, pos, db, settings, receiver):
    """SIGKILL mid-request: the claimed delivery is sent again once its lease ends (here
    ended by hand rather than waited for), and events written meanwhile all go out."""
    await create(admin, receiver.url, ["member.enrolled"])
    env = {
        **os.environ,
        "LOYALTY_DATABASE_URL": settings.database_url,
        "LOYALTY_WEBHOOK_ALLOW_HTTP": "1",
        "LOYALTY_SECRET_KEY": TEST_SECRET_KEY,
    }
    receiver.hang_next = True
    first = await enroll(pos)
    worker = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "loyalty", "worker", env=env, stderr=asyncio.subprocess.PIPE
    )
    try:
        async with asyncio.timeout(60):
            await receiver.arrived.wait()
    finally:
        worker.kill()
        await worker.wait()
    later = [await enroll(pos) for _ in range(3)]
    await execute_sql(db, "UPDATE webhook_deliveries SET next_attempt_at = created_at")

    await drain(db, settings)

    delivered = [p["memberId"] for p in receiver.delivered()]
    assert delivered == [first, *later]
    ids = [headers["webhook-id"] for headers, *_ in receiver.requests]
    assert ids[0] == ids[1], "the interrupted delivery went again, with the same webhook-id"
