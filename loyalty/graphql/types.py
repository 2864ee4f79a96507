"""GraphQL object types. Resolvers read ORM rows and service views; they never write."""

from datetime import date, datetime
from decimal import Decimal
from enum import StrEnum
from typing import Optional

import strawberry
from strawberry import Parent
from strawberry.scalars import JSON

from loyalty.errors import invalid
from loyalty.events.models import MemberEvent as MemberEventRow
from loyalty.graphql.errors import ErrorCode
from loyalty.graphql.pagination import Connection, to_connection
from loyalty.graphql.permissions import IsAdmin
from loyalty.graphql.rule_types import EarningRule, PointsBreakdownItem, breakdown_items
from loyalty.graphql.scalars import DecimalString
from loyalty.ids import encode_id
from loyalty.ledger import balances
from loyalty.ledger import service as ledger
from loyalty.ledger.models import Account
from loyalty.ledger.models import EntryKind as DomainEntryKind
from loyalty.members.models import Channel as DomainChannel
from loyalty.members.models import Member as MemberRow
from loyalty.members.models import MemberStatus as DomainMemberStatus
from loyalty.money import format_amount, plain
from loyalty.pagination import page_request
from loyalty.program.models import Program as ProgramRow
from loyalty.purchases.models import Purchase as PurchaseRow
from loyalty.purchases.models import PurchaseStatus as DomainPurchaseStatus
from loyalty.referrals import service as referrals
from loyalty.referrals.models import Referral as ReferralRow
from loyalty.rewards import service as rewards
from loyalty.rewards.models import Redemption as RedemptionRow
from loyalty.rewards.models import RedemptionStatus as DomainRedemptionStatus
from loyalty.rewards.models import RewardKind as DomainRewardKind
from loyalty.tiers.models import Tier as TierRow
from loyalty.tiers.models import TierChange as TierChangeRow
from loyalty.tiers.models import TierChangeReason as DomainTierChangeReason
from loyalty.validation import instant

MemberStatus = strawberry.enum(DomainMemberStatus, name="MemberStatus")
Channel = strawberry.enum(DomainChannel, name="Channel")
LedgerEntryKind = strawberry.enum(DomainEntryKind, name="LedgerEntryKind")
PurchaseStatus = strawberry.enum(DomainPurchaseStatus, name="PurchaseStatus")
RewardKind = strawberry.enum(DomainRewardKind, name="RewardKind")
RedemptionStatus = strawberry.enum(DomainRedemptionStatus, name="RedemptionStatus")


@strawberry.enum(description="The member balance a ledger entry posts to.")
class PointsBucket(StrEnum):
    AVAILABLE = "AVAILABLE"
    PENDING = "PENDING"


@strawberry.type
class Money:
    amount: DecimalString
    currency: str


@strawberry.type
class Program:
    name: str
    currency: str
    pending_days: int
    points_expire_after_days: int | None
    tier_window_days: int
    time_zone: str = strawberry.field(
        description="Where days, weeks and hours are counted (rules, caps, birthdays)."
    )
    max_backdate_days: int = strawberry.field(
        description="How far back a purchase's occurredAt may lie."
    )
    referrer_points: int = strawberry.field(
        description="What a referrer earns when a referee's first purchase earns points."
    )
    referee_points: int = strawberry.field(
        description="What the referee earns on that first purchase, on top of its points."
    )
    referral_limit: int | None = strawberry.field(
        description="Referrals rewarded per referrer (null: no limit)."
    )

    @strawberry.field(description="Points earned per 1.00 of the program's currency.")
    def points_per_unit(self, root: Parent[ProgramRow]) -> DecimalString:
        return DecimalString(plain(root.points_per_unit))


@strawberry.type
class Tier:
    name: str
    rank: int
    threshold: int = strawberry.field(
        description="Qualifying points within the program's tier window that reach this tier."
    )
    benefits: list[str]
    retention_days: int = strawberry.field(
        description="How long a member keeps the tier after falling below its threshold."
    )

    @strawberry.field
    def id(self, root: Parent[TierRow]) -> strawberry.ID:
        return strawberry.ID(encode_id("Tier", root.id))

    @strawberry.field(description="Applied to points earned from purchases.")
    def multiplier(self, root: Parent[TierRow]) -> DecimalString:
        return DecimalString(plain(root.multiplier))


@strawberry.type
class TierProgress:
    current: Tier | None
    next: Tier | None
    qualifying_points: int
    points_to_next: int | None
    window_starts_at: datetime
    window_ends_at: datetime | None = strawberry.field(
        description="When the oldest points counted now leave the rolling window."
    )


TierChangeReason = strawberry.enum(DomainTierChangeReason, name="TierChangeReason")


