"""A segment's filter as a value, and as one SQL condition over ``members``.

Every condition that is set must hold (AND). Each becomes a clause over the ``members`` row:
a column comparison, an ``EXISTS`` over the member's purchases or RFM scores, or a test of an
aggregate of the member's purchases (spend, number of purchases). The aggregates take one of
two shapes: a correlated subquery per member that reads only that member's purchases from
``ix_purchases_member_id_segments`` (an index-only scan on PostgreSQL), when few members are
tested (one at a purchase, today's birthdays) or the filter's conditions on the member row
(tier, points, consent...) leave few; else ``members.id IN (SELECT member_id ... GROUP BY
member_id HAVING ...)``, one hash semi-join over the whole table. Members are never loaded
into Python to decide.

Purchases refunded in full are left out of every purchase condition; partly refunded ones
count, with their refunded amount taken off their total for the spend.
"""

from dataclasses import asdict, dataclass, fields
from datetime import datetime, timedelta
from decimal import Decimal
from enum import StrEnum
from typing import Any

from sqlalchemy import and_, exists, func, select, true
from sqlalchemy.sql.elements import ColumnElement

from loyalty.members.models import Member, MemberStatus
from loyalty.purchases.models import Purchase, PurchaseStatus
from loyalty.segments.models import MemberRfm


class MarketingChannel(StrEnum):
    EMAIL = "EMAIL"
    SMS = "SMS"
    PUSH = "PUSH"


CONSENT_COLUMNS = {
    MarketingChannel.EMAIL: Member.marketing_email,
    MarketingChannel.SMS: Member.marketing_sms,
    MarketingChannel.PUSH: Member.marketing_push,
}


@dataclass(frozen=True)
class SegmentFilter:
    """A validated filter; None means the condition is not set."""

    tier_ids: tuple[int, ...] | None = None
    min_available_points: int | None = None
    max_available_points: int | None = None
    min_lifetime_spend: Decimal | None = None
    purchased_within_days: int | None = None
    not_purchased_for_days: int | None = None
    min_purchases: int | None = None
    purchases_within_days: int | None = None
    channels: tuple[str, ...] | None = None
    enrolled_after: datetime | None = None
    enrolled_before: datetime | None = None
    min_recency: int | None = None
    min_frequency: int | None = None
    min_monetary: int | None = None
    marketing_consent: MarketingChannel | None = None

    def stored(self) -> dict[str, Any]:
        """The JSON kept in ``segments.filter``: the conditions set, in plain JSON types."""
        out: dict[str, Any] = {}
        for name, value in asdict(self).items():
            if value is None:
                continue
            if isinstance(value, tuple):
                value = list(value)
            elif isinstance(value, Decimal | datetime):
                value = str(value) if isinstance(value, Decimal) else value.isoformat()
            out[name] = value
        return out

    @classmethod
    def from_stored(cls, stored: dict[str, Any]) -> "SegmentFilter":
        known = {f.name for f in fields(cls)}
        values: dict[str, Any] = {k: v for k, v in stored.items() if k in known}
        for name in ("tier_ids", "channels"):
            if values.get(name) is not None:
                values[name] = tuple(values[name])
        if values.get("min_lifetime_spend") is not None:
            values["min_lifetime_spend"] = Decimal(values["min_lifetime_spend"])
        for name in ("enrolled_after", "enrolled_before"):
            if values.get(name) is not None:
                values[name] = datetime.fromisoformat(values[name])
        if values.get("marketing_consent") is not None:
            values["marketing_consent"] = MarketingChannel(values["marketing_consent"])
        return cls(**values)


def _counted() -> ColumnElement[bool]:
    return Purchase.status != PurchaseStatus.REFUNDED


def _purchased(*conditions: ColumnElement[bool]) -> ColumnElement[bool]:
    """The member has a (not fully refunded) purchase meeting ``conditions``."""
    return exists().where(Purchase.member_id == Member.id, _counted(), *conditions)


def _at_least(
    aggregate: ColumnElement[Any],
    minimum: object,
    *conditions: ColumnElement[bool],
    few: bool,
) -> ColumnElement[bool]:
    """``aggregate`` over the member's counting purchases (meeting ``conditions``) is at
    least ``minimum`` (positive: a member without such purchases never matches)."""
    if few:
        mine = select(aggregate).where(Purchase.member_id == Member.id, _counted(), *conditions)
        return mine.scalar_subquery() >= minimum
    return Member.id.in_(
        select(Purchase.member_id)
        .where(_counted(), *conditions)
        .group_by(Purchase.member_id)
        .having(aggregate >= minimum)
    )


def narrows_members(segment: SegmentFilter) -> bool:
    """The filter has a condition on the member's own row, which leaves fewer members to
    test one by one than a pass over every purchase would aggregate."""
    f = segment
    return any(
        value is not None
        for value in (
            f.tier_ids,
            f.min_available_points,
            f.max_available_points,
            f.enrolled_after,
            f.enrolled_before,
            f.min_recency,
            f.min_frequency,
            f.min_monetary,
            f.marketing_consent,
        )
    )


def member_condition(
    segment: SegmentFilter, *, now: datetime, few: bool | None = None
) -> ColumnElement[bool]:
    """The filter as one WHERE clause over ``members``; ``now`` anchors the day windows.
    ``few``: the statement tests a handful of members (a purchase's, today's birthdays), or
    the filter's conditions on the member row leave few (None: decide by the filter).

    Only ACTIVE members are ever in a segment: the others can neither earn nor redeem, and
    must not be sent marketing.
    """
    clauses: list[ColumnElement[bool]] = [Member.status == MemberStatus.ACTIVE]
    f = segment
    if few is None:
        few = narrows_members(f)
    if f.tier_ids is not None:
        clauses.append(Member.tier_id.in_(f.tier_ids))
    if f.min_available_points is not None:
        clauses.append(Member.points_available >= f.min_available_points)
    if f.max_available_points is not None:
        clauses.append(Member.points_available <= f.max_available_points)
    if f.min_lifetime_spend:  # at least 0 holds for everyone
        spent = func.sum(Purchase.total_amount - Purchase.refunded_amount)
        clauses.append(_at_least(spent, f.min_lifetime_spend, few=few))
    if f.purchased_within_days is not None:
        since = now - timedelta(days=f.purchased_within_days)
        clauses.append(_purchased(Purchase.occurred_at >= since))
    if f.not_purchased_for_days is not None:
        since = now - timedelta(days=f.not_purchased_for_days)
        clauses.append(~_purchased(Purchase.occurred_at >= since))
    if f.min_purchases is not None:
        window = []
        if f.purchases_within_days is not None:
            window.append(Purchase.occurred_at >= now - timedelta(days=f.purchases_within_days))
        clauses.append(_at_least(func.count(), f.min_purchases, *window, few=few))
    if f.channels is not None:
        clauses.append(_purchased(Purchase.channel.in_(f.channels)))
    if f.enrolled_after is not None:
        clauses.append(Member.enrolled_at >= f.enrolled_after)
    if f.enrolled_before is not None:
        clauses.append(Member.enrolled_at < f.enrolled_before)
    scores = [
        column >= minimum
        for column, minimum in (
            (MemberRfm.recency, f.min_recency),
            (MemberRfm.frequency, f.min_frequency),
            (MemberRfm.monetary, f.min_monetary),
        )
        if minimum is not None
    ]
    if scores:
        clauses.append(exists().where(MemberRfm.member_id == Member.id, *scores))
    if f.marketing_consent is not None:
        clauses.append(CONSENT_COLUMNS[f.marketing_consent].is_(True))
    return and_(true(), *clauses)
