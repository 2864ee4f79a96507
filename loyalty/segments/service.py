"""Segments: create, edit, delete, count and list their members, and test one member.

Who is in a segment is never stored: each question runs the filter's SQL condition
(``filters.member_condition``) as of now, so a count or a rule always sees current data (RFM
scores excepted: they are as of the last ``rfm`` job). Rules and rewards name segments by id;
a segment a live rule or a reward names cannot be deleted.
"""

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any
from uuid import uuid4

from sqlalchemy import case, delete, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql.elements import ColumnElement

from loyalty.db import lock_by_id, utcnow
from loyalty.errors import DomainError, DomainErrors, ErrorCode, invalid
from loyalty.inputs import collect, collect_awaited
from loyalty.members.models import Channel, Member
from loyalty.money import parse_non_negative_amount, require_currency
from loyalty.pagination import Page, PageRequest, make_page
from loyalty.program.models import PROGRAM_ID, Program
from loyalty.rewards.models import Reward
from loyalty.rules.models import live_versions
from loyalty.segments.filters import MarketingChannel, SegmentFilter, member_condition
from loyalty.segments.models import Segment
from loyalty.tiers.models import Tier
from loyalty.validation import UNSET, Unset, instant, int_between, optional_text, required_text

MAX_DAYS = 36_500
MAX_POINTS = 1_000_000_000_000
MAX_VALUES = 1000
FILTER = "filter"


@dataclass(frozen=True)
class AmountIn:
    amount: object
    currency: str


@dataclass(frozen=True)
class FilterIn:
    """A filter as an admin sends it, before validation."""

    tier_ids: list[int] | None = None
    min_available_points: int | None = None
    max_available_points: int | None = None
    min_lifetime_spend: AmountIn | None = None
    purchased_within_days: int | None = None
    not_purchased_for_days: int | None = None
    min_purchases: int | None = None
    purchases_within_days: int | None = None
    channels: list[str] | None = None
    enrolled_after: datetime | None = None
    enrolled_before: datetime | None = None
    min_recency: int | None = None
    min_frequency: int | None = None
    min_monetary: int | None = None
    marketing_consent: str | None = None


@dataclass(frozen=True)
class SegmentChanges:
    name: str | Unset | None = UNSET
    description: str | Unset | None = UNSET
    filter: FilterIn | Unset = UNSET


async def create_segment(
    session: AsyncSession, *, name: str, description: str | None, filter: FilterIn
) -> Segment:
    errors: list[DomainError] = []
    checked_name = collect(errors, required_text, name, 200, "name")
    checked_description = collect(errors, optional_text, description, 2000, "description")
    checked_filter = await _filter(session, filter, errors)
    if errors:
        raise DomainErrors(errors)
    now = utcnow()
    segment = Segment(
        name=checked_name,
        description=checked_description,
        filter=checked_filter.stored(),
        created_at=now,
        updated_at=now,
    )
    session.add(segment)
    await session.flush()
    return segment


async def update_segment(
    session: AsyncSession, *, segment_id: int, changes: SegmentChanges
) -> Segment:
    """A new filter applies from now: rules and rewards naming the segment follow it."""
    segment = await lock_by_id(session, Segment, segment_id, field="id")
    errors: list[DomainError] = []
    checked: dict[str, Any] = {}
    if not isinstance(changes.name, Unset):
        checked["name"] = collect(errors, required_text, changes.name, 200, "name")
    if not isinstance(changes.description, Unset):
        checked["description"] = collect(
            errors, optional_text, changes.description, 2000, "description"
        )
    if not isinstance(changes.filter, Unset):
        checked["filter"] = (await _filter(session, changes.filter, errors)).stored()
    if errors:
        raise DomainErrors(errors)
    for name, value in checked.items():
        setattr(segment, name, value)
    if "filter" in checked:
        await _segments_changed(session)
    segment.updated_at = utcnow()
    await session.flush()
    return segment


async def delete_segment(session: AsyncSession, *, segment_id: int) -> Segment:
    """Refused while a live earning rule or a reward names the segment."""
    segment = await lock_by_id(session, Segment, segment_id, field="id")
    users = await _rules_naming(session, segment_id) + await _rewards_naming(session, segment_id)
    if users:
        raise invalid(
            f"Named by {', '.join(users)}: take it out of those first.",
            "id",
        )
    await session.execute(delete(Segment).where(Segment.id == segment_id))
    await _segments_changed(session)
    return segment


async def get_segment(session: AsyncSession, *, segment_id: int | None) -> Segment | None:
    if segment_id is None:
        return None
    return await session.get(Segment, segment_id)


