"""Forfeiting everything a set of members holds, set-based (the retention job's erasures).

``eraseMember`` forfeits one member's points through ``ledger.post``. The retention job
erases many closed members at once, so their points leave the same way the lot jobs move
points: with ``lot_job`` and a handful of ``INSERT ... SELECT`` statements, no loop over
members. Each bucket is one pass: the available points, then the pending ones, each a FORFEIT
transaction against ``PROGRAM_FORFEIT`` (so a member holding both gets two transactions where
``eraseMember`` writes one), its lots emptied (with their consumptions, as a debit records
them) and its ``points.forfeited`` event. The members must already be locked.
"""

from datetime import datetime

from sqlalchemy import Table, delete, func, insert, select, text, update
from sqlalchemy.ext.asyncio import AsyncSession

from loyalty.ledger.jobs import (
    emit_job_events,
    lot_job,
    number_transactions,
    post_per_member,
    within,
)
from loyalty.ledger.models import Account, EntryKind, LotConsumption, LotState, PointLot
from loyalty.members.models import Member

REASON = "Forfeited on erasure"
BUCKETS = (
    (Account.MEMBER_AVAILABLE, LotState.AVAILABLE, Member.points_available),
    (Account.MEMBER_PENDING, LotState.PENDING, Member.points_pending),
)


async def forfeit_all(session: AsyncSession, *, members: Table, now: datetime) -> int:
    """Take every point the members of ``members`` (a table of ``member_id``, locked) hold;
    returns the points forfeited."""
    connection = await session.connection()
    await connection.run_sync(lambda sync: lot_job.create(sync, checkfirst=True))
    total = 0
    for account, state, balance in BUCKETS:
        await session.execute(delete(lot_job))
        await session.execute(
            insert(lot_job).from_select(
                ["member_id", "amount"],
                select(Member.id, balance)
                .join(members, members.c.member_id == Member.id)
                .where(balance > 0),
            )
        )
        taken = int(await session.scalar(select(func.coalesce(func.sum(lot_job.c.amount), 0))))
        if not taken:
            continue
        total += taken
        if session.get_bind().dialect.name == "postgresql":
            # As the lot jobs do: without statistics the planner scans whole tables to join it.
            await session.execute(text("ANALYZE lot_job"))
        await number_transactions(session)
        await post_per_member(
            session,
            kind=EntryKind.FORFEIT,
            now=now,
            reason=REASON,
            postings=[(account, -1, balance), (Account.PROGRAM_FORFEIT, 1, None)],
        )
        await session.execute(
            update(Member)
            .where(Member.id == lot_job.c.member_id, within(lot_job))
            .values({balance.key: balance - lot_job.c.amount})
            .execution_options(synchronize_session=False)
        )
        await _empty_lots(session, state)
        await emit_job_events(
            session, kind=EntryKind.FORFEIT, now=now, reason=REASON, account=account, sign=-1
        )
    return total


async def _empty_lots(session: AsyncSession, state: LotState) -> None:
    """What remains of the ``lot_job`` members' lots in ``state`` is consumed by their
    forfeit transaction."""
    emptied = (PointLot.state == state, PointLot.remaining > 0)
    await session.execute(
        insert(LotConsumption).from_select(
            ["lot_id", "transaction_id", "amount"],
            select(PointLot.id, lot_job.c.transaction_id, PointLot.remaining)
            .join(lot_job, lot_job.c.member_id == PointLot.member_id)
            .where(*emptied),
        )
    )
    await session.execute(
        update(PointLot)
        .where(PointLot.member_id.in_(select(lot_job.c.member_id)), *emptied)
        .values(remaining=0)
        .execution_options(synchronize_session=False)
    )
