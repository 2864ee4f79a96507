"""The transactional outbox: every domain event is written here, in the caller's transaction.

Services call ``emit`` (one event) and the set-based jobs ``emit_select`` (one event per row of
an ``INSERT ... SELECT``), always in the same database transaction as the change the event
reports: a rolled-back change leaves no event, a committed one always has its event. The
worker (``loyalty.outbox.worker``) later fans committed events out to webhook deliveries.

``data`` is shaped like the GraphQL types: camelCase keys, global IDs (``loyalty.ids``),
ISO-8601 times. The jobs build the same shapes in SQL (``json_object``/``json_build_object``,
the ``loyalty_global_id`` SQL function, ``iso_sql``, ``true_sql``).
"""

import uuid
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    SQLColumnExpression,
    String,
    cast,
    func,
    insert,
    literal,
    select,
)
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.elements import ColumnElement
from sqlalchemy.sql.functions import FunctionElement
from sqlalchemy.sql.selectable import Select

from loyalty import held_writes
from loyalty.db import UTCDateTime, utcnow
from loyalty.ids import GLOBAL_ID_FUNCTION, encode_id
from loyalty.ledger.models import EntryKind
from loyalty.members.models import Member
from loyalty.money import format_amount
from loyalty.outbox import live
from loyalty.outbox.models import Event

MEMBER_ENROLLED = "member.enrolled"
MEMBER_UPDATED = "member.updated"
POINTS_EARNED = "points.earned"
POINTS_ADJUSTED = "points.adjusted"
POINTS_REDEEMED = "points.redeemed"
POINTS_REFUNDED = "points.refunded"
POINTS_RELEASED = "points.released"
POINTS_EXPIRED = "points.expired"
POINTS_EXPIRING = "points.expiring"
TIER_CHANGED = "tier.changed"
REDEMPTION_ISSUED = "redemption.issued"
REDEMPTION_USED = "redemption.used"
REDEMPTION_CANCELLED = "redemption.cancelled"
PURCHASE_RECORDED = "purchase.recorded"
PURCHASE_REFUNDED = "purchase.refunded"
REFERRAL_REWARDED = "referral.rewarded"
POINTS_FORFEITED = "points.forfeited"
MEMBER_ERASED = "member.erased"

EVENT_TYPES = (
    MEMBER_ENROLLED,
    MEMBER_UPDATED,
    POINTS_EARNED,
    POINTS_ADJUSTED,
    POINTS_REDEEMED,
    POINTS_REFUNDED,
    POINTS_RELEASED,
    POINTS_EXPIRED,
    POINTS_EXPIRING,
    TIER_CHANGED,
    REDEMPTION_ISSUED,
    REDEMPTION_USED,
    REDEMPTION_CANCELLED,
    PURCHASE_RECORDED,
    PURCHASE_REFUNDED,
    REFERRAL_REWARDED,
    POINTS_FORFEITED,
    MEMBER_ERASED,
)
"""What webhooks may subscribe to."""

POINTS_EVENTS: dict[str, str] = {
    EntryKind.EARN: POINTS_EARNED,
    EntryKind.BONUS: POINTS_EARNED,
    EntryKind.ADJUST: POINTS_ADJUSTED,
    EntryKind.REDEEM: POINTS_REDEEMED,
    EntryKind.REDEMPTION_CANCEL: POINTS_REFUNDED,
    EntryKind.REFUND_CLAWBACK: POINTS_REFUNDED,
    EntryKind.RELEASE: POINTS_RELEASED,
    EntryKind.EXPIRE: POINTS_EXPIRED,
    EntryKind.FORFEIT: POINTS_FORFEITED,
}
"""The event of each ledger kind: ``points.refunded`` is every movement a refund or a
cancellation causes (a purchase refund takes points back, a cancelled redemption gives them
back); ``data.entry.kind`` tells which."""


EVENTS = Event.__table__


