"""Webhook endpoints (admin): where events go, with what secret, and their deliveries.

Receiving URLs are checked when set: ``https`` only, and no host that resolves to a loopback,
private, link-local or otherwise non-public address (server-side request forgery), unless
``LOYALTY_WEBHOOK_ALLOW_HTTP=1`` (tests and local receivers). The worker checks the address
again before each request, since DNS may change after the endpoint was saved.
"""

import asyncio
import base64
import ipaddress
import secrets
import socket
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy import delete, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from loyalty.db import lock_by_id, utcnow
from loyalty.errors import DomainError, DomainErrors, invalid
from loyalty.inputs import collect, collect_awaited
from loyalty.outbox.models import DeliveryStatus, Event, Webhook, WebhookDelivery
from loyalty.outbox.service import EVENT_TYPES
from loyalty.pagination import Page, PageRequest, make_page
from loyalty.validation import optional_text

SECRET_PREFIX = "whsec_"
SECRET_BYTES = 32
MAX_URL_LENGTH = 2048
MAX_EVENTS = 100


def new_secret() -> str:
    """A Standard Webhooks signing secret: ``whsec_`` + base64 of random bytes."""
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(SECRET_BYTES)).decode()


def _public(address: str) -> bool:
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_global and not ip.is_multicast


async def resolve_public(host: str, port: int | None) -> str | None:
    """Why ``host`` may not receive webhooks (it resolves to a non-public address or does not
    resolve), or None when every address it resolves to is public."""
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(
            host, port or 443, type=socket.SOCK_STREAM
        )
    except (OSError, UnicodeError):
        return f"{host} does not resolve."
    for *_, sockaddr in infos:
        if not _public(str(sockaddr[0])):
            return f"{host} resolves to {sockaddr[0]}, a loopback, private or link-local address."
    return None


async def check_url(url: str, *, allow_local: bool) -> str:
    """The URL, or ``INVALID`` on ``url`` saying why it may not receive webhooks."""
    if not isinstance(url, str) or not url.strip() or len(url) > MAX_URL_LENGTH:
        raise invalid(f"Must be a URL of at most {MAX_URL_LENGTH} characters.", "url")
    url = url.strip()
    if any(c.isspace() or not c.isprintable() for c in url):
        raise invalid("Must not contain spaces or control characters.", "url")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        raise invalid("Must be an absolute https URL.", "url") from None
    allowed = ("https", "http") if allow_local else ("https",)
    if parts.scheme not in allowed or not parts.hostname:
        raise invalid(
            "Must be an absolute https URL (http only with LOYALTY_WEBHOOK_ALLOW_HTTP=1).", "url"
        )
    if parts.username or parts.password:
        raise invalid("Must not carry credentials; verify the signature instead.", "url")
    if not allow_local:
        problem = await resolve_public(parts.hostname, port)
        if problem:
            raise invalid(
                f"{problem} Webhooks go to public addresses only "
                "(LOYALTY_WEBHOOK_ALLOW_HTTP=1 allows local receivers).",
                "url",
            )
    return url


def check_events(events: Sequence[str]) -> list[str]:
    if not events or len(events) > MAX_EVENTS:
        raise invalid(f"Name 1 to {MAX_EVENTS} event types.", "events")
    unknown = sorted({e for e in events if e not in EVENT_TYPES})
    if unknown:
        named = ", ".join(repr(e[:64]) for e in unknown[:5])
        raise invalid(f"Unknown event types: {named}. Known: {', '.join(EVENT_TYPES)}.", "events")
    return list(dict.fromkeys(events))


@dataclass(frozen=True)
class WebhookIn:
    url: str
    events: Sequence[str]
    description: str | None = None


@dataclass(frozen=True)
class WebhookChanges:
    url: str | None = None
    events: Sequence[str] | None = None
    description: str | None = None
    description_given: bool = False
    active: bool | None = None


@dataclass(frozen=True)
class WithSecret:
    webhook: Webhook
    secret: str
    """Shown to the caller once; only the worker reads it again."""


async def create_webhook(
    session: AsyncSession, *, webhook: WebhookIn, allow_local: bool
) -> WithSecret:
    checked = await _checked(
        url=webhook.url,
        events=webhook.events,
        description=webhook.description,
        description_given=True,
        allow_local=allow_local,
    )
    row = Webhook(**checked, secret=new_secret(), active=True, created_at=utcnow())
    session.add(row)
    await session.flush()
    return WithSecret(webhook=row, secret=row.secret)


async def update_webhook(
    session: AsyncSession, *, webhook_id: int, changes: WebhookChanges, allow_local: bool
) -> Webhook:
    """Change what is given; ``active: true`` re-enables an endpoint the worker disabled."""
    row = await lock_by_id(session, Webhook, webhook_id, field="id")
    checked = await _checked(
        url=changes.url,
        events=changes.events,
        description=changes.description,
        description_given=changes.description_given,
        allow_local=allow_local,
    )
    for name, value in checked.items():
        setattr(row, name, value)
    if changes.active is not None:
        row.active = changes.active
        if changes.active:
            row.disabled_reason = None
            row.failing_since = None
    await session.flush()
    return row