@strawberry.type
class TierChange:
    from_name: str | None
    to_name: str | None
    reason: TierChangeReason
    qualifying_points: int | None
    note: str | None
    at: datetime

    @strawberry.field(name="from")
    async def from_tier(self, root: Parent[TierChangeRow], info: strawberry.Info) -> Tier | None:
        if root.from_tier_id is None:
            return None
        return await info.context.loaders.tier.load(root.from_tier_id)

    @strawberry.field
    async def to(self, root: Parent[TierChangeRow], info: strawberry.Info) -> Tier | None:
        if root.to_tier_id is None:
            return None
        return await info.context.loaders.tier.load(root.to_tier_id)


@strawberry.type
class Points:
    available: int
    pending: int
    lifetime_earned: int
    redeemed: int
    expired: int
    member_id: strawberry.Private[int]

    @strawberry.field(description="Available points that expire within this many days.")
    async def expiring_soon(self, info: strawberry.Info, days: int = 30) -> int:
        if not 0 <= days <= 3650:
            raise invalid("days must be between 0 and 3650.", "days")
        return await info.context.loaders.expiring_soon.load((self.member_id, days))


@strawberry.type
class PointBalances:
    available: int
    pending: int
    lifetime_earned: int
    redeemed: int
    expired: int


@strawberry.type
class PendingRelease:
    amount: int
    releases_at: datetime


@strawberry.type
class ExpiringPoints:
    amount: int
    expires_at: datetime


@strawberry.type
class Member:
    external_id: str
    email: str | None
    phone: str | None
    first_name: str | None
    last_name: str | None
    status: MemberStatus
    enrolled_at: datetime

    @strawberry.field
    def id(self, root: Parent[MemberRow]) -> strawberry.ID:
        return strawberry.ID(encode_id("Member", root.id))

    @strawberry.field
    def points(self, root: Parent[MemberRow]) -> Points:
        return Points(
            available=root.points_available,
            pending=root.points_pending,
            lifetime_earned=root.lifetime_earned,
            redeemed=root.points_redeemed,
            expired=root.points_expired,
            member_id=root.id,
        )

    @strawberry.field(description="Pending points and when they become available.")
    async def pending_releases(
        self, root: Parent[MemberRow], info: strawberry.Info
    ) -> list[PendingRelease]:
        scheduled = await info.context.loaders.pending_releases.load((root.id, None))
        return [PendingRelease(amount=s.amount, releases_at=s.at) for s in scheduled]

    @strawberry.field(description="Available points by expiry date, soonest first.")
    async def expiring_points(
        self, root: Parent[MemberRow], info: strawberry.Info, first: int = 10
    ) -> list[ExpiringPoints]:
        if not 1 <= first <= info.context.settings.page_size_max:
            raise invalid("first must be between 1 and the page size limit.", "first")
        scheduled = await info.context.loaders.expiring_points.load((root.id, first))
        return [ExpiringPoints(amount=s.amount, expires_at=s.at) for s in scheduled]

    @strawberry.field(description="The member's balances at an instant, replayed from the ledger.")
    async def points_as_of(
        self, root: Parent[MemberRow], info: strawberry.Info, at: datetime
    ) -> PointBalances:
        instant(at, "at")
        found = await info.context.read(
            lambda session: balances.points_as_of(session, member_id=root.id, at=at)
        )
        return PointBalances(
            available=found.available,
            pending=found.pending,
            lifetime_earned=found.lifetime_earned,
            redeemed=found.redeemed,
            expired=found.expired,
        )

    @strawberry.field
    async def tier(self, root: Parent[MemberRow], info: strawberry.Info) -> Tier | None:
        if root.tier_id is None:
            return None
        return await info.context.loaders.tier.load(root.tier_id)

    @strawberry.field(description="Where the member stands in the tier ladder.")
    async def tier_progress(self, root: Parent[MemberRow], info: strawberry.Info) -> TierProgress:
        progress = await info.context.loaders.tier_progress.load(root)
        return TierProgress(
            current=progress.current,
            next=progress.next,
            qualifying_points=progress.qualifying_points,
            points_to_next=progress.points_to_next,
            window_starts_at=progress.window_starts_at,
            window_ends_at=progress.window_ends_at,
        )

    @strawberry.field(
        description="When the current tier is lost if the member earns nothing more (null: never)."
    )
    async def tier_expires_at(
        self, root: Parent[MemberRow], info: strawberry.Info
    ) -> datetime | None:
        progress = await info.context.loaders.tier_progress.load(root)
        return progress.tier_expires_at

    @strawberry.field(description="The member's tier changes, newest first.")
    async def tier_history(
        self,
        root: Parent[MemberRow],
        info: strawberry.Info,
        first: int | None = None,
        after: str | None = None,
    ) -> Connection[TierChange]:
        request = page_request(first, after, max_size=info.context.settings.page_size_max)
        page = await info.context.loaders.tier_history.load((root.id, request))
        return to_connection(page, after_given=after is not None)

    @strawberry.field(description="The member's ledger entries, newest first.")
    async def ledger(
        self,
        root: Parent[MemberRow],
        info: strawberry.Info,
        first: int | None = None,
        after: str | None = None,
    ) -> Connection["LedgerEntry"]:
        request = page_request(first, after, max_size=info.context.settings.page_size_max)
        page = await info.context.loaders.ledger.load((root.id, request))
        return to_connection(page, after_given=after is not None)

    @strawberry.field(description="The member's purchases, newest first.")
    async def purchases(
        self,
        root: Parent[MemberRow],
        info: strawberry.Info,
        first: int | None = None,
        after: str | None = None,
    ) -> Connection["Purchase"]:
        request = page_request(first, after, max_size=info.context.settings.page_size_max)
        page = await info.context.loaders.purchases.load((root.id, request))
        return to_connection(page, after_given=after is not None)

    @strawberry.field(description="Share it: a friend enrolling with it becomes a referral.")
    def referral_code(self, root: Parent[MemberRow]) -> str | None:
        return root.referral_code

    @strawberry.field
    def date_of_birth(self, root: Parent[MemberRow]) -> date | None:
        return root.date_of_birth

    @strawberry.field(description="How many members enrolled with this member's code.")
    async def referral_counts(
        self, root: Parent[MemberRow], info: strawberry.Info
    ) -> "ReferralCounts":
        enrolled, rewarded = await info.context.loaders.referral_counts.load((root.id, None))
        return ReferralCounts(enrolled=enrolled, rewarded=rewarded)

    @strawberry.field(
        permission_classes=[IsAdmin],
        description="The members this member referred, newest first (admin).",
    )
    async def referrals(
        self,
        root: Parent[MemberRow],
        info: strawberry.Info,
        first: int | None = None,
        after: str | None = None,
    ) -> Connection["Referral"]:
        request = page_request(first, after, max_size=info.context.settings.page_size_max)
        page = await info.context.read(
            lambda session: referrals.referrals_of(session, referrer_id=root.id, page=request)
        )
        return to_connection(page, after_given=after is not None)

    @strawberry.field(permission_classes=[IsAdmin], description="Who referred this member (admin).")
    async def referred_by(
        self, root: Parent[MemberRow], info: strawberry.Info
    ) -> Optional["Referral"]:
        return await info.context.read(
            lambda session: referrals.referral_of(session, referee_id=root.id)
        )

    @strawberry.field(description="The member's recorded events, newest first.")
    async def events(
        self,
        root: Parent[MemberRow],
        info: strawberry.Info,
        first: int | None = None,
        after: str | None = None,
    ) -> Connection["MemberEvent"]:
        request = page_request(first, after, max_size=info.context.settings.page_size_max)
        page = await info.context.loaders.events.load((root.id, request))
        return to_connection(page, after_given=after is not None)

    @strawberry.field(description="The member's redemptions, newest first.")
    async def redemptions(
        self,
        root: Parent[MemberRow],
        info: strawberry.Info,
        first: int | None = None,
        after: str | None = None,
    ) -> Connection["Redemption"]:
        request = page_request(first, after, max_size=info.context.settings.page_size_max)
        page = await info.context.loaders.redemptions.load((root.id, request))
        return to_connection(page, after_given=after is not None)


