"""recordPurchase: the hot path every till and web shop calls on every receipt."""

from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from decimal import ROUND_FLOOR, Decimal
from typing import Any

from sqlalchemy import Select, bindparam, func, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased
from sqlalchemy.sql.elements import ColumnElement

from loyalty.db import PerDialect, insert_ignoring_conflicts, utcnow
from loyalty.errors import DomainError, ErrorCode, invalid, not_found
from loyalty.idempotency import service as idempotency
from loyalty.ledger import service as ledger
from loyalty.ledger.models import Account, EntryKind
from loyalty.members import service as members
from loyalty.members.models import Channel, Member
from loyalty.money import parse_currency, parse_positive_amount, require_currency
from loyalty.pagination import Page, PageRequest, newest_first
from loyalty.program.models import PROGRAM_ID, Program
from loyalty.purchases.models import Purchase, PurchaseStatus
from loyalty.tiers import service as tiers
from loyalty.tiers.models import Tier
from loyalty.validation import int_between, lookup_key, optional_text, required_text

MAX_FUTURE_SKEW = timedelta(minutes=5)
MAX_PAST = timedelta(days=3650)
MAX_POINTS_PER_PURCHASE = 100_000_000
MAX_LINES = 500


@dataclass(frozen=True)
class MoneyIn:
    amount: object
    currency: str


@dataclass(frozen=True)
class LineIn:
    sku: str | None = None
    category: str | None = None
    quantity: int = 1
    unit_price: MoneyIn | None = None


@dataclass(frozen=True)
class PurchaseIn:
    order_id: str
    channel: Channel
    total: MoneyIn
    member_id: int | None = None
    member_external_id: str | None = None
    store_id: str | None = None
    lines: list[LineIn] = field(default_factory=list)
    occurred_at: datetime | None = None


@dataclass(frozen=True)
class PurchaseResult:
    purchase: Purchase
    points_awarded: int
    member: Member


def points_for(total: Decimal, points_per_unit: Decimal, multiplier: Decimal) -> int:
    """floor(total × pointsPerUnit × tier multiplier), in exact decimal arithmetic."""
    return int((total * points_per_unit * multiplier).to_integral_value(rounding=ROUND_FLOOR))


async def record_purchase(
    session: AsyncSession, *, scope: str, idempotency_key: str, purchase: PurchaseIn
) -> PurchaseResult:
    """Record a purchase and award its points, once per idempotency key and per orderId."""
    now = utcnow()
    values = _validated(purchase, now=now)
    claim = await idempotency.claim(
        session,
        scope=scope,
        key=idempotency_key,
        operation="recordPurchase",
        request=asdict(purchase),
    )
    if isinstance(claim, idempotency.Replay):
        return await _replayed(session, claim.result)

    locked = await _lock_for_purchase(
        session, member_id=purchase.member_id, external_id=values["member_external_id"]
    )
    member, program = locked.member, locked.program
    for currency, path in values["currencies"]:
        require_currency(currency, program.currency, *path)
    members.require_active(member)
    points = points_for(values["total_amount"], program.points_per_unit, locked.multiplier)
    if points > MAX_POINTS_PER_PURCHASE:
        raise invalid(
            f"The purchase would earn {points:,} points, more than the "
            f"{MAX_POINTS_PER_PURCHASE:,} one purchase may; check the amount.",
            "total",
            "amount",
        )
    occurred_at: datetime = values["occurred_at"]

    recorded = await session.scalar(
        _INSERT_PURCHASE(session),
        {
            "order_id": values["order_id"],
            "member_id": member.id,
            "channel": purchase.channel,
            "store_id": values["store_id"],
            "total_amount": values["total_amount"],
            "currency": program.currency,
            "lines": values["lines"],
            "occurred_at": occurred_at,
            "created_at": now,
            "points_awarded": points,
            "points_refunded": 0,
            "points_unrecovered": 0,
            "refunded_amount": 0,
            "status": PurchaseStatus.COMPLETED,
        },
    )
    if recorded is None:
        raise DomainError(
            ErrorCode.ALREADY_EXISTS,
            f"Order {values['order_id']!r} is already recorded.",
            ["orderId"],
        )
    if points:
        releases_at = occurred_at + timedelta(days=program.pending_days)
        pending = program.pending_days > 0 and releases_at > now
        expires_at = (
            None
            if program.points_expire_after_days is None
            else occurred_at + timedelta(days=program.points_expire_after_days)
        )
        posted = await ledger.post(
            session,
            ledger.Movement(
                kind=EntryKind.EARN,
                member_id=member.id,
                counter_account=Account.PROGRAM_ISSUANCE,
                occurred_at=occurred_at,
                available=0 if pending else points,
                pending=points if pending else 0,
                lifetime_earned=points,
                purchase_id=recorded.id,
                qualifying_points=points,
                qualifying_at=min(occurred_at, now),
                releases_at=releases_at if pending else None,
                expires_at=expires_at,
            ),
        )
        member = posted.member
        await tiers.qualify_after_earning(
            session,
            member=member,
            now=now,
            window_days=program.tier_window_days,
            next_threshold=locked.next_threshold,
        )
    await idempotency.complete(
        session,
        claimed=claim,
        result={"purchase_id": recorded.id, "member_id": member.id, "points_awarded": points},
    )
    return PurchaseResult(purchase=recorded, points_awarded=points, member=member)


