"""The retention job: what is kept only for a while goes when its time is up.

- Idempotency keys protect retries, which come within minutes or, from an offline till, days;
  after ``idempotencyRetentionDays`` a key only costs space.
- Webhook deliveries that were DELIVERED more than ``LOYALTY_WEBHOOK_DELIVERY_RETENTION_DAYS``
  ago (counted from when the delivery was made for its event) only document the past; PENDING
  ones are still to be sent and FAILED ones wait for ``redeliverWebhookDelivery``, so both
  stay. An outbox event goes once the worker has fanned it out, it is as old, and no delivery
  names it any more: nothing can send it again.
- Members CLOSED for longer than ``closedMemberRetentionDays`` (off when null) are erased as
  ``eraseMember`` erases one (the same scrub, ``erasure.remove_personal_data``), set-based.
  Closing a member leaves its points in place (they keep being released and expiring), so
  what they still hold is forfeited first, through FORFEIT ledger transactions
  (``ledger.forfeits``), and the liability falls by exactly that much. Each erasure gets an
  audit entry naming the job and the setting as its reason.

Everything is deleted or erased in batches, one transaction each, so the job runs beside live
traffic without one long lock.
"""

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import (
    BigInteger,
    Column,
    CursorResult,
    MetaData,
    Table,
    delete,
    exists,
    func,
    insert,
    select,
)
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import InstrumentedAttribute
from sqlalchemy.sql.elements import ColumnElement

from loyalty.audit import service as audit
from loyalty.db import Database
from loyalty.idempotency.models import IdempotencyKey
from loyalty.ledger.batch import lock_members
from loyalty.ledger.forfeits import forfeit_all
from loyalty.members.models import Member, MemberStatus
from loyalty.outbox import service as outbox
from loyalty.outbox.models import DeliveryStatus, Event, WebhookDelivery
from loyalty.privacy.erasure import members_in, remove_personal_data
from loyalty.program.service import get_program

BATCH = 10_000
ERASE_BATCH = 1_000
"""Members erased per transaction: each touches several tables, and their rows stay locked
until the batch commits."""
DEFAULT_DELIVERY_DAYS = 30

_scratch = MetaData()
closed_due = Table(
    "closed_due",
    _scratch,
    Column("member_id", BigInteger, primary_key=True),
    prefixes=["TEMPORARY"],
)


@dataclass(frozen=True)
class RetentionReport:
    idempotency_keys_deleted: int
    kept_days: int
    deliveries_deleted: int
    events_deleted: int
    delivery_days: int
    members_erased: int
    points_forfeited: int
    closed_days: int | None

    def __str__(self) -> str:
        closed = (
            "closed members are kept (closedMemberRetentionDays is null)"
            if self.closed_days is None
            else f"{self.members_erased} member(s) closed for more than {self.closed_days} days "
            f"erased ({self.points_forfeited} points forfeited)"
        )
        return (
            f"{self.idempotency_keys_deleted} idempotency key(s) older than "
            f"{self.kept_days} days deleted; {self.deliveries_deleted} delivered webhook "
            f"delivery(ies) and {self.events_deleted} event(s) older than {self.delivery_days} "
            f"days deleted; {closed}"
        )


async def retention(
    db: Database, *, now: datetime, delivery_retention_days: int = DEFAULT_DELIVERY_DAYS
) -> RetentionReport:
    async with db.transaction() as session:
        program = await get_program(session)
        days, closed_days = program.idempotency_retention_days, program.closed_member_retention_days
    delivered_before = now - timedelta(days=delivery_retention_days)
    keys = await _delete_in_batches(
        db, IdempotencyKey.id, IdempotencyKey.created_at < now - timedelta(days=days)
    )
    deliveries = await _delete_in_batches(
        db,
        WebhookDelivery.id,
        WebhookDelivery.status == DeliveryStatus.DELIVERED,
        WebhookDelivery.created_at < delivered_before,
    )
    events = await _delete_in_batches(
        db,
        Event.id,
        Event.dispatched_at.isnot(None),
        Event.created_at < delivered_before,
        ~exists().where(WebhookDelivery.event_id == Event.id),
    )
    erased = forfeited = 0
    if closed_days is not None:
        erased, forfeited = await _erase_closed(
            db, now=now, closed_before=now - timedelta(days=closed_days)
        )
    return RetentionReport(
        idempotency_keys_deleted=keys,
        kept_days=days,
        deliveries_deleted=deliveries,
        events_deleted=events,
        delivery_days=delivery_retention_days,
        members_erased=erased,
        points_forfeited=forfeited,
        closed_days=closed_days,
    )


async def _delete_in_batches(
    db: Database, key: InstrumentedAttribute[int], *conditions: ColumnElement[bool]
) -> int:
    """Delete the rows of ``key``'s table that meet ``conditions``, ``BATCH`` at a time."""
    table = key.table
    deleted = 0
    while True:
        async with db.transaction() as session:
            due = select(key).where(*conditions).limit(BATCH)
            # A DELETE's result is a CursorResult; AsyncSession.execute is typed as a Result.
            result = cast(
                CursorResult[Any],
                await session.execute(
                    delete(table)
                    .where(key.in_(due.scalar_subquery()))
                    .execution_options(synchronize_session=False)
                ),
            )
        deleted += result.rowcount
        if result.rowcount < BATCH:
            return deleted


async def _erase_closed(db: Database, *, now: datetime, closed_before: datetime) -> tuple[int, int]:
    """Returns (members erased, points forfeited)."""
    erased = forfeited = 0
    while True:
        async with db.transaction() as session:
            chosen, count, points = await _erase_batch(
                session, now=now, closed_before=closed_before
            )
        erased += count
        forfeited += points
        if chosen < ERASE_BATCH:
            return erased, forfeited


async def _erase_batch(
    session: AsyncSession, *, now: datetime, closed_before: datetime
) -> tuple[int, int, int]:
    """Erase up to ``ERASE_BATCH`` long-closed members; returns (chosen, erased, forfeited)."""
    due = (Member.status == MemberStatus.CLOSED) & (Member.closed_at <= closed_before)
    connection = await session.connection()
    await connection.run_sync(lambda sync: closed_due.create(sync, checkfirst=True))
    await session.execute(delete(closed_due))
    await session.execute(
        insert(closed_due).from_select(
            ["member_id"], select(Member.id).where(due).order_by(Member.id).limit(ERASE_BATCH)
        )
    )
    chosen = await session.scalar(select(func.count()).select_from(closed_due))
    if not chosen:
        return 0, 0, 0
    await lock_members(session, closed_due)
    # Under the locks: a member reopened since it was chosen stays as it is.
    await session.execute(
        delete(closed_due).where(closed_due.c.member_id.notin_(select(Member.id).where(due)))
    )
    forfeited = await forfeit_all(session, members=closed_due, now=now)
    await remove_personal_data(session, members_in(closed_due))
    await audit.record_select(
        session,
        actor=audit.cli_actor(),
        operation="eraseMember",
        summary={
            "reason": "Closed for longer than the program's closedMemberRetentionDays",
            "job": "retention",
        },
        rows=select(
            closed_due.c.member_id,
            outbox.global_id_sql("Member", closed_due.c.member_id).label("target_id"),
        ),
    )
    erased = await session.scalar(select(func.count()).select_from(closed_due))
    return chosen, erased or 0, forfeited