@strawberry.type
class ReferralCounts:
    enrolled: int = strawberry.field(description="Members who enrolled with the code.")
    rewarded: int = strawberry.field(description="Of those, referrals rewarded so far.")


@strawberry.type
class Referral:
    created_at: datetime
    rewarded_at: datetime | None = strawberry.field(
        description="When the referee's first purchase that earned points rewarded it."
    )
    referrer_points: int
    referee_points: int

    @strawberry.field
    def id(self, root: Parent[ReferralRow]) -> strawberry.ID:
        return strawberry.ID(encode_id("Referral", root.id))

    @strawberry.field
    async def referrer(self, root: Parent[ReferralRow], info: strawberry.Info) -> Member | None:
        return await info.context.loaders.member.load(root.referrer_id)

    @strawberry.field
    async def referee(self, root: Parent[ReferralRow], info: strawberry.Info) -> Member | None:
        return await info.context.loaders.member.load(root.referee_id)


@strawberry.type
class MemberEvent:
    type: str
    occurred_at: datetime
    created_at: datetime
    points_awarded: int
    attributes: JSON

    @strawberry.field
    def id(self, root: Parent[MemberEventRow]) -> strawberry.ID:
        return strawberry.ID(encode_id("MemberEvent", root.id))


@strawberry.type
class PurchaseLine:
    sku: str | None
    category: str | None
    quantity: int
    unit_price: Money | None


