"""``warn-expiring``: a ``points.expiring`` event for each lot about to expire, once.

A lot is announced when what is left of it expires within the program's
``expiryWarningDays`` (and has not expired yet), so a receiver (a marketing tool, the app's
push service) can remind the member to spend it. ``point_lots.warned_at`` remembers the
announcement: a rerun, or a later run while the lot is still in the window, announces nothing
again. Lots of CLOSED and ERASED members are not announced (there is nobody to remind).

Set-based like the other lot jobs: per batch of member ids, the members with lots to announce
are locked (newest first, the order every multi-member lock takes, so a purchase or the expiry
job cannot change those lots meanwhile and two runs cannot both announce one lot), then one
``INSERT ... SELECT`` writes the events and one ``UPDATE`` marks the lots.
"""

import typing
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import (
    BigInteger,
    Column,
    CursorResult,
    MetaData,
    Table,
    and_,
    delete,
    func,
    insert,
    literal,
    select,
    update,
)
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql.elements import ColumnElement

from loyalty.db import Database, UTCDateTime
from loyalty.ledger.batch import lock_members, tune
from loyalty.ledger.jobs import BATCH_SIZE
from loyalty.ledger.models import LotState, PointLot
from loyalty.members.models import Member, MemberStatus
from loyalty.outbox import service as outbox
from loyalty.program.service import get_program

_scratch = MetaData()
warn_members = Table(
    "warn_members",
    _scratch,
    Column("member_id", BigInteger, primary_key=True),
    prefixes=["TEMPORARY"],
)
SILENT = (MemberStatus.CLOSED, MemberStatus.ERASED)
"""Members nobody reminds: they can neither spend nor be reached."""


@dataclass(frozen=True)
class WarningReport:
    lots: int
    members: int
    days: int

    def __str__(self) -> str:
        return (
            f"{self.lots} lot(s) of {self.members} member(s) expiring within {self.days} days "
            "announced"
        )


async def warn_expiring(
    db: Database, *, now: datetime, batch_size: int = BATCH_SIZE
) -> WarningReport:
    """Announce every lot expiring in ``(now, now + expiryWarningDays]`` not announced yet."""
    async with db.transaction() as session:
        days = (await get_program(session)).expiry_warning_days
        low, top = (await session.execute(select(func.min(Member.id), func.max(Member.id)))).one()
    lots = members = 0
    if days and low is not None:
        until = now + timedelta(days=days)
        for start in range(low, top + 1, batch_size):
            async with db.transaction() as session:
                batch = await _warn_batch(
                    session, now=now, until=until, low=start, high=start + batch_size
                )
            lots += batch[0]
            members += batch[1]
    return WarningReport(lots=lots, members=members, days=days)


def _due(now: datetime, until: datetime, low: int, high: int) -> ColumnElement[bool]:
    return and_(
        PointLot.member_id >= low,
        PointLot.member_id < high,
        PointLot.state == LotState.AVAILABLE,
        PointLot.remaining > 0,
        PointLot.warned_at.is_(None),
        PointLot.expires_at > literal(now, UTCDateTime()),
        PointLot.expires_at <= literal(until, UTCDateTime()),
    )


async def _warn_batch(
    session: AsyncSession, *, now: datetime, until: datetime, low: int, high: int
) -> tuple[int, int]:
    """Announce the batch's due lots; returns (lots, members) announced."""
    await tune(session)
    connection = await session.connection()
    await connection.run_sync(lambda sync: warn_members.create(sync, checkfirst=True))
    await session.execute(delete(warn_members))
    due = _due(now, until, low, high)
    await session.execute(
        insert(warn_members).from_select(
            ["member_id"],
            select(PointLot.member_id)
            .join(Member, Member.id == PointLot.member_id)
            .where(due, Member.status.notin_(SILENT))
            .distinct(),
        )
    )
    if not await session.scalar(select(func.count()).select_from(warn_members)):
        return 0, 0
    await lock_members(session, warn_members)
    # Read again under the locks: what changed before they were taken is seen now.
    locked = and_(
        due,
        PointLot.member_id.in_(
            select(Member.id)
            .join(warn_members, warn_members.c.member_id == Member.id)
            .where(Member.status.notin_(SILENT))
        ),
    )
    members = await session.scalar(select(func.count(PointLot.member_id.distinct())).where(locked))
    data = outbox.json_sql(
        session,
        {
            "points": PointLot.remaining,
            "expiresAt": outbox.iso_sql(session, PointLot.expires_at),
            "earnedAt": outbox.iso_sql(session, PointLot.earned_at),
            "member": outbox.member_points_sql(session),
        },
    )
    await outbox.emit_select(
        session,
        outbox.POINTS_EXPIRING,
        occurred_at=now,
        rows=select(PointLot.member_id, data.label("data"))
        .join(Member, Member.id == PointLot.member_id)
        .where(locked),
    )
    # An UPDATE's result is a CursorResult; AsyncSession.execute is typed as a Result.
    marked = typing.cast(
        CursorResult[Any],
        await session.execute(
            update(PointLot)
            .where(locked)
            .values(warned_at=literal(now, UTCDateTime()))
            .execution_options(synchronize_session=False)
        ),
    )
    return marked.rowcount, members or 0
