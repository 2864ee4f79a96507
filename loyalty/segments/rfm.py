"""``rfm``: recency, frequency and monetary scores, 1 to 5, by quintile.

Scored are the members with a (not fully refunded) purchase whose ``occurredAt`` lies in the
365 days up to the job's ``now``. For each measure a member's score is
``1 + floor(5 × (members scored lower) ÷ members scored)``, "scored lower" meaning a strictly
smaller value (``RANK() - 1``): equal values always get equal scores, which ``NTILE(5)``
would split arbitrarily (most members share a frequency of 1 or 2). Recency ranks the last
purchase's time (latest = 5), frequency the number of purchases, monetary their totals net
of refunds. One transaction replaces every row: one ``DELETE`` and one
``INSERT ... SELECT`` with window functions (SQLite has them too); members who dropped out of
the window lose their scores. Running it twice with one ``--now`` gives the same scores.
"""

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import ColumnElement, CursorResult, delete, func, insert, literal, select

from loyalty.db import Database
from loyalty.purchases.models import Purchase, PurchaseStatus
from loyalty.segments.models import MemberRfm

WINDOW_DAYS = 365


@dataclass(frozen=True)
class RfmReport:
    members: int

    def __str__(self) -> str:
        return f"{self.members} member(s) scored"


def _score(value: ColumnElement[object], scored: ColumnElement[int]) -> ColumnElement[int]:
    lower = func.rank().over(order_by=value) - 1
    return 1 + (5 * lower) // scored


async def rfm(db: Database, *, now: datetime) -> RfmReport:
    recent = (
        select(
            Purchase.member_id,
            func.max(Purchase.occurred_at).label("last_at"),
            func.count().label("purchases"),
            func.sum(Purchase.total_amount - Purchase.refunded_amount).label("spent"),
        )
        .where(
            Purchase.occurred_at >= now - timedelta(days=WINDOW_DAYS),
            Purchase.occurred_at <= now,
            Purchase.status != PurchaseStatus.REFUNDED,
        )
        .group_by(Purchase.member_id)
        .subquery()
    )
    scored = func.count().over()
    scores = select(
        recent.c.member_id,
        _score(recent.c.last_at, scored),
        _score(recent.c.purchases, scored),
        _score(recent.c.spent, scored),
        literal(now, MemberRfm.computed_at.type),
    )
    async with db.transaction() as session:
        await session.execute(delete(MemberRfm))
        # An INSERT's result is a CursorResult; AsyncSession.execute is typed as a Result.
        result = cast(
            CursorResult[Any],
            await session.execute(
                insert(MemberRfm).from_select(
                    ["member_id", "recency", "frequency", "monetary", "computed_at"], scores
                )
            ),
        )
    return RfmReport(members=result.rowcount)