def iso(moment: datetime | None) -> str | None:
    """A time as the events carry it: ISO-8601 in UTC."""
    return None if moment is None else moment.astimezone(UTC).isoformat()


def gid(type_name: str, pk: int | None) -> str | None:
    return None if pk is None else encode_id(type_name, pk)


def ref(type_name: str, pk: int | None) -> dict[str, str] | None:
    """A reference to an object the event names but does not carry: ``{"id": ...}``."""
    return None if pk is None else {"id": encode_id(type_name, pk)}


def points_of(member: Member) -> dict[str, int]:
    """The member's balances, as ``Member.points`` shows them."""
    return {
        "available": member.points_available,
        "pending": member.points_pending,
        "lifetimeEarned": member.lifetime_earned,
        "redeemed": member.points_redeemed,
        "expired": member.points_expired,
    }


def member_data(member: Member) -> dict[str, Any]:
    """The member as the GraphQL ``Member`` type shows it (its scalar fields)."""
    return {
        "id": encode_id("Member", member.id),
        "externalId": member.external_id,
        "email": member.email,
        "phone": member.phone,
        "firstName": member.first_name,
        "lastName": member.last_name,
        "status": member.status,
        "enrolledAt": iso(member.enrolled_at),
        "tier": ref("Tier", member.tier_id),
        "points": points_of(member),
    }


def entry_data(
    *,
    entry_id: int,
    kind: str,
    points: int,
    balance_after: int | None,
    occurred_at: datetime,
    reason: str | None,
) -> dict[str, Any]:
    """A member posting as the GraphQL ``LedgerEntry`` type shows it."""
    return {
        "id": encode_id("LedgerEntry", entry_id),
        "kind": str(kind),
        "points": points,
        "balanceAfter": balance_after,
        "occurredAt": iso(occurred_at),
        "reason": reason,
    }


def purchase_data(purchase: Any) -> dict[str, Any]:
    """A purchase as the GraphQL ``Purchase`` type shows it."""
    return {
        "id": encode_id("Purchase", purchase.id),
        "orderId": purchase.order_id,
        "channel": purchase.channel,
        "storeId": purchase.store_id,
        "total": {"amount": format_amount(purchase.total_amount), "currency": purchase.currency},
        "refunded": {
            "amount": format_amount(purchase.refunded_amount),
            "currency": purchase.currency,
        },
        "occurredAt": iso(purchase.occurred_at),
        "pointsAwarded": purchase.points_awarded,
        "pointsRefunded": purchase.points_refunded,
        "status": purchase.status,
        "member": ref("Member", purchase.member_id),
    }


def redemption_data(redemption: Any) -> dict[str, Any]:
    """A redemption as the GraphQL ``Redemption`` type shows it."""
    return {
        "id": encode_id("Redemption", redemption.id),
        "reward": ref("Reward", redemption.reward_id),
        "member": ref("Member", redemption.member_id),
        "pointsSpent": redemption.points_spent,
        "code": redemption.code,
        "status": redemption.status,
        "channel": redemption.channel,
        "createdAt": iso(redemption.created_at),
        "usedAt": iso(getattr(redemption, "used_at", None)),
        "cancelledAt": iso(getattr(redemption, "cancelled_at", None)),
    }


def tier_ref(tier_id: int | None, name: str | None) -> dict[str, Any] | None:
    return None if tier_id is None else {"id": encode_id("Tier", tier_id), "name": name}


async def emit(
    session: AsyncSession,
    event_type: str,
    *,
    member_id: int | None,
    data: dict[str, Any],
    occurred_at: datetime | None = None,
) -> None:
    """Add one event to the session's transaction: a held write (``loyalty.held_writes``),
    sent at commit with the transaction's other held writes. ``flush`` sends it earlier, for
    a statement that must see it."""
    now = utcnow()
    held_writes.hold(
        session,
        _INSERT_EVENT,
        {
            "event_id": event_id(now),
            "type": event_type,
            "occurred_at": occurred_at or now,
            "member_id": member_id,
            "data": data,
            "created_at": now,
        },
    )
    live.note_member(session, member_id)