@strawberry.type
class Purchase:
    order_id: str
    channel: Channel
    store_id: str | None
    occurred_at: datetime
    created_at: datetime
    points_awarded: int
    points_refunded: int = strawberry.field(
        description="Points refunds took back, including any the member no longer had."
    )
    points_unrecovered: int = strawberry.field(
        description="Clawback the member no longer had the points for."
    )
    status: PurchaseStatus

    @strawberry.field
    def refunded(self, root: Parent[PurchaseRow]) -> Money:
        return Money(
            amount=DecimalString(format_amount(root.refunded_amount)), currency=root.currency
        )

    @strawberry.field
    def id(self, root: Parent[PurchaseRow]) -> strawberry.ID:
        return strawberry.ID(encode_id("Purchase", root.id))

    @strawberry.field
    def total(self, root: Parent[PurchaseRow]) -> Money:
        return Money(amount=DecimalString(format_amount(root.total_amount)), currency=root.currency)

    @strawberry.field(
        description="Base points and each earning rule's points; they add up to pointsAwarded."
    )
    def points_breakdown(self, root: Parent[PurchaseRow]) -> list[PointsBreakdownItem]:
        return breakdown_items(
            root.points_breakdown or [{"rule_id": None, "points": root.points_awarded}]
        )

    @strawberry.field
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

    @strawberry.field
    async def member(self, root: Parent[PurchaseRow], info: strawberry.Info) -> Member:
        return await info.context.loaders.member.load(root.member_id)


@strawberry.type
class LedgerEntry:
    kind: LedgerEntryKind
    points: int = strawberry.field(description="Signed: credits are positive, debits negative.")
    balance_after: int | None = strawberry.field(
        description="The running balance of the bucket this entry posts to, after it."
    )
    occurred_at: datetime
    created_at: datetime
    reason: str | None

    @strawberry.field
    def id(self, root: Parent[ledger.EntryView]) -> strawberry.ID:
        return strawberry.ID(encode_id("LedgerEntry", root.id))

    @strawberry.field
    def bucket(self, root: Parent[ledger.EntryView]) -> PointsBucket:
        if root.account == Account.MEMBER_PENDING:
            return PointsBucket.PENDING
        return PointsBucket.AVAILABLE

    @strawberry.field
    async def purchase(
        self, root: Parent[ledger.EntryView], info: strawberry.Info
    ) -> Purchase | None:
        if root.purchase_id is None:
            return None
        return await info.context.loaders.purchase.load(root.purchase_id)

    @strawberry.field
    async def redemption(
        self, root: Parent[ledger.EntryView], info: strawberry.Info
    ) -> Optional["Redemption"]:
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


@strawberry.type
class Reward:
    name: str
    description: str | None
    kind: RewardKind
    cost_points: int
    active: bool
    stock: int | None = strawberry.field(description="Units left to issue; null is unlimited.")
    per_member_limit: int | None
    starts_at: datetime | None
    ends_at: datetime | None

    @strawberry.field
    def id(self, root: Parent[rewards.RewardView]) -> strawberry.ID:
        return strawberry.ID(encode_id("Reward", root.reward.id))

    @strawberry.field(description="Channels it can be redeemed in; empty means all.")
    def channels(self, root: Parent[rewards.RewardView]) -> list[Channel]:
        return [DomainChannel(c) for c in root.reward.channels]

    @strawberry.field
    async def min_tier(
        self, root: Parent[rewards.RewardView], info: strawberry.Info
    ) -> Tier | None:
        if root.reward.min_tier_id is None:
            return None
        return await info.context.loaders.tier.load(root.reward.min_tier_id)

    @strawberry.field(
        description="For a member token: why the member cannot redeem this now; null if they can."
    )
    def ineligible_reason(self, root: Parent[rewards.RewardView]) -> ErrorCode | None:
        return None if root.ineligible is None else root.ineligible.code

    @strawberry.field(description="A readable explanation of ineligibleReason.")
    def ineligible_message(self, root: Parent[rewards.RewardView]) -> str | None:
        return None if root.ineligible is None else root.ineligible.message


@strawberry.type
class Redemption:
    points_spent: int
    code: str
    status: RedemptionStatus
    channel: Channel
    created_at: datetime
    used_at: datetime | None
    cancelled_at: datetime | None

    @strawberry.field
    def id(self, root: Parent[RedemptionRow]) -> strawberry.ID:
        return strawberry.ID(encode_id("Redemption", root.id))

    @strawberry.field
    async def reward(self, root: Parent[RedemptionRow], info: strawberry.Info) -> Reward:
        return rewards.RewardView(reward=await info.context.loaders.reward.load(root.reward_id))

    @strawberry.field
    async def member(self, root: Parent[RedemptionRow], info: strawberry.Info) -> Member:
        return await info.context.loaders.member.load(root.member_id)
