"""``loyalty worker``: fans committed events out to deliveries and sends them.

Design. Services and jobs write only the event (``loyalty.outbox.service``), so the write path
pays one ``INSERT`` and nothing for webhooks. The worker then, in a loop:

1. **Fans out** undispatched events (oldest first, ``FANOUT_BATCH`` at a time): one delivery
   row per webhook subscribed to the event's type (paused endpoints included, so nothing is
   lost while one is off), and marks the events dispatched, in one transaction. Only one
   worker fans out at a time (a transaction-level advisory lock on PostgreSQL, the write lock
   on SQLite), so deliveries are created in event order.
2. **Claims** due deliveries of active endpoints: ``PENDING``, ``next_attempt_at <= now``, and
   the oldest ``PENDING`` delivery of its endpoint and member (order per member). The
   claim takes a lease (``next_attempt_at = now + lease``) and counts the attempt, then
   commits; ``FOR UPDATE SKIP LOCKED`` on PostgreSQL lets several workers claim side by side
   without ever claiming one delivery twice. A worker killed mid-request leaves its claims to
   expire and be retried: delivery is at least once, and receivers de-duplicate on
   ``webhook-id`` (the event id).
3. **Sends** the claimed batch concurrently: a POST of ``{id, type, occurredAt, memberId,
   data}``, signed per Standard Webhooks, no redirects followed, a timeout, at most 1 KB of
   the answer kept.
4. **Records** each outcome: 2xx ``DELIVERED``; timeouts, connection errors, 5xx, 408 and 429
   retried after an exponential, jittered delay until the attempt limit, then ``FAILED``;
   other statuses ``FAILED`` at once. An endpoint failing for
   ``LOYALTY_WEBHOOK_DISABLE_AFTER_HOURS`` without a success is disabled with a reason.

Stopping (SIGTERM/SIGINT) lets the batch in flight finish and be recorded, then exits.
"""

import asyncio
import contextlib
import json
import random
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

import aiohttp
from sqlalchemy import Select, and_, bindparam, func, insert, or_, select, text, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased
from standardwebhooks.webhooks import Webhook as Signer

from loyalty.config import Settings
from loyalty.db import Database, UTCDateTime, utcnow
from loyalty.ids import encode_id
from loyalty.outbox.models import DeliveryStatus, Event, Webhook, WebhookDelivery
from loyalty.outbox.service import iso
from loyalty.outbox.webhooks import resolve_public

FANOUT_BATCH = 500
CLAIM_BATCH = 50
IDLE_SECONDS = 1.0
GATHER_SECONDS = 0.2
"""After a batch smaller than CLAIM_BATCH, wait this long for more events before the next
round: under a steady trickle each round's five statements then carry many events, not one."""
RESPONSE_BYTES = 1024
FANOUT_LOCK = 0x6C6F79616C7479
"""Advisory lock key taken while fanning out (PostgreSQL): "loyalty" in hex."""
RETRIED_STATUSES = frozenset({408, 429})


@dataclass(frozen=True)
class Claimed:
    delivery_id: int
    attempts: int
    webhook_id: int
    url: str
    secret: str
    event_id: str
    body: str


@dataclass(frozen=True)
class Outcome:
    delivered: bool
    retry: bool
    status: int | None = None
    body: str | None = None
    error: str | None = None


@dataclass
class Report:
    delivered: int = 0
    retried: int = 0
    failed: int = 0

    def __str__(self) -> str:
        return f"{self.delivered} delivered, {self.retried} to retry, {self.failed} failed"


def _postgres(session: AsyncSession) -> bool:
    return session.get_bind().dialect.name == "postgresql"


async def fan_out(db: Database, *, now: datetime) -> int:
    """Make the deliveries of up to ``FANOUT_BATCH`` undispatched events; returns how many
    events it dispatched."""
    async with db.transaction() as session:
        if _postgres(session):
            await session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": FANOUT_LOCK})
        events = (
            await session.execute(
                select(Event.id, Event.type, Event.member_id)
                .where(Event.dispatched_at.is_(None))
                .order_by(Event.id)
                .limit(FANOUT_BATCH)
            )
        ).all()
        if not events:
            return 0
        hooks = (await session.execute(select(Webhook.id, Webhook.events))).all()
        rows = [
            {
                "webhook_id": hook.id,
                "event_id": event.id,
                "member_id": event.member_id,
                "status": DeliveryStatus.PENDING.value,
                "attempts": 0,
                "next_attempt_at": now,
                "created_at": now,
            }
            for event in events
            for hook in hooks
            if event.type in hook.events
        ]
        if rows:
            await session.execute(insert(WebhookDelivery.__table__), rows)
        await session.execute(
            update(Event)
            .where(Event.id.in_([event.id for event in events]))
            .values(dispatched_at=now)
        )
    return len(events)