async def list_segments(session: AsyncSession, *, page: PageRequest) -> Page[Segment]:
    """Oldest first."""
    statement = select(Segment).order_by(Segment.id).limit(page.first + 1)
    if page.after is not None:
        statement = statement.where(Segment.id > page.after)
    rows = list((await session.scalars(statement)).all())
    return make_page(rows, [row.id for row in rows], page)


async def member_count(session: AsyncSession, *, segment: Segment, now: datetime) -> int:
    condition = member_condition(SegmentFilter.from_stored(segment.filter), now=now)
    return int(await session.scalar(select(func.count()).select_from(Member).where(condition)) or 0)


async def segment_members(
    session: AsyncSession, *, segment: Segment, page: PageRequest, now: datetime
) -> Page[Member]:
    """The segment's members in enrollment order (by id)."""
    condition = member_condition(SegmentFilter.from_stored(segment.filter), now=now)
    statement = select(Member).where(condition).order_by(Member.id).limit(page.first + 1)
    if page.after is not None:
        statement = statement.where(Member.id > page.after)
    rows = list((await session.scalars(statement)).all())
    return make_page(rows, [row.id for row in rows], page)


async def condition_of(
    session: AsyncSession, *, segment_id: int | None, now: datetime
) -> ColumnElement[bool] | None:
    """The segment's membership as a WHERE clause over members; None when there is none."""
    segment = await get_segment(session, segment_id=segment_id)
    if segment is None:
        return None
    return member_condition(SegmentFilter.from_stored(segment.filter), now=now)


async def filters_of(session: AsyncSession, segment_ids: Iterable[int]) -> dict[int, SegmentFilter]:
    """The filters of the segments that exist among ``segment_ids``: one statement."""
    wanted = sorted(set(segment_ids))
    if not wanted:
        return {}
    rows = await session.execute(select(Segment.id, Segment.filter).where(Segment.id.in_(wanted)))
    return {row[0]: SegmentFilter.from_stored(row[1]) for row in rows}


async def all_filters(session: AsyncSession) -> dict[int, SegmentFilter]:
    """Every segment's filter (a program has tens of segments), for the rule book."""
    rows = await session.execute(select(Segment.id, Segment.filter))
    return {row[0]: SegmentFilter.from_stored(row[1]) for row in rows}


async def segments_of_member(
    session: AsyncSession, *, member_id: int, filters: dict[int, SegmentFilter], now: datetime
) -> frozenset[int]:
    """Which of these segments the member is in now: one statement, one column per segment."""
    if not filters:
        return frozenset()
    ids = sorted(filters)
    tests = (case((member_condition(filters[i], now=now, few=True), 1), else_=0) for i in ids)
    row = (await session.execute(select(*tests).where(Member.id == member_id))).one_or_none()
    if row is None:
        return frozenset()
    return frozenset(i for i, inside in zip(ids, row, strict=True) if inside)


async def require_segments(session: AsyncSession, segment_ids: list[int], *field: str) -> list[int]:
    """The ids sorted and deduplicated, each naming a segment (else NOT_FOUND at ``field``).

    The rows are share-locked, so a concurrent deleteSegment waits for the rule or reward
    naming them, and then sees it.
    """
    if not segment_ids:
        raise invalid("Give at least one segment, or leave the condition out.", *field)
    if len(segment_ids) > MAX_VALUES:
        raise invalid(f"At most {MAX_VALUES} segments.", *field)
    wanted = sorted(set(segment_ids))
    found = set(
        (
            await session.scalars(
                select(Segment.id).where(Segment.id.in_(wanted)).with_for_update(read=True)
            )
        ).all()
    )
    if missing := [i for i in wanted if i not in found]:
        raise DomainError(
            ErrorCode.NOT_FOUND, f"{len(missing)} of these segments do not exist.", list(field)
        )
    return wanted


