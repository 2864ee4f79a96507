"""The Purchase type, recordPurchase, refundPurchase and previewPurchase (the till's "you will
earn" line)."""

from datetime import datetime
from decimal import Decimal
from typing import Annotated, Any

import strawberry
from strawberry import Parent

from loyalty.errors import DomainError
from loyalty.graphql.errors import Payload, UserError, mutate
from loyalty.graphql.members import Channel, Member
from loyalty.graphql.permissions import CanPreview, IsStaff, OwnMember
from loyalty.graphql.program import Money
from loyalty.graphql.rule_types import PointsBreakdownItem, breakdown_items
from loyalty.graphql.scalars import DecimalString
from loyalty.ids import encode_id, key_or_zero
from loyalty.money import format_amount
from loyalty.purchases import refunds
from loyalty.purchases import service as purchases
from loyalty.purchases.models import Purchase as PurchaseRow
from loyalty.purchases.models import PurchaseStatus as DomainPurchaseStatus

PurchaseStatus = DomainPurchaseStatus
strawberry.enum(
    PurchaseStatus,
    name="PurchaseStatus",
    description="How much of a purchase has been refunded: none, part or all of its total.",
)


@strawberry.type(description="A basket line as the till sent it; earning rules match on it.")
class PurchaseLine:
    sku: str | None = strawberry.field(description="The product's SKU; null if not sent.")
    category: str | None = strawberry.field(description="The product's category; null if not sent.")
    quantity: int = strawberry.field(description="Units bought.")
    unit_price: Money | None = strawberry.field(description="Price of one unit; null if not sent.")


@strawberry.type(description="A receipt points were earned on, recorded with recordPurchase.")
class Purchase:
    order_id: str = strawberry.field(
        description="Your order or receipt number; unique across the program."
    )
    channel: Channel = strawberry.field(description="Where it was bought.")
    store_id: str | None = strawberry.field(description="Your store identifier; null if not sent.")
    occurred_at: datetime = strawberry.field(
        description="When it was bought; earning used the tier and rules in force then."
    )
    created_at: datetime = strawberry.field(description="When it was recorded.")
    points_awarded: int = strawberry.field(
        description="Points it earned: base points plus earning-rule bonuses."
    )
    points_refunded: int = strawberry.field(
        description="Points refunds took back, including any the member no longer had."
    )
    points_unrecovered: int = strawberry.field(
        description="Clawback the member no longer had the points for."
    )
    status: PurchaseStatus = strawberry.field(description="Whether it has been refunded.")

    @strawberry.field(description="Total refunded so far, over all refunds.")
    def refunded(self, root: Parent[PurchaseRow]) -> Money:
        return Money(
            amount=DecimalString(format_amount(root.refunded_amount)), currency=root.currency
        )

    @strawberry.field(description="Opaque identifier of the purchase; use it as purchaseId.")
    def id(self, root: Parent[PurchaseRow]) -> strawberry.ID:
        return strawberry.ID(encode_id("Purchase", root.id))

    @strawberry.field(description="The amount paid, in the program's currency.")
    def total(self, root: Parent[PurchaseRow]) -> Money:
        return Money(amount=DecimalString(format_amount(root.total_amount)), currency=root.currency)

    @strawberry.field(
        description="Base points and each earning rule's points; they add up to pointsAwarded."
    )
    def points_breakdown(self, root: Parent[PurchaseRow]) -> list[PointsBreakdownItem]:
        return breakdown_items(
            root.points_breakdown or [{"rule_id": None, "points": root.points_awarded}]
        )

    @strawberry.field(description="The basket lines sent with it, in order; empty if none.")
    def lines(self, root: Parent[PurchaseRow]) -> list[PurchaseLine]:
        return [
            PurchaseLine(
                sku=line["sku"],
                category=line["category"],
                quantity=line["quantity"],
                unit_price=(
                    None
                    if line["unit_price"] is None
                    else Money(
                        amount=DecimalString(format_amount(Decimal(line["unit_price"]))),
                        currency=root.currency,
                    )
                ),
            )
            for line in root.lines
        ]

    @strawberry.field(description="Who earned the points.")
    async def member(self, root: Parent[PurchaseRow], info: strawberry.Info) -> Member:
        return await info.context.loaders.member.load(root.member_id)


@strawberry.input(description="An amount of money: a decimal string, never a float.")
class MoneyInput:
    amount: DecimalString = strawberry.field(
        description='Positive, in the major unit, such as "12.50".'
    )
    currency: str = strawberry.field(
        description="ISO 4217 code; must be the program's currency (CURRENCY_NOT_SUPPORTED)."
    )


@strawberry.input(description="A basket line; earning rules on SKUs or categories match on it.")
class PurchaseLineInput:
    sku: str | None = strawberry.field(
        default=None, description="The product's SKU, up to 64 characters."
    )
    category: str | None = strawberry.field(
        default=None, description="The product's category, up to 64 characters."
    )
    quantity: int = strawberry.field(default=1, description="Units bought, 1 to 1000000.")
    unit_price: MoneyInput | None = strawberry.field(
        default=None,
        description="Price of one unit; rules on SKUs or categories earn on quantity × it.",
    )


