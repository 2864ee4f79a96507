"""The LedgerEntry type, adjustPoints and the liability report."""

from datetime import datetime
from enum import StrEnum
from typing import Annotated

import strawberry
from strawberry import Parent

from loyalty.db import utcnow
from loyalty.graphql.errors import Payload, mutate
from loyalty.graphql.members import Member
from loyalty.graphql.permissions import IsAdmin
from loyalty.graphql.purchases import Purchase
from loyalty.graphql.rewards import Redemption
from loyalty.graphql.rule_types import EarningRule
from loyalty.graphql.tiers import Tier
from loyalty.ids import encode_id, key_or_zero
from loyalty.ledger import adjustments, balances
from loyalty.ledger import service as ledger
from loyalty.ledger.models import Account
from loyalty.ledger.models import EntryKind as DomainEntryKind
from loyalty.validation import instant

LedgerEntryKind = DomainEntryKind
strawberry.enum(
    LedgerEntryKind,
    name="LedgerEntryKind",
    description=(
        "Why points moved: EARN (purchase base points), BONUS (earning rules, events, "
        "referrals), REDEEM, REDEMPTION_CANCEL, REFUND_CLAWBACK, EXPIRE, ADJUST (admin) and "
        "RELEASE (pending points becoming available) and FORFEIT (what an erased member still "
        "held)."
    ),
)


@strawberry.enum(description="The member balance a ledger entry posts to.")
class PointsBucket(StrEnum):
    AVAILABLE = "AVAILABLE"
    PENDING = "PENDING"


@strawberry.type(
    description=(
        "One posting to a member's points: the ledger is append-only, so corrections are "
        "new entries."
    )
)
class LedgerEntry:
    kind: LedgerEntryKind = strawberry.field(description="Why the points moved.")
    points: int = strawberry.field(description="Signed: credits are positive, debits negative.")
    balance_after: int | None = strawberry.field(
        description="The running balance of the bucket this entry posts to, after it."
    )
    occurred_at: datetime = strawberry.field(
        description="When the movement took effect, such as the purchase's occurredAt."
    )
    created_at: datetime = strawberry.field(description="When it was written.")
    reason: str | None = strawberry.field(
        description=(
            "A readable note: an adjustment's reason, the reward's name, a bonus's source; "
            "may be null."
        )
    )

    @strawberry.field(description="Opaque identifier of the entry.")
    def id(self, root: Parent[ledger.EntryView]) -> strawberry.ID:
        return strawberry.ID(encode_id("LedgerEntry", root.id))

    @strawberry.field(description="Which balance it moves: available or pending points.")
    def bucket(self, root: Parent[ledger.EntryView]) -> PointsBucket:
        if root.account == Account.MEMBER_PENDING:
            return PointsBucket.PENDING
        return PointsBucket.AVAILABLE

    @strawberry.field(description="The purchase it came from; null when none.")
    async def purchase(
        self, root: Parent[ledger.EntryView], info: strawberry.Info
    ) -> Purchase | None:
        if root.purchase_id is None:
            return None
        return await info.context.loaders.purchase.load(root.purchase_id)

    @strawberry.field(description="The redemption it came from; null when none.")
    async def redemption(
        self, root: Parent[ledger.EntryView], info: strawberry.Info
    ) -> Redemption | None:
        if root.redemption_id is None:
            return None
        return await info.context.loaders.redemption.load(root.redemption_id)

    @strawberry.field(description="The earning rule a BONUS entry came from (null otherwise).")
    async def earning_rule(
        self, root: Parent[ledger.EntryView], info: strawberry.Info
    ) -> EarningRule | None:
        if root.kind != DomainEntryKind.BONUS:
            return None
        rule_id = await info.context.loaders.rule_of_entry.load(root.id)
        if rule_id is None:
            return None
        return await info.context.loaders.earning_rule.load(rule_id)


@strawberry.input(description="A manual correction of a member's available points.")
class AdjustPointsInput:
    idempotency_key: str = strawberry.field(
        description="Your unique key for this adjustment: a retry with it writes nothing twice."
    )
    member_id: strawberry.ID = strawberry.field(description="The member to credit or debit.")
    points: int = strawberry.field(description="Signed: positive credits, negative debits.")
    reason: str = strawberry.field(
        description="Why, for the ledger and the member's history; required."
    )
    qualifying: bool = strawberry.field(
        default=False, description="Count a credit toward tier qualification."
    )


@strawberry.type(description="The result of adjustPoints.")
class AdjustPointsPayload(Payload):
    entry: LedgerEntry | None = strawberry.field(
        default=None, description="The ADJUST ledger entry written."
    )
    member: Member | None = strawberry.field(
        default=None, description="The member with the new balances."
    )


@strawberry.type(description="Outstanding points of the members who held one tier at the instant.")
class LiabilityByTier:
    tier: Tier | None = strawberry.field(
        description="The tier; null for members without one (or whose tier was deleted)."
    )
    members: int = strawberry.field(description="Members counted in this line.")
    available: int = strawberry.field(description="Their available points.")
    pending: int = strawberry.field(description="Their pending points.")
    total: int = strawberry.field(description="available + pending.")


@strawberry.type(
    description="Points the program owes its members at an instant, for finance. Admin only."
)
class PointsLiability:
    as_of: datetime = strawberry.field(description="The instant the figures hold for.")
    members: int = strawberry.field(description="Members counted, over all tiers.")
    available: int = strawberry.field(description="Available points of all members.")
    pending: int = strawberry.field(description="Pending points of all members.")
    total: int = strawberry.field(description="Outstanding points: available + pending.")
    by_tier: list[LiabilityByTier] = strawberry.field(
        description="The same figures by the tier each member held at the instant."
    )


@strawberry.type
class LedgerQueries:
    @strawberry.field(
        permission_classes=[IsAdmin],
        description=(
            "Outstanding points at an instant (default now), replayed from the ledger. Admin only."
        ),
        graphql_type=PointsLiability,
    )
    async def points_liability(
        self,
        info: strawberry.Info,
        as_of: Annotated[
            datetime | None,
            strawberry.argument(description="The instant, with its offset; omitted: now."),
        ] = None,
    ) -> balances.Liability:
        at = as_of or utcnow()
        instant(at, "asOf")
        return await info.context.read(lambda session: balances.liability(session, as_of=at))


@strawberry.type
class LedgerMutations:
    @strawberry.mutation(
        permission_classes=[IsAdmin],
        description=(
            "Credit or debit a member's available points by hand (goodwill, corrections). "
            "Admin only; idempotent per idempotencyKey."
        ),
    )
    async def adjust_points(
        self,
        info: strawberry.Info,
        input: Annotated[
            AdjustPointsInput, strawberry.argument(description="The member, points and reason.")
        ],
    ) -> AdjustPointsPayload:
        adjustment = adjustments.AdjustmentIn(
            member_id=key_or_zero("Member", input.member_id),
            points=input.points,
            reason=input.reason,
            qualifying=input.qualifying,
        )
        return await mutate(
            info,
            AdjustPointsPayload,
            lambda session: adjustments.adjust_points(
                session,
                scope=info.context.principal.scope,
                idempotency_key=input.idempotency_key,
                adjustment=adjustment,
            ),
            lambda result: {"entry": result.entry, "member": result.member},
        )