async def _filter(
    session: AsyncSession, given: FilterIn, errors: list[DomainError]
) -> SegmentFilter:
    """Each condition checked and normalised, every error (naming ``filter`` and the field)
    added to ``errors``: the caller raises them before it uses the filter."""
    tier_ids = await collect_awaited(errors, _tiers(session, given.tier_ids))
    low = collect(
        errors, _optional_int, given.min_available_points, 0, MAX_POINTS, "minAvailablePoints"
    )
    high = collect(
        errors, _optional_int, given.max_available_points, 0, MAX_POINTS, "maxAvailablePoints"
    )
    if low is not None and high is not None and low > high:
        errors.append(
            invalid("Must not be below minAvailablePoints.", FILTER, "maxAvailablePoints")
        )
    within = collect(
        errors, _optional_int, given.purchased_within_days, 1, MAX_DAYS, "purchasedWithinDays"
    )
    lapsed = collect(
        errors, _optional_int, given.not_purchased_for_days, 1, MAX_DAYS, "notPurchasedForDays"
    )
    if within is not None and lapsed is not None and within <= lapsed:
        errors.append(
            invalid(
                "Must be more than notPurchasedForDays, or no member can match.",
                FILTER,
                "purchasedWithinDays",
            )
        )
    count = collect(errors, _optional_int, given.min_purchases, 1, 1_000_000, "minPurchases")
    window = collect(
        errors, _optional_int, given.purchases_within_days, 1, MAX_DAYS, "purchasesWithinDays"
    )
    if window is not None and count is None and given.min_purchases is None:
        errors.append(invalid("Only with minPurchases.", FILTER, "purchasesWithinDays"))
    after = collect(errors, _optional_instant, given.enrolled_after, "enrolledAfter")
    before = collect(errors, _optional_instant, given.enrolled_before, "enrolledBefore")
    if after is not None and before is not None and before <= after:
        errors.append(invalid("Must be after enrolledAfter.", FILTER, "enrolledBefore"))
    return SegmentFilter(
        tier_ids=tier_ids,
        min_available_points=low,
        max_available_points=high,
        min_lifetime_spend=await collect_awaited(errors, _spend(session, given.min_lifetime_spend)),
        purchased_within_days=within,
        not_purchased_for_days=lapsed,
        min_purchases=count,
        purchases_within_days=window,
        channels=collect(errors, _channels, given.channels),
        enrolled_after=after,
        enrolled_before=before,
        min_recency=collect(errors, _optional_int, given.min_recency, 1, 5, "minRecency"),
        min_frequency=collect(errors, _optional_int, given.min_frequency, 1, 5, "minFrequency"),
        min_monetary=collect(errors, _optional_int, given.min_monetary, 1, 5, "minMonetary"),
        marketing_consent=None
        if given.marketing_consent is None
        else MarketingChannel(given.marketing_consent),
    )


def _optional_int(value: int | None, low: int, high: int, field: str) -> int | None:
    return None if value is None else int_between(value, low, high, FILTER, field)


def _optional_instant(value: datetime | None, field: str) -> datetime | None:
    return None if value is None else instant(value, FILTER, field)


def _listed(values: list[Any], field: str) -> list[Any]:
    if not values:
        raise invalid("Give at least one value, or leave the condition out.", FILTER, field)
    if len(values) > MAX_VALUES:
        raise invalid(f"At most {MAX_VALUES} values.", FILTER, field)
    return values


async def _tiers(session: AsyncSession, tier_ids: list[int] | None) -> tuple[int, ...] | None:
    if tier_ids is None:
        return None
    wanted = sorted(set(_listed(tier_ids, "tierIds")))
    known = set((await session.scalars(select(Tier.id).where(Tier.id.in_(wanted)))).all())
    if missing := [t for t in wanted if t not in known]:
        raise DomainError(
            ErrorCode.NOT_FOUND,
            f"{len(missing)} of these tiers do not exist.",
            [FILTER, "tierIds"],
        )
    return tuple(wanted)


def _channels(channels: list[str] | None) -> tuple[str, ...] | None:
    if channels is None:
        return None
    return tuple(sorted({Channel(c).value for c in _listed(channels, "channels")}))


async def _spend(session: AsyncSession, given: AmountIn | None) -> Decimal | None:
    if given is None:
        return None
    path = (FILTER, "minLifetimeSpend")
    amount = parse_non_negative_amount(given.amount, *path, "amount")
    currency = await session.scalar(select(Program.currency).where(Program.id == PROGRAM_ID))
    require_currency(given.currency, currency or "", *path, "currency")
    return amount


async def _rules_naming(session: AsyncSession, segment_id: int) -> list[str]:
    versions = await session.scalars(live_versions())
    return [
        f"earning rule {version.name!r}"
        for version in versions
        if segment_id in (version.conditions.get("segment_ids") or ())
    ]


async def _rewards_naming(session: AsyncSession, segment_id: int) -> list[str]:
    rewards = await session.execute(
        select(Reward.name, Reward.segment_ids).where(Reward.segment_ids.is_not(None))
    )
    return [f"reward {name!r}" for name, ids in rewards if segment_id in (ids or ())]


async def _segments_changed(session: AsyncSession) -> None:
    """Rule books carry the segments' filters: a new token makes every process reload."""
    await session.flush()
    await session.execute(
        update(Program).where(Program.id == PROGRAM_ID).values(rules_token=str(uuid4()))
    )