@strawberry.input(description="recordPurchase's input without idempotencyKey.")
class PreviewPurchaseInput:
    order_id: str = strawberry.field(
        description="Your order or receipt number, up to 128 characters; unique in the program."
    )
    channel: Channel = strawberry.field(description="Where it was bought.")
    total: MoneyInput = strawberry.field(
        description="The amount paid, in the program's currency: base points are earned on it."
    )
    member_id: strawberry.ID | None = strawberry.field(
        default=None, description="The member; give exactly one of memberId and memberExternalId."
    )
    member_external_id: str | None = strawberry.field(
        default=None, description="The member by your identifier (a scanned card), instead."
    )
    store_id: str | None = strawberry.field(
        default=None, description="Your store identifier, up to 64 characters."
    )
    lines: list[PurchaseLineInput] | None = strawberry.field(
        default=None, description="The basket, at most 500 lines; only rules on lines need it."
    )
    occurred_at: datetime | None = strawberry.field(
        default=None,
        description=(
            "When it was bought, with its offset; omitted: now. At most 5 minutes ahead and "
            "the program's maxBackdateDays back."
        ),
    )


@strawberry.input(description="A receipt to earn points on.")
class RecordPurchaseInput(PreviewPurchaseInput):
    idempotency_key: str = strawberry.field(
        description="Your unique key for this receipt: a retry with it records nothing twice."
    )


@strawberry.type(description="The result of recordPurchase.")
class RecordPurchasePayload(Payload):
    purchase: Purchase | None = strawberry.field(default=None, description="The recorded purchase.")
    points_awarded: int | None = strawberry.field(
        default=None, description="Points it earned (pending if the program has pendingDays)."
    )
    member: Member | None = strawberry.field(
        default=None, description="The member with the new balances."
    )


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


@strawberry.input(description="A full or partial refund of a recorded purchase.")
class RefundPurchaseInput:
    idempotency_key: str = strawberry.field(
        description="Your unique key for this refund: a retry with it takes nothing twice."
    )
    purchase_id: strawberry.ID = strawberry.field(description="The purchase refunded.")
    amount: MoneyInput = strawberry.field(description="This refund; refunds add up.")


@strawberry.type(description="The result of refundPurchase.")
class RefundPurchasePayload(Payload):
    purchase: Purchase | None = strawberry.field(
        default=None, description="The purchase with its refunded amount and status."
    )
    points_clawed_back: int | None = strawberry.field(
        default=None, description="Points this refund took from the member."
    )


@strawberry.type(description="The result of previewPurchase: what the purchase would earn.")
class PreviewPurchasePayload(Payload):
    points_awarded: int | None = strawberry.field(
        default=None, description="Points recordPurchase would award now."
    )
    points_breakdown: list[PointsBreakdownItem] | None = strawberry.field(
        default=None, description="Base points, then each rule's points, in chain order."
    )


def _member_named(arguments: dict[str, Any]) -> str | None:
    """The member a preview names; one named by externalId is not a member token's own (checked
    before any lookup, so a member token learns nothing of other members)."""
    given: PreviewPurchaseInput = arguments["input"]
    return None if given.member_external_id is not None else given.member_id


@strawberry.type
class PurchaseQueries:
    @strawberry.field(
        permission_classes=[CanPreview],
        extensions=[OwnMember(_member_named)],
        description=(
            "What recordPurchase would award now, writing nothing: the till's \"you will "
            'earn" line. Admin and POS; a member token for itself.'
        ),
    )
    async def preview_purchase(
        self,
        info: strawberry.Info,
        input: Annotated[
            PreviewPurchaseInput,
            strawberry.argument(description="The receipt as it would be recorded."),
        ],
    ) -> PreviewPurchasePayload:
        purchase = purchase_in(input)
        try:
            quote = await info.context.read(
                lambda session: purchases.preview_purchase(session, purchase=purchase)
            )
        except DomainError as error:
            return PreviewPurchasePayload(errors=[UserError.of(each) for each in error.each()])
        return PreviewPurchasePayload(
            errors=[],
            points_awarded=quote.total,
            points_breakdown=breakdown_items(quote.breakdown()),
        )


@strawberry.type
class PurchaseMutations:
    @strawberry.mutation(
        permission_classes=[IsStaff],
        description=(
            "Record a receipt and award its points. Admin and POS; idempotent per "
            "idempotencyKey, and an orderId already recorded is ALREADY_EXISTS."
        ),
    )
    async def record_purchase(
        self,
        info: strawberry.Info,
        input: Annotated[
            RecordPurchaseInput,
            strawberry.argument(description="The receipt and the member it belongs to."),
        ],
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
        description=(
            "Take back what the purchase earned, in proportion to the amount refunded. Admin and "
            "POS; idempotent per idempotencyKey; refunds add up, and over-refunding is INVALID."
        ),
    )
    async def refund_purchase(
        self,
        info: strawberry.Info,
        input: Annotated[
            RefundPurchaseInput, strawberry.argument(description="The purchase and the amount.")
        ],
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