async def flush(session: AsyncSession) -> None:
    """Send the transaction's held writes, its events among them, now: before a statement that
    reads or changes the events table, or writes events of its own (so ids keep the order the
    events were made in)."""
    await held_writes.write_now(session)


_COLUMNS = ("event_id", "type", "occurred_at", "member_id", "data", "created_at")
_INSERT_EVENT = held_writes.HeldWrite.insert(
    "events",
    {name: EVENTS.c[name].type for name in _COLUMNS},
    suffix="RETURNING id",
    returned=lambda session, result: live.note_ids(session, result.scalars().all()),
)
"""On PostgreSQL the events table's trigger notifies live updates (migration 0019); on SQLite
the ids it returns are published in process after the commit."""


async def emit_points(
    session: AsyncSession,
    *,
    kind: str,
    member: Member,
    points: int,
    occurred_at: datetime,
    entry: dict[str, Any],
    purchase_id: int | None = None,
    redemption_id: int | None = None,
) -> None:
    """The ``points.*`` event of one ledger movement (see ``POINTS_EVENTS``); ``points`` is
    the movement's signed total, ``entry`` its first member posting."""
    await emit(
        session,
        POINTS_EVENTS[kind],
        member_id=member.id,
        occurred_at=occurred_at,
        data={
            "points": points,
            "entry": entry,
            "purchase": ref("Purchase", purchase_id),
            "redemption": ref("Redemption", redemption_id),
            "member": {"id": encode_id("Member", member.id), "points": points_of(member)},
        },
    )


def _postgres(session: AsyncSession) -> bool:
    return session.get_bind().dialect.name == "postgresql"


def json_sql(
    session: AsyncSession, fields: Mapping[str, SQLColumnExpression[Any]]
) -> ColumnElement[Any]:
    """A JSON object built in SQL from (key, expression) pairs; nest by passing another."""
    build = func.json_build_object if _postgres(session) else func.json_object
    arguments: list[Any] = []
    for key, value in fields.items():
        arguments += [literal(key), value]
    return build(*arguments)


class _GlobalId(FunctionElement[str]):
    """``loyalty_global_id(type, pk)``; on PostgreSQL its body (migration 0014), written in
    place. PostgreSQL never inlines the function (declared IMMUTABLE, its body calls the
    STABLE ``convert_to`` and ``text || bigint``), so each call ran the SQL-function executor:
    a large share of a job's event insert. The body in place gives the same text."""

    type = String()
    name = GLOBAL_ID_FUNCTION
    inherit_cache = True


@compiles(_GlobalId)
def _call_global_id(element: _GlobalId, compiler: SQLCompiler, **kw: Any) -> str:
    return f"{GLOBAL_ID_FUNCTION}({compiler.process(element.clauses, **kw)})"


@compiles(_GlobalId, "postgresql")
def _inline_global_id(element: _GlobalId, compiler: SQLCompiler, **kw: Any) -> str:
    type_name, pk = (compiler.process(clause, **kw) for clause in element.clauses)
    return (
        f"rtrim(translate(encode(convert_to({type_name} || ':' || CAST({pk} AS TEXT), 'UTF8'), "
        "'base64'), E'+/\\n', '-_'), '=')"
    )


def global_id_sql(type_name: str, pk: SQLColumnExpression[int | None]) -> ColumnElement[str]:
    return _GlobalId(literal(type_name), pk)


def ref_sql(
    session: AsyncSession, type_name: str, pk: SQLColumnExpression[int | None]
) -> ColumnElement[Any]:
    return json_sql(session, {"id": global_id_sql(type_name, pk)})


def points_sql(session: AsyncSession) -> ColumnElement[Any]:
    """``points_of`` over the ``members`` row the statement joins."""
    return json_sql(
        session,
        {
            "available": Member.points_available,
            "pending": Member.points_pending,
            "lifetimeEarned": Member.lifetime_earned,
            "redeemed": Member.points_redeemed,
            "expired": Member.points_expired,
        },
    )