async def _checked(
    *,
    url: str | None,
    events: Sequence[str] | None,
    description: str | None,
    description_given: bool,
    allow_local: bool,
) -> dict[str, Any]:
    """The fields given (url and events: not None), each checked; every bad one reported."""
    errors: list[DomainError] = []
    checked: dict[str, Any] = {}
    if url is not None:
        checked["url"] = await collect_awaited(errors, check_url(url, allow_local=allow_local))
    if events is not None:
        checked["events"] = collect(errors, check_events, events)
    if description_given:
        checked["description"] = collect(errors, optional_text, description, 500, "description")
    if errors:
        raise DomainErrors(errors)
    return checked


async def delete_webhook(session: AsyncSession, *, webhook_id: int) -> Webhook:
    """The endpoint and its delivery history go; the events stay in the outbox."""
    row = await lock_by_id(session, Webhook, webhook_id, field="id")
    await session.execute(delete(WebhookDelivery).where(WebhookDelivery.webhook_id == row.id))
    await session.delete(row)
    await session.flush()
    return row


async def rotate_secret(session: AsyncSession, *, webhook_id: int) -> WithSecret:
    """A new secret signs every request from now on, retries of older events included."""
    row = await lock_by_id(session, Webhook, webhook_id, field="id")
    row.secret = new_secret()
    await session.flush()
    return WithSecret(webhook=row, secret=row.secret)


async def get_webhook(session: AsyncSession, *, webhook_id: int) -> Webhook | None:
    return await session.get(Webhook, webhook_id)


async def list_webhooks(session: AsyncSession, *, page: PageRequest) -> Page[Webhook]:
    """Oldest first."""
    statement = select(Webhook).order_by(Webhook.id).limit(page.first + 1)
    if page.after is not None:
        statement = statement.where(Webhook.id > page.after)
    rows = list((await session.scalars(statement)).all())
    return make_page(rows, [row.id for row in rows], page)


@dataclass(frozen=True)
class DeliveryView:
    delivery: WebhookDelivery
    event_id: str
    event_type: str


async def list_deliveries(
    session: AsyncSession, *, webhook_id: int, status: str | None, page: PageRequest
) -> Page[DeliveryView]:
    """Newest first."""
    statement = (
        select(WebhookDelivery, Event.event_id, Event.type)
        .join(Event, Event.id == WebhookDelivery.event_id)
        .where(WebhookDelivery.webhook_id == webhook_id)
        .order_by(WebhookDelivery.id.desc())
        .limit(page.first + 1)
    )
    if status is not None:
        statement = statement.where(WebhookDelivery.status == status)
    if page.after is not None:
        statement = statement.where(WebhookDelivery.id < page.after)
    rows = [
        DeliveryView(delivery=d, event_id=event_id, event_type=event_type)
        for d, event_id, event_type in await session.execute(statement)
    ]
    return make_page(rows, [row.delivery.id for row in rows], page)


async def redeliver(session: AsyncSession, *, delivery_id: int) -> DeliveryView:
    """Send again (a failed delivery, or one the receiver lost): due now, attempts from zero."""
    delivery = await lock_by_id(session, WebhookDelivery, delivery_id, field="deliveryId")
    delivery.status = DeliveryStatus.PENDING
    delivery.attempts = 0
    delivery.next_attempt_at = utcnow()
    await session.flush()
    event = await session.get(Event, delivery.event_id)
    assert event is not None
    return DeliveryView(delivery=delivery, event_id=event.event_id, event_type=event.type)


@dataclass(frozen=True)
class DeliveryStats:
    """What /metrics reports about the outbox and the deliveries."""

    lag_seconds: float
    deliveries: dict[str, int]
    attempts: dict[str, int]


async def delivery_stats(session: AsyncSession, *, now: datetime) -> DeliveryStats:
    """The outbox lag (the oldest event not fanned out, or still PENDING for an active endpoint;
    both found through the partial indexes) and deliveries and attempts by status."""
    oldest_undispatched = await session.scalar(
        select(Event.created_at).where(Event.dispatched_at.is_(None)).order_by(Event.id).limit(1)
    )
    oldest_pending = await session.scalar(
        select(Event.created_at).where(
            Event.id
            == select(WebhookDelivery.event_id)
            .join(Webhook, Webhook.id == WebhookDelivery.webhook_id)
            .where(WebhookDelivery.status == DeliveryStatus.PENDING, Webhook.active.is_(True))
            .order_by(WebhookDelivery.event_id)
            .limit(1)
            .scalar_subquery()
        )
    )
    waiting = [t for t in (oldest_undispatched, oldest_pending) if t is not None]
    lag = max(0.0, (now - min(waiting)).total_seconds()) if waiting else 0.0
    rows = (
        await session.execute(
            select(
                WebhookDelivery.status,
                func.count(),
                func.coalesce(func.sum(WebhookDelivery.attempts), 0),
            ).group_by(WebhookDelivery.status)
        )
    ).all()
    deliveries = {status.value: 0 for status in DeliveryStatus}
    attempts = dict(deliveries)
    for status, count, tried in rows:
        deliveries[status], attempts[status] = int(count), int(tried)
    return DeliveryStats(lag_seconds=lag, deliveries=deliveries, attempts=attempts)