async def _replayed(session: AsyncSession, result: dict[str, Any]) -> PurchaseResult:
    purchase = await session.get(Purchase, result["purchase_id"])
    member = await session.get(Member, result["member_id"])
    if purchase is None or member is None:
        raise not_found("Purchase")
    return PurchaseResult(purchase=purchase, points_awarded=result["points_awarded"], member=member)


_INSERT_PURCHASE = PerDialect(
    lambda session: insert_ignoring_conflicts(session, Purchase).returning(Purchase)
)


@dataclass(frozen=True)
class _Locked:
    member: Member
    program: Program
    multiplier: Decimal
    next_threshold: int | None
    """The threshold of the tier above the member's (None at the top): the upgrade hook."""


def _lock_statement(condition: ColumnElement[bool]) -> Select:  # type: ignore[type-arg]
    current = aliased(Tier)
    above = aliased(Tier)
    next_threshold = (
        select(func.min(above.threshold))
        .where(above.rank > func.coalesce(current.rank, -1))
        .scalar_subquery()
    )
    return (
        select(Member, Program, current.multiplier, next_threshold)
        .select_from(Member)
        .join(Program, Program.id == PROGRAM_ID)
        .outerjoin(current, current.id == Member.tier_id)
        .where(condition)
        .with_for_update(of=Member)
    )


_LOCK_BY_ID = _lock_statement(Member.id == bindparam("key"))
_LOCK_BY_EXTERNAL_ID = _lock_statement(Member.external_id == bindparam("key"))


async def _lock_for_purchase(
    session: AsyncSession, *, member_id: int | None, external_id: str | None
) -> _Locked:
    """The member row, locked, with the program and the member's tier in one round trip."""
    if member_id is not None:
        statement, key = _LOCK_BY_ID, member_id
    else:
        statement, key = _LOCK_BY_EXTERNAL_ID, external_id
    row = (
        await session.execute(
            statement, {"key": key}, execution_options={"populate_existing": True}
        )
    ).one_or_none()
    if row is None:
        raise not_found("Member", "memberId" if member_id is not None else "memberExternalId")
    return _Locked(
        member=row[0],
        program=row[1],
        multiplier=Decimal(1) if row[2] is None else row[2],
        next_threshold=row[3],
    )


def _validated(purchase: PurchaseIn, *, now: datetime) -> dict[str, Any]:
    """Everything that needs no database; currencies are checked once the program is read."""
    if (purchase.member_id is None) == (purchase.member_external_id is None):
        raise invalid("Give exactly one of memberId and memberExternalId.", "memberId")
    occurred_at = purchase.occurred_at or now
    if occurred_at.tzinfo is None:
        raise invalid("Must carry a timezone.", "occurredAt")
    if occurred_at > now + MAX_FUTURE_SKEW:
        raise invalid("Must not be more than 5 minutes in the future.", "occurredAt")
    if len(purchase.lines) > MAX_LINES:
        raise invalid(f"At most {MAX_LINES} lines.", "lines")
    if occurred_at < now - MAX_PAST:
        raise invalid("Must not be more than 10 years in the past.", "occurredAt")
    return {
        "member_external_id": _external_id(purchase.member_external_id),
        "order_id": required_text(purchase.order_id, 128, "orderId"),
        "store_id": optional_text(purchase.store_id, 64, "storeId"),
        "total_amount": parse_positive_amount(purchase.total.amount, "total", "amount"),
        "currencies": [
            (parse_currency(purchase.total.currency, "total", "currency"), ("total", "currency")),
            *(
                (
                    parse_currency(line.unit_price.currency, *path, "currency"),
                    (*path, "currency"),
                )
                for index, line in enumerate(purchase.lines)
                if line.unit_price is not None
                for path in [("lines", str(index), "unitPrice")]
            ),
        ],
        "lines": [_line(line, index) for index, line in enumerate(purchase.lines)],
        "occurred_at": occurred_at,
    }


def _external_id(value: str | None) -> str | None:
    """An externalId to find the member by; one that cannot name anybody is NOT_FOUND."""
    if value is None:
        return None
    if len(value) > 128:
        raise invalid("Must be at most 128 characters.", "memberExternalId")
    key = lookup_key(value)
    if key is None:
        raise not_found("Member", "memberExternalId")
    return key


def _line(line: LineIn, index: int) -> dict[str, Any]:
    path = ("lines", str(index))
    unit_price = None
    if line.unit_price is not None:
        amount = parse_positive_amount(line.unit_price.amount, *path, "unitPrice", "amount")
        unit_price = str(amount)
    return {
        "sku": optional_text(line.sku, 64, *path, "sku"),
        "category": optional_text(line.category, 64, *path, "category"),
        "quantity": int_between(line.quantity, 1, 1_000_000, *path, "quantity"),
        "unit_price": unit_price,
    }


async def member_purchases(
    session: AsyncSession, *, member_id: int, page: PageRequest
) -> Page[Purchase]:
    """The member's purchases, newest first."""
    return await newest_first(session, Purchase, owner=Purchase.member_id == member_id, page=page)
