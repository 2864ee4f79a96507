"""recordPurchase."""

from datetime import datetime

import strawberry

from loyalty.graphql.errors import UserError, mutate
from loyalty.graphql.permissions import IsStaff
from loyalty.graphql.scalars import DecimalString
from loyalty.graphql.types import Channel, Member, Purchase
from loyalty.ids import key_or_zero
from loyalty.purchases import refunds
from loyalty.purchases import service as purchases


@strawberry.input
class MoneyInput:
    amount: DecimalString
    currency: str


@strawberry.input
class PurchaseLineInput:
    sku: str | None = None
    category: str | None = None
    quantity: int = 1
    unit_price: MoneyInput | None = None


@strawberry.input(description="recordPurchase's input without idempotencyKey.")
class PreviewPurchaseInput:
    order_id: str
    channel: Channel
    total: MoneyInput
    member_id: strawberry.ID | None = None
    member_external_id: str | None = None
    store_id: str | None = None
    lines: list[PurchaseLineInput] | None = None
    occurred_at: datetime | None = None


@strawberry.input
class RecordPurchaseInput(PreviewPurchaseInput):
    idempotency_key: str


@strawberry.type
class RecordPurchasePayload:
    errors: list[UserError]
    purchase: Purchase | None = None
    points_awarded: int | None = None
    member: Member | None = None


def money_in(money: MoneyInput) -> purchases.MoneyIn:
    return purchases.MoneyIn(amount=money.amount, currency=money.currency)


def purchase_in(input: PreviewPurchaseInput) -> purchases.PurchaseIn:
    return purchases.PurchaseIn(
        order_id=input.order_id,
        channel=input.channel,
        total=money_in(input.total),
        member_id=None if input.member_id is None else key_or_zero("Member", input.member_id),
        member_external_id=input.member_external_id,
        store_id=input.store_id,
        lines=[
            purchases.LineIn(
                sku=line.sku,
                category=line.category,
                quantity=line.quantity,
                unit_price=None if line.unit_price is None else money_in(line.unit_price),
            )
            for line in input.lines or []
        ],
        occurred_at=input.occurred_at,
    )


@strawberry.input
class RefundPurchaseInput:
    idempotency_key: str
    purchase_id: strawberry.ID
    amount: MoneyInput = strawberry.field(description="This refund; refunds add up.")


@strawberry.type
class RefundPurchasePayload:
    errors: list[UserError]
    purchase: Purchase | None = None
    points_clawed_back: int | None = strawberry.field(
        default=None, description="Points this refund took from the member."
    )


@strawberry.type
class PurchaseMutations:
    @strawberry.mutation(permission_classes=[IsStaff])
    async def record_purchase(
        self, info: strawberry.Info, input: RecordPurchaseInput
    ) -> RecordPurchasePayload:
        purchase = purchase_in(input)
        return await mutate(
            info,
            RecordPurchasePayload,
            lambda session: purchases.record_purchase(
                session,
                scope=info.context.principal.scope,
                idempotency_key=input.idempotency_key,
                purchase=purchase,
            ),
            lambda result: {
                "purchase": result.purchase,
                "points_awarded": result.points_awarded,
                "member": result.member,
            },
        )

    @strawberry.mutation(
        permission_classes=[IsStaff],
        description="Take back what the purchase earned, in proportion to the amount refunded.",
    )
    async def refund_purchase(
        self, info: strawberry.Info, input: RefundPurchaseInput
    ) -> RefundPurchasePayload:
        refund = refunds.RefundIn(
            purchase_id=key_or_zero("Purchase", input.purchase_id), amount=money_in(input.amount)
        )
        return await mutate(
            info,
            RefundPurchasePayload,
            lambda session: refunds.refund_purchase(
                session,
                scope=info.context.principal.scope,
                idempotency_key=input.idempotency_key,
                refund=refund,
            ),
            lambda result: {
                "purchase": result.purchase,
                "points_clawed_back": result.points_clawed_back,
            },
        )