def _body(event: Any) -> str:
    return json.dumps(
        {
            "id": event.event_id,
            "type": event.type,
            "occurredAt": iso(event.occurred_at),
            "memberId": None if event.member_id is None else encode_id("Member", event.member_id),
            "data": event.data,
        },
        separators=(",", ":"),
    )


async def claim(db: Database, *, now: datetime, lease: timedelta, limit: int) -> list[Claimed]:
    """Take up to ``limit`` due deliveries for this worker (see the module's design)."""
    d = WebhookDelivery
    async with db.transaction() as session:
        due = _due(now=now, limit=limit)
        if _postgres(session):
            due = due.with_for_update(of=d, skip_locked=True)
        ids = list((await session.scalars(due)).all())
        if not ids:
            return []
        await session.execute(
            update(d)
            .where(d.id.in_(ids))
            .values(next_attempt_at=now + lease, attempts=d.attempts + 1, last_attempt_at=now)
        )
        rows = (
            await session.execute(
                select(
                    d.id,
                    d.attempts,
                    Webhook.id.label("webhook_id"),
                    Webhook.url,
                    Webhook.secret,
                    Event.event_id,
                    Event.type,
                    Event.occurred_at,
                    Event.member_id,
                    Event.data,
                )
                .join(Webhook, Webhook.id == d.webhook_id)
                .join(Event, Event.id == d.event_id)
                .where(d.id.in_(ids))
                .order_by(d.event_id)
            )
        ).all()
    return [
        Claimed(
            delivery_id=row.id,
            attempts=row.attempts,
            webhook_id=row.webhook_id,
            url=row.url,
            secret=row.secret,
            event_id=row.event_id,
            body=_body(row),
        )
        for row in rows
    ]


def _due(*, now: datetime, limit: int) -> Select[int]:
    """The first ``limit`` deliveries due to active endpoints, by event: for a member's events,
    only the oldest still pending to each endpoint, so they arrive in order."""
    d = WebhookDelivery
    earlier = aliased(WebhookDelivery)
    # The member's oldest pending delivery to this endpoint, as a scalar subquery: it runs as
    # a lookup in ix_webhook_deliveries_order per candidate whatever the table's statistics
    # say (a NOT EXISTS may be planned as a quadratic anti-join on a freshly filled table).
    oldest = (
        select(earlier.event_id)
        .where(
            earlier.webhook_id == d.webhook_id,
            earlier.member_id == d.member_id,
            earlier.status == DeliveryStatus.PENDING,
        )
        .order_by(earlier.event_id)
        .limit(1)
        .scalar_subquery()
    )
    return (
        select(d.id)
        .join(Webhook, Webhook.id == d.webhook_id)
        .where(
            d.status == DeliveryStatus.PENDING,
            d.next_attempt_at <= now,
            Webhook.active.is_(True),
            or_(d.member_id.is_(None), d.event_id == oldest),
        )
        .order_by(d.event_id)
        .limit(limit)
    )


def signed_headers(claimed: Claimed, *, now: datetime) -> dict[str, str]:
    """The Standard Webhooks headers: id, timestamp, and the v1 HMAC signature."""
    return {
        "content-type": "application/json",
        "user-agent": "loyalty-webhooks",
        "webhook-id": claimed.event_id,
        "webhook-timestamp": str(int(now.timestamp())),
        "webhook-signature": Signer(claimed.secret).sign(claimed.event_id, now, claimed.body),
    }


async def send(client: aiohttp.ClientSession, claimed: Claimed, *, allow_local: bool) -> Outcome:
    """One POST; never raises for the receiver's failures."""
    if not allow_local:
        host = urlsplit(claimed.url).hostname or ""
        problem = await resolve_public(host, urlsplit(claimed.url).port)
        if problem:
            return Outcome(delivered=False, retry=True, error=problem[:500])
    try:
        async with client.post(
            claimed.url,
            data=claimed.body.encode(),
            headers=signed_headers(claimed, now=utcnow()),
            allow_redirects=False,
        ) as response:
            status = response.status
            kept = await response.content.read(RESPONSE_BYTES)
    except TimeoutError:
        return Outcome(delivered=False, retry=True, error="timeout")
    except aiohttp.ClientConnectionError as error:
        return Outcome(delivered=False, retry=True, error=f"connection failed: {error}"[:500])
    except aiohttp.ClientError as error:
        return Outcome(delivered=False, retry=True, error=f"{type(error).__name__}: {error}"[:500])
    body = kept.decode("utf-8", "replace")
    if 200 <= status < 300:
        return Outcome(delivered=True, retry=False, status=status, body=body)
    retry = status >= 500 or status in RETRIED_STATUSES
    reason = "redirects are not followed" if 300 <= status < 400 else f"HTTP {status}"
    return Outcome(delivered=False, retry=retry, status=status, body=body, error=reason)


