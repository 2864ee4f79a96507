"""recordPurchase: the hot path every till and web shop calls on every receipt."""

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import ROUND_FLOOR, Decimal
from typing import Any

from sqlalchemy import Select, bindparam, exists, func, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql.elements import ColumnElement

from loyalty.db import (
    attach,
    columns_of,
    flush_changes,
    insert_ignoring_conflicts,
    utcnow,
)
from loyalty.errors import DomainError, ErrorCode, invalid, not_found
from loyalty.hot_statements import HotStatement
from loyalty.idempotency import service as idempotency
from loyalty.ledger import service as ledger
from loyalty.members import service as members
from loyalty.members.models import Channel, Member
from loyalty.money import require_currency
from loyalty.outbox import service as outbox
from loyalty.pagination import Page, PageRequest, newest_first_by_owner
from loyalty.program.models import PROGRAM_ID, Program
from loyalty.program.service import require_within_backdate
from loyalty.purchases import inputs
from loyalty.purchases.models import Purchase, PurchaseStatus
from loyalty.referrals import service as referrals
from loyalty.rules import awarding
from loyalty.rules.awarding import local_time
from loyalty.rules.book import rule_book
from loyalty.rules.engine import Award, Occasion
from loyalty.tiers import service as tiers
from loyalty.tiers.models import Tier

MAX_POINTS_PER_PURCHASE = 100_000_000


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


@dataclass(frozen=True)
class Quote:
    """What a purchase earns: base points and each earning rule's award."""

    base: int
    awards: list[Award]

    @property
    def total(self) -> int:
        return self.base + sum(award.points for award in self.awards)

    def breakdown(self) -> list[dict[str, Any]]:
        return [
            {"rule_id": None, "points": self.base},
            *(
                {
                    "rule_id": award.rule.rule_id,
                    "version": award.rule.version,
                    "name": award.rule.name,
                    "points": award.points,
                }
                for award in self.awards
            ),
        ]


async def record_purchase(
    session: AsyncSession, *, scope: str, idempotency_key: str, purchase: PurchaseIn
) -> PurchaseResult:
    """Record a purchase and award its points, once per idempotency key and per orderId."""
    now = utcnow()
    valid = inputs.validated_purchase(purchase, now=now)
    return await _RECORD_PURCHASE.run(
        session,
        scope=scope,
        key=idempotency_key,
        request=idempotency.request_of(purchase),
        work=lambda: _record(session, valid=valid, now=now),
    )


async def _record(
    session: AsyncSession, *, valid: inputs.ValidPurchase, now: datetime
) -> PurchaseResult:
    locked = await _read_for_purchase(
        session, member_id=valid.member_id, external_id=valid.member_external_id, lock=True
    )
    if locked.member.referral_pending:
        # Before any rule row: members are always locked before rules, newest member first.
        await referrals.lock_referrer(session, referee_id=locked.member.id)
    quote = await _quote(session, locked=locked, valid=valid, lock=True)
    member, program = locked.member, locked.program
    occurred_at = valid.occurred_at

    inserted = await _INSERT_PURCHASE.rows(
        session,
        {
            "order_id": valid.order_id,
            "member_id": member.id,
            "channel": valid.channel,
            "store_id": valid.store_id,
            "total_amount": valid.total_amount,
            "currency": program.currency,
            "lines": valid.stored_lines(),
            "occurred_at": occurred_at,
            "created_at": now,
            "points_awarded": quote.total,
            "points_refunded": 0,
            "points_unrecovered": 0,
            "refunded_amount": 0,
            "status": PurchaseStatus.COMPLETED,
            "points_breakdown": quote.breakdown(),
        },
    )
    if not inserted:
        raise _already_recorded(valid.order_id)
    recorded = attach(session, Purchase, inserted[0])
    await outbox.emit(
        session,
        outbox.PURCHASE_RECORDED,
        member_id=member.id,
        occurred_at=occurred_at,
        data={"purchase": outbox.purchase_data(recorded)},
    )
    if quote.total:
        member = await _award(session, locked=locked, quote=quote, purchase=recorded, now=now)
    return PurchaseResult(purchase=recorded, points_awarded=quote.total, member=member)


