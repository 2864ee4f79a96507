"""SQL pieces shared by programStats and its rollup: rows to periods, ledger measures."""

from collections.abc import Sequence
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import ColumnElement, Select, and_, case, literal_column, select

from loyalty.ledger.models import (
    REDEEMING_KINDS,
    Account,
    EntryKind,
    LedgerEntry,
    LedgerTransaction,
)

ISSUING_KINDS = (EntryKind.EARN, EntryKind.BONUS)
MEMBER_ACCOUNTS = (Account.MEMBER_AVAILABLE, Account.MEMBER_PENDING)


def bucket(
    column: Any, edges: Sequence[Any], *, inclusive: bool = False, offset: int = 0
) -> ColumnElement[int]:
    """How many of the sorted ``edges`` lie before ``column`` (at or before it; strictly
    before when ``inclusive``), plus ``offset``: the index of its period. A balanced tree of
    CASEs, so the database makes about log2(periods) comparisons per row, not one per period."""
    if not edges:
        return literal_column(str(offset))
    middle = len(edges) // 2
    edge = edges[middle]
    return case(
        (
            column <= edge if inclusive else column < edge,
            bucket(column, edges[:middle], inclusive=inclusive, offset=offset),
        ),
        else_=bucket(column, edges[middle + 1 :], inclusive=inclusive, offset=offset + middle + 1),
    )


def midnight(day: date, zone: ZoneInfo) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=zone)


def month_key(day: date) -> int:
    return day.year * 12 + day.month - 1


def month_start(key: int) -> date:
    return date(key // 12, key % 12 + 1, 1)


def local_day_key(
    column: Any, low: datetime, high: datetime, zone: ZoneInfo, *, inclusive: bool = False
) -> ColumnElement[int]:
    """The ordinal of the local day holding ``column`` (within ``[low, high]``): the day whose
    ``[midnight, next midnight)`` holds it, or with ``inclusive`` the one whose
    ``(midnight, next midnight]`` does. Portable: a CASE tree over the local midnights."""
    base = low.astimezone(zone).date() - timedelta(days=1)
    last = high.astimezone(zone).date() + timedelta(days=1)
    days = (last - base).days
    edges = [midnight(base + timedelta(days=n), zone) for n in range(1, days + 1)]
    return bucket(column, edges, inclusive=inclusive, offset=base.toordinal())


def local_month_key(column: Any, low: datetime, high: datetime, zone: ZoneInfo) -> Any:
    """``year * 12 + month - 1`` of the local month holding ``column`` (within ``[low, high]``)."""
    base = month_key(low.astimezone(zone).date()) - 1
    last = month_key(high.astimezone(zone).date()) + 1
    edges = [midnight(month_start(key), zone) for key in range(base + 1, last + 1)]
    return bucket(column, edges, offset=base)


def member_postings() -> Select[Any]:
    """Member balance postings with their transaction: the rows of points measures."""
    return (
        select()
        .select_from(LedgerEntry)
        .join(LedgerTransaction, LedgerTransaction.id == LedgerEntry.transaction_id)
        .where(LedgerEntry.member_id.isnot(None), LedgerEntry.account.in_(MEMBER_ACCOUNTS))
    )


def points_measures() -> tuple[ColumnElement[int], ColumnElement[int], ColumnElement[int]]:
    """Issued, redeemed and expired points of one member posting (docs/analytics.md)."""
    kind, points = LedgerTransaction.kind, LedgerEntry.points
    return (
        case(
            (kind.in_(ISSUING_KINDS), points),
            (and_(kind == EntryKind.ADJUST, points > 0), points),
            else_=0,
        ),
        case((kind.in_(REDEEMING_KINDS), -points), else_=0),
        case((kind == EntryKind.EXPIRE, -points), else_=0),
    )