def member_points_sql(session: AsyncSession) -> ColumnElement[Any]:
    """The member of a points event (``{"id", "points"}``, as ``emit_points`` writes it) over
    the ``members`` row the statement joins."""
    return json_sql(
        session,
        {"id": global_id_sql("Member", Member.id), "points": points_sql(session)},
    )


def iso_sql(
    session: AsyncSession, moment: SQLColumnExpression[datetime | None]
) -> ColumnElement[str]:
    """A stored UTC time column as ISO-8601 text, like ``iso`` (always with microseconds)."""
    if _postgres(session):
        return func.to_char(
            func.timezone("UTC", moment), literal('YYYY-MM-DD"T"HH24:MI:SS.US"+00:00"')
        )
    # SQLite stores "YYYY-MM-DD HH:MM:SS.ffffff" in UTC.
    return func.replace(cast(moment, String), literal(" "), literal("T")) + literal("+00:00")


def true_sql(session: AsyncSession) -> ColumnElement[Any]:
    """JSON ``true`` inside ``json_sql`` (SQLite's json_object would write 1)."""
    return literal(True) if _postgres(session) else func.json(literal("true"))


def _time_prefix(moment: datetime) -> str:
    """A version 7 UUID's first 13 hex digits and its version: the Unix time in milliseconds."""
    hex_ms = f"{int(moment.timestamp() * 1000):012x}"
    return f"{hex_ms[:8]}-{hex_ms[8:]}-7"


def event_id(moment: datetime) -> str:
    """A time-ordered (version 7) UUID: ids made later sort later, so the unique index on
    event ids grows at its end instead of at random places (a million-event job touches a few
    pages, not the whole index)."""
    return _time_prefix(moment) + str(uuid.uuid4())[15:]


def _random_hex(count: int) -> ColumnElement[str]:
    return func.lower(func.hex(func.randomblob(count)))


def uuid_sql(session: AsyncSession, moment: datetime) -> ColumnElement[str]:
    """``event_id`` per row: the time of ``moment``, then a version 4 UUID's random part."""
    prefix = literal(_time_prefix(moment))
    if _postgres(session):
        return prefix + func.substr(cast(func.gen_random_uuid(), String), 16)
    variant = func.substr("89ab", 1 + func.abs(func.random()) % 4, 1)
    return (
        prefix
        + func.substr(_random_hex(2), 2)
        + "-"
        + variant
        + func.substr(_random_hex(2), 2)
        + "-"
        + _random_hex(6)
    )


async def emit_select(
    session: AsyncSession, event_type: str, *, occurred_at: datetime, rows: Select[*tuple[Any, ...]]
) -> None:
    """One event per row of ``rows``, which selects ``member_id`` and ``data`` (built with
    ``json_sql``): a single ``INSERT ... SELECT``, however many members a job touches."""
    await flush(session)
    chosen = rows.subquery()
    now = utcnow()
    inserted = insert(Event.__table__).from_select(
        ["event_id", "type", "occurred_at", "member_id", "data", "created_at"],
        select(
            uuid_sql(session, now),
            literal(event_type),
            literal(occurred_at, UTCDateTime()),
            chosen.c.member_id,
            chosen.c.data,
            literal(now, UTCDateTime()),
        ).order_by(chosen.c.member_id),
    )
    if _postgres(session):
        await session.execute(inserted)  # the events table's trigger notifies live updates
        return
    # SQLite: this transaction holds the write lock, so its rows take the ids after the
    # largest one; they are published in process after the commit.
    before = await session.scalar(select(func.max(Event.id)))
    await session.execute(inserted)
    first, last = (before or 0) + 1, await session.scalar(select(func.max(Event.id)))
    if last is not None and last >= first:
        live.note_events(session, first=first, last=last)