_DELIVERIES = WebhookDelivery.__table__
_RECORD = (
    update(_DELIVERIES)
    .where(_DELIVERIES.c.id == bindparam("delivery"))
    .values(
        status=bindparam("new_status"),
        next_attempt_at=bindparam("next", type_=UTCDateTime()),
        response_status=bindparam("code"),
        response_body=bindparam("body"),
        last_error=bindparam("error"),
    )
)
"""One executemany for a batch's outcomes."""


def backoff(attempts: int, settings: Settings) -> timedelta:
    """Exponential in the attempts made, capped, with equal jitter (half fixed, half random)."""
    delay = min(
        settings.webhook_retry_base_seconds * 2 ** max(attempts - 1, 0),
        settings.webhook_retry_max_seconds,
    )
    return timedelta(seconds=delay / 2 + random.uniform(0, delay / 2))


async def record(
    db: Database,
    outcomes: list[tuple[Claimed, Outcome]],
    *,
    now: datetime,
    settings: Settings,
    report: Report,
) -> None:
    """Write a batch's outcomes, and the endpoints' health, in one transaction."""
    succeeded: set[int] = set()
    failing: set[int] = set()
    rows: list[dict[str, Any]] = []
    for claimed, outcome in outcomes:
        status, next_attempt_at = DeliveryStatus.PENDING, now
        if outcome.delivered:
            status = DeliveryStatus.DELIVERED
            report.delivered += 1
            succeeded.add(claimed.webhook_id)
        elif outcome.retry and claimed.attempts < settings.webhook_max_attempts:
            next_attempt_at = now + backoff(claimed.attempts, settings)
            report.retried += 1
            failing.add(claimed.webhook_id)
        else:
            status = DeliveryStatus.FAILED
            report.failed += 1
            failing.add(claimed.webhook_id)
        rows.append(
            {
                "delivery": claimed.delivery_id,
                "new_status": status.value,
                "next": next_attempt_at,
                "code": outcome.status,
                "body": outcome.body,
                "error": outcome.error,
            }
        )
    async with db.transaction() as session:
        await session.execute(_RECORD, rows)
        if succeeded:
            await session.execute(
                update(Webhook).where(Webhook.id.in_(succeeded)).values(failing_since=None)
            )
        failing -= succeeded
        if failing:
            await session.execute(
                update(Webhook)
                .where(Webhook.id.in_(failing))
                .values(failing_since=func.coalesce(Webhook.failing_since, now))
            )
            hours = settings.webhook_disable_after_hours
            await session.execute(
                update(Webhook)
                .where(
                    and_(
                        Webhook.id.in_(failing),
                        Webhook.active.is_(True),
                        Webhook.failing_since <= now - timedelta(hours=hours),
                    )
                )
                .values(
                    active=False,
                    disabled_reason=f"Deliveries failed for {hours:g} hours without a success; "
                    "fix the receiver, then set active: true.",
                )
            )


async def run(db: Database, settings: Settings, *, once: bool, stop: asyncio.Event) -> Report:
    """Deliver until ``stop`` is set (or, with ``once``, until nothing is due)."""
    report = Report()
    lease = timedelta(seconds=settings.webhook_timeout_seconds + 60)
    async with aiohttp.ClientSession(
        timeout=aiohttp.ClientTimeout(total=settings.webhook_timeout_seconds),
        connector=aiohttp.TCPConnector(limit=CLAIM_BATCH),
        auto_decompress=False,
    ) as client:
        while not stop.is_set():
            fanned = await fan_out(db, now=utcnow())
            claimed = await claim(db, now=utcnow(), lease=lease, limit=CLAIM_BATCH)
            if claimed:
                outcomes = await asyncio.gather(
                    *(send(client, c, allow_local=settings.webhook_allow_http) for c in claimed)
                )
                await record(
                    db,
                    list(zip(claimed, outcomes, strict=True)),
                    now=utcnow(),
                    settings=settings,
                    report=report,
                )
            busy = bool(claimed or fanned)
            if once and not busy:
                break
            if once or len(claimed) == CLAIM_BATCH or fanned == FANOUT_BATCH:
                continue
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), GATHER_SECONDS if busy else IDLE_SECONDS)
    return report
