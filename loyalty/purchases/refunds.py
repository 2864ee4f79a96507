"""refundPurchase: take back what a purchase earned, in proportion to what was refunded.

Clawback after a refund = floor(pointsAwarded × cumulative refunded / total) − what earlier
refunds already took back, so partial refunds add up to exactly what the purchase earned. The
points come from the purchase's own pending points first, then from available points, oldest
first. Available points never go below zero: what the member no longer has is recorded as
``points_unrecovered`` on the purchase.
"""

from dataclasses import dataclass
from decimal import ROUND_FLOOR, Decimal

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from loyalty.db import lock_by_id, utcnow
from loyalty.errors import DomainError, ErrorCode, invalid, not_found
from loyalty.idempotency import service as idempotency
from loyalty.ledger import service as ledger
from loyalty.ledger.models import Account, EntryKind, LotState, PointLot
from loyalty.members import service as members
from loyalty.members.models import Member
from loyalty.money import format_amount, require_currency
from loyalty.outbox import service as outbox
from loyalty.program.service import get_program
from loyalty.purchases.inputs import REFUND_AMOUNT, REFUND_CURRENCY, validated_refund_money
from loyalty.purchases.models import Purchase, PurchaseRefund, PurchaseStatus
from loyalty.purchases.service import REPORTED_PURCHASE, MoneyIn
from loyalty.rules import awarding


@dataclass(frozen=True)
class RefundIn:
    purchase_id: int
    amount: MoneyIn


@dataclass(frozen=True)
class RefundResult:
    purchase: Purchase
    points_clawed_back: int
    """Taken from the member by this refund (``points_unrecovered`` on the purchase: the rest)."""


async def refund_purchase(
    session: AsyncSession, *, scope: str, idempotency_key: str, refund: RefundIn
) -> RefundResult:
    money = validated_refund_money(refund.amount)
    program = await get_program(session)
    require_currency(money.currency, program.currency, *REFUND_CURRENCY)
    return await _REFUND_PURCHASE.run(
        session,
        scope=scope,
        key=idempotency_key,
        request=idempotency.request_of(refund),
        work=lambda: _refund(session, refund=refund, amount=money.amount),
    )


@dataclass(frozen=True)
class _Clawback:
    """What one refund takes back: ``target`` points, from pending first, then available."""

    target: int
    qualifying: int
    from_pending: int
    from_available: int

    @property
    def recovered(self) -> int:
        return self.from_pending + self.from_available

    @property
    def unrecovered(self) -> int:
        return self.target - self.recovered


async def _refund(session: AsyncSession, *, refund: RefundIn, amount: Decimal) -> RefundResult:
    member, purchase = await _lock(session, refund.purchase_id)
    refunded = purchase.refunded_amount + amount
    if refunded > purchase.total_amount:
        raise invalid(
            f"Refunds would reach {refunded}, more than the purchase total "
            f"{purchase.total_amount}.",
            *REFUND_AMOUNT,
        )
    clawback = await _clawback(session, member=member, purchase=purchase, refunded=refunded)
    if clawback.target or clawback.qualifying:
        await ledger.post(
            session,
            ledger.Movement(
                kind=EntryKind.REFUND_CLAWBACK,
                member_id=member.id,
                counter_account=Account.PROGRAM_ISSUANCE,
                occurred_at=utcnow(),
                available=-clawback.from_available,
                pending=-clawback.from_pending,
                lifetime_earned=-clawback.recovered,
                reason=f"Refund of {refunded} on order {purchase.order_id}",
                purchase_id=purchase.id,
                qualifying_points=-clawback.qualifying,
                qualifying_at=purchase.occurred_at,
            ),
            member_locked=True,
        )
    await _book(session, purchase=purchase, amount=amount, clawback=clawback)
    await outbox.emit(
        session,
        outbox.PURCHASE_REFUNDED,
        member_id=member.id,
        data={
            "purchase": outbox.purchase_data(purchase),
            "amount": {"amount": format_amount(amount), "currency": purchase.currency},
            "pointsClawedBack": clawback.recovered,
        },
    )
    return RefundResult(purchase=purchase, points_clawed_back=clawback.recovered)


async def _lock(session: AsyncSession, purchase_id: int) -> tuple[Member, Purchase]:
    """The member, then the purchase, locked in that order (as every points change locks)."""
    found = await session.get(Purchase, purchase_id)
    if found is None:
        raise not_found("Purchase", "purchaseId")
    member = await members.lock_member(session, member_id=found.member_id)
    purchase = await lock_by_id(session, Purchase, purchase_id, field="purchaseId")
    if purchase.status == PurchaseStatus.REFUNDED:
        raise DomainError(
            ErrorCode.ALREADY_REFUNDED, "The purchase is already fully refunded.", ["purchaseId"]
        )
    return member, purchase


async def _clawback(
    session: AsyncSession, *, member: Member, purchase: Purchase, refunded: Decimal
) -> _Clawback:
    """What the purchase owes back once ``refunded`` is refunded in all, less what earlier
    refunds took, and the base points that stop counting toward tiers."""
    total = purchase.total_amount
    target = _share(purchase.points_awarded, refunded, total) - purchase.points_refunded
    base = _base_points(purchase)
    from_pending = min(target, await _pending_of(session, purchase.id))
    return _Clawback(
        target=target,
        qualifying=_share(base, refunded, total) - _share(base, purchase.refunded_amount, total),
        from_pending=from_pending,
        from_available=min(target - from_pending, member.points_available),
    )


async def _book(
    session: AsyncSession, *, purchase: Purchase, amount: Decimal, clawback: _Clawback
) -> None:
    """Record the refund on the purchase and free what its rule awards held."""
    session.add(PurchaseRefund(purchase_id=purchase.id, amount=amount, created_at=utcnow()))
    purchase.refunded_amount += amount
    purchase.points_refunded += clawback.target
    purchase.points_unrecovered += clawback.unrecovered
    if purchase.points_awarded:
        await awarding.release_for_refund(
            session,
            purchase_id=purchase.id,
            member_id=purchase.member_id,
            awarded_for=purchase.occurred_at,
            points_recovered=purchase.points_refunded - purchase.points_unrecovered,
            points_awarded=purchase.points_awarded,
            now=utcnow(),
        )
    purchase.status = (
        PurchaseStatus.REFUNDED
        if purchase.refunded_amount == purchase.total_amount
        else PurchaseStatus.PARTIALLY_REFUNDED
    )
    await session.flush()


def _base_points(purchase: Purchase) -> int:
    """The purchase's base points: what counted for tiers (earning-rule bonuses do not)."""
    if purchase.points_breakdown is None:
        return purchase.points_awarded
    return sum(item["points"] for item in purchase.points_breakdown if item["rule_id"] is None)


def _share(points: int, refunded: Decimal, total: Decimal) -> int:
    return int((points * refunded / total).to_integral_value(rounding=ROUND_FLOOR))


async def _pending_of(session: AsyncSession, purchase_id: int) -> int:
    total = await session.scalar(
        select(func.coalesce(func.sum(PointLot.remaining), 0)).where(
            PointLot.purchase_id == purchase_id, PointLot.state == LotState.PENDING
        )
    )
    return int(total or 0)


_REFUND_PURCHASE = idempotency.returning("refundPurchase", RefundResult, purchase=REPORTED_PURCHASE)