async def _award(
    session: AsyncSession, *, locked: "_Locked", quote: Quote, purchase: Purchase, now: datetime
) -> Member:
    """Post the quoted points (pending until releases_at when the program holds them), then
    the rule awards, the tier upgrade and a pending referral they trigger."""
    program, occurred_at = locked.program, purchase.occurred_at
    releases_at = occurred_at + timedelta(days=program.pending_days)
    pending = program.pending_days > 0 and releases_at > now
    earned = await ledger.earn(
        session,
        ledger.Earning(
            member_id=locked.member.id,
            occurred_at=occurred_at,
            pending=pending,
            base=quote.base,
            bonuses=tuple(award.points for award in quote.awards),
            purchase_id=purchase.id,
            qualifying_at=min(occurred_at, now),
            releases_at=releases_at if pending else None,
            expires_at=program.expires_at(occurred_at),
        ),
        member_locked=True,
    )
    member = earned.member
    if quote.awards:
        await awarding.record_awards(
            session,
            awards=quote.awards,
            entry_ids=earned.bonus_entry_ids,
            member_id=member.id,
            awarded_for=occurred_at,
            now=now,
            purchase_id=purchase.id,
        )
    await tiers.qualify_after_earning(
        session,
        member=member,
        now=now,
        window_days=program.tier_window_days,
        next_threshold=locked.next_threshold,
    )
    if member.referral_pending:
        member = await referrals.reward_referral(
            session,
            referee=member,
            program=program,
            purchase_id=purchase.id,
            occurred_at=occurred_at,
            releases_at=releases_at if pending else None,
        )
    return member


async def preview_purchase(session: AsyncSession, *, purchase: PurchaseIn) -> Quote:
    """What ``record_purchase`` would award now, writing nothing (and locking nothing)."""
    valid = inputs.validated_purchase(purchase, now=utcnow())
    locked = await _read_for_purchase(
        session, member_id=valid.member_id, external_id=valid.member_external_id, lock=False
    )
    quote = await _quote(session, locked=locked, valid=valid, lock=False)
    # Only the member's own orders are named: an order of someone else's must not be confirmed
    # to whoever can preview for this member (a member token previews for itself).
    recorded = exists().where(
        Purchase.order_id == valid.order_id, Purchase.member_id == locked.member.id
    )
    if await session.scalar(select(recorded)):
        raise _already_recorded(valid.order_id)
    return quote


async def _quote(
    session: AsyncSession, *, locked: "_Locked", valid: inputs.ValidPurchase, lock: bool
) -> Quote:
    """The checks that need the member and program, then base points and rule awards, with
    the tier and the rule versions in force at occurredAt."""
    member, program = locked.member, locked.program
    for currency, path in valid.currencies:
        require_currency(currency, program.currency, *path)
    members.require_active(member)
    occurred_at = valid.occurred_at
    require_within_backdate(program, occurred_at, valid.now)
    tier_id, multiplier = await tiers.tier_at(
        session, member=member, at=occurred_at, current_multiplier=locked.multiplier
    )
    quote = Quote(
        base=points_for(valid.total_amount, program.points_per_unit, multiplier), awards=[]
    )
    book = await rule_book(session, program.rules_token)
    if book.rules:

        async def first_purchase() -> bool:
            return not await session.scalar(select(exists().where(Purchase.member_id == member.id)))

        awards = await awarding.awards_for(
            session,
            book=book,
            at=occurred_at,
            occasion=_occasion(valid, program, tier_id=tier_id, multiplier=multiplier),
            member_id=member.id,
            lock=lock,
            first_purchase=first_purchase,
        )
        quote = Quote(base=quote.base, awards=awards)
    _refuse_above_cap(quote)
    return quote


def _occasion(
    valid: inputs.ValidPurchase, program: Program, *, tier_id: int | None, multiplier: Decimal
) -> Occasion:
    """The purchase as the earning rules see it: local time, tier, total, channel, lines."""
    return Occasion(
        local_time=local_time(valid.occurred_at, program.time_zone),
        tier_id=tier_id,
        multiplier=multiplier,
        points_per_unit=program.points_per_unit,
        total=valid.total_amount,
        channel=valid.channel,
        store_id=valid.store_id,
        lines=tuple(line.for_rules() for line in valid.lines),
    )


def _refuse_above_cap(quote: Quote) -> None:
    """A purchase earning more than one may is most likely a mistyped amount."""
    if quote.total > MAX_POINTS_PER_PURCHASE:
        raise invalid(
            f"The purchase would earn {quote.total:,} points, more than the "
            f"{MAX_POINTS_PER_PURCHASE:,} one purchase may; check the amount.",
            *inputs.TOTAL_AMOUNT,
        )


