"""Forfeiting everything a set of members holds, set-based (the retention job's erasures).

``eraseMember`` forfeits one member's points through ``ledger.post``. The retention job
erases many closed members at once, so their points leave through ``ledger.batch`` as the
lot jobs' do, with no loop over members. Each bucket is one batch: the available points, then
the pending ones, each a FORFEIT transaction against ``PROGRAM_FORFEIT`` (so a member holding
both gets two transactions where ``eraseMember`` writes one), its lots emptied (with their
consumptions, as a debit records them) and its ``points.forfeited`` event. The members must
already be locked.
"""

from datetime import datetime

from sqlalchemy import Table, select
from sqlalchemy.ext.asyncio import AsyncSession

from loyalty.ledger import batch
from loyalty.ledger.models import Account, EntryKind, LotState, PointLot
from loyalty.members.models import Member

REASON = "Forfeited on erasure"


async def forfeit_all(session: AsyncSession, *, members: Table, now: datetime) -> int:
    """Take every point the members of ``members`` (a table of ``member_id``, locked) hold;
    returns the points forfeited."""
    total = 0
    buckets = (
        (Member.points_available, LotState.AVAILABLE, {"available": -1}),
        (Member.points_pending, LotState.PENDING, {"pending": -1}),
    )
    for balance, state, sign in buckets:
        await batch.start(session)
        movement = batch.BatchMovement(
            kind=EntryKind.FORFEIT,
            occurred_at=now,
            reason=REASON,
            lots=batch.ConsumeLots(due=PointLot.state == state),
            counter_account=Account.PROGRAM_FORFEIT,
            **sign,
        )
        amounts = (
            select(Member.id.label("member_id"), balance.label("amount"))
            .join(members, members.c.member_id == Member.id)
            .where(balance > 0, batch.within(members))
        )
        report = await batch.post_batch(session, movement, amounts=amounts)
        total += report.points
    return total