def _already_recorded(order_id: str) -> DomainError:
    return DomainError(
        ErrorCode.ALREADY_EXISTS, f"Order {order_id!r} is already recorded.", [*inputs.ORDER_ID]
    )


REPORTED_PURCHASE = idempotency.Reported(
    Purchase,
    "purchase",
    figures=(
        "points_awarded",
        "points_refunded",
        "points_unrecovered",
        "refunded_amount",
        "status",
    ),
)
"""A purchase as a payload reports it: later refunds change these figures, a replay does not."""


_RECORD_PURCHASE = idempotency.returning(
    "recordPurchase", PurchaseResult, purchase=REPORTED_PURCHASE, member=members.REPORTED
)
"""A replay answers with the purchase and pointsAwarded as recorded, the member as it is now."""

_INSERT_PURCHASE = HotStatement(
    lambda session: insert_ignoring_conflicts(session, Purchase.__table__).returning(
        *columns_of(Purchase)
    )
)


@dataclass(frozen=True)
class _Locked:
    member: Member
    program: Program
    multiplier: Decimal
    next_threshold: int | None
    """The threshold of the tier above the member's (None at the top): the upgrade hook."""


_MEMBERS = Member.__table__
_PROGRAM = Program.__table__
_CURRENT = Tier.__table__.alias("current_tier")
_ABOVE = Tier.__table__.alias("tier_above")


def _member_statement(condition: ColumnElement[bool]) -> Select[*tuple[Any, ...]]:
    """Core, not ORM entities: ``attach`` makes the member and program rows session objects
    for a fraction of the ORM's loading cost."""
    next_threshold = (
        select(func.min(_ABOVE.c.threshold))
        .where(_ABOVE.c.rank > func.coalesce(_CURRENT.c.rank, -1))
        .scalar_subquery()
    )
    return (
        select(
            *columns_of(Member),
            *columns_of(Program, "program_"),
            _CURRENT.c.multiplier.label("tier_multiplier"),
            next_threshold.label("next_threshold"),
        )
        .select_from(_MEMBERS)
        .join(_PROGRAM, _PROGRAM.c.id == PROGRAM_ID)
        .outerjoin(_CURRENT, _CURRENT.c.id == _MEMBERS.c.tier_id)
        .where(condition)
    )


_BY_ID = _member_statement(_MEMBERS.c.id == bindparam("key"))
_BY_EXTERNAL_ID = _member_statement(_MEMBERS.c.external_id == bindparam("key"))
_READ_BY_ID = HotStatement(lambda _: _BY_ID)
_READ_BY_EXTERNAL_ID = HotStatement(lambda _: _BY_EXTERNAL_ID)
_LOCK_BY_ID = HotStatement(lambda _: _BY_ID.with_for_update(of=_MEMBERS))
_LOCK_BY_EXTERNAL_ID = HotStatement(lambda _: _BY_EXTERNAL_ID.with_for_update(of=_MEMBERS))


async def _read_for_purchase(
    session: AsyncSession, *, member_id: int | None, external_id: str | None, lock: bool
) -> _Locked:
    """The member row (locked to record), with the program and the member's tier in one
    round trip."""
    key: int | str | None
    if member_id is not None:
        statement, key = (_LOCK_BY_ID if lock else _READ_BY_ID), member_id
    else:
        statement, key = (_LOCK_BY_EXTERNAL_ID if lock else _READ_BY_EXTERNAL_ID), external_id
    await flush_changes(session)
    rows = await statement.rows(session, {"key": key})
    if not rows:
        raise not_found(
            "Member", *(inputs.MEMBER_ID if member_id is not None else inputs.MEMBER_EXTERNAL_ID)
        )
    values = rows[0]
    multiplier = values["tier_multiplier"]
    return _Locked(
        member=attach(session, Member, values),
        program=attach(session, Program, values, "program_"),
        multiplier=Decimal(1) if multiplier is None else multiplier,
        next_threshold=values["next_threshold"],
    )


async def member_purchases(
    session: AsyncSession, *, member_ids: Sequence[int], page: PageRequest
) -> dict[int, Page[Purchase]]:
    """Each member's purchases, newest first."""
    return await newest_first_by_owner(
        session, Purchase, owner=Purchase.member_id, owner_ids=member_ids, page=page
    )
