"""GraphQL object types. Resolvers read ORM rows and service views; they never write."""

from datetime import date, datetime
from decimal import Decimal
from enum import StrEnum
from typing import Annotated, Optional

import strawberry
from strawberry import Parent
from strawberry.scalars import JSON

from loyalty.errors import invalid
from loyalty.events.models import MemberEvent as MemberEventRow
from loyalty.feedback.models import Feedback as FeedbackRow
from loyalty.feedback.models import FeedbackKind as DomainFeedbackKind
from loyalty.graphql.errors import ErrorCode, UserError
from loyalty.graphql.pagination import After, Connection, First, to_connection
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


def errors_field() -> list[UserError]:
    """A mutation payload's ``errors``, described once for every payload."""
    return strawberry.field(
        description=(
            "Business failures, such as NOT_FOUND or INVALID. Empty on success; otherwise "
            "nothing was written and the other fields are null."
        )
    )


# strawberry.enum registers the domain enum in place; the plain alias stays a type for mypy.
MemberStatus = DomainMemberStatus
strawberry.enum(
    MemberStatus,
    name="MemberStatus",
    description=(
        "ACTIVE members earn and redeem; SUSPENDED, CLOSED and ERASED ones do neither "
        "(MEMBER_INACTIVE); a CLOSED or ERASED member's tokens stop working, and an ERASED "
        "member's personal data is gone (eraseMember)."
    ),
)
Channel = DomainChannel
strawberry.enum(
    Channel,
    name="Channel",
    description="Where a purchase, enrollment or redemption happened: till, web shop or app.",
)
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
PurchaseStatus = DomainPurchaseStatus
strawberry.enum(
    PurchaseStatus,
    name="PurchaseStatus",
    description="How much of a purchase has been refunded: none, part or all of its total.",
)
RewardKind = DomainRewardKind
strawberry.enum(
    RewardKind,
    name="RewardKind",
    description=(
        "Where a redemption's code comes from: GENERATED_CODE draws a fresh unguessable code, "
        "CODE_POOL hands out one of the partner codes uploaded with addRewardCodes."
    ),
)
FeedbackKind = DomainFeedbackKind
strawberry.enum(
    FeedbackKind,
    name="FeedbackKind",
    description="NPS: how likely the member is to recommend the program, 0-10; CSAT: how "
    "satisfied the member is, 1-5.",
)
RedemptionStatus = DomainRedemptionStatus
strawberry.enum(
    RedemptionStatus,
    name="RedemptionStatus",
    description=(
        "ISSUED: the code is valid; USED: markRedemptionUsed consumed it; CANCELLED: "
        "cancelRedemption gave the points back."
    ),
)


@strawberry.enum(description="The member balance a ledger entry posts to.")
class PointsBucket(StrEnum):
    AVAILABLE = "AVAILABLE"
    PENDING = "PENDING"


@strawberry.type(description="An amount of money; exact, never a float.")
class Money:
    amount: DecimalString = strawberry.field(
        description='Decimal string in the currency\'s major unit, such as "12.50".'
    )
    currency: str = strawberry.field(description="ISO 4217 code, such as EUR.")


@strawberry.type(
    description="The loyalty program's settings: one per deployment, changed with updateProgram."
)
class Program:
    name: str = strawberry.field(description="The program's name, as shown to members.")
    currency: str = strawberry.field(
        description="ISO 4217 code every purchase and refund must be in."
    )
    pending_days: int = strawberry.field(
        description=(
            "Days after a purchase's occurredAt before its points become available "
            "(0: at once); refunds in that time take them back first."
        )
    )
    points_expire_after_days: int | None = strawberry.field(
        description="Days after they are earned that points expire; null: they never expire."
    )
    tier_window_days: int = strawberry.field(
        description="Length of the rolling window in which qualifying points count toward tiers."
    )
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
    idempotency_retention_days: int = strawberry.field(
        description=(
            "How long idempotency keys are kept; the retention job deletes older ones, and a "
            "retry after that is treated as a new request."
        )
    )
    expiry_warning_days: int = strawberry.field(
        description=(
            "How many days before they expire points are announced by a points.expiring "
            "event (the warn-expiring job; once per earned lot); 0: never."
        )
    )
    closed_member_retention_days: int | None = strawberry.field(
        description=(
            "Days a CLOSED member's personal data is kept; then the retention job erases it "
            "as eraseMember would. null: kept until eraseMember."
        )
    )

    @strawberry.field(description="Points earned per 1.00 of the program's currency.")
    def points_per_unit(self, root: Parent[ProgramRow]) -> DecimalString:
        return DecimalString(plain(root.points_per_unit))


@strawberry.type(
    description="A status level: reached with qualifying points, it multiplies purchase points."
)
class Tier:
    name: str = strawberry.field(description="Shown to members, such as Gold.")
    rank: int = strawberry.field(
        description="Position in the ladder: higher is better; unique among tiers."
    )
    threshold: int = strawberry.field(
        description="Qualifying points within the program's tier window that reach this tier."
    )
    benefits: list[str] = strawberry.field(
        description="Perks to show members, as the admin wrote them; the API does not apply them."
    )
    retention_days: int = strawberry.field(
        description="How long a member keeps the tier after falling below its threshold."
    )

    @strawberry.field(description="Opaque identifier of the tier.")
    def id(self, root: Parent[TierRow]) -> strawberry.ID:
        return strawberry.ID(encode_id("Tier", root.id))

    @strawberry.field(description="Applied to points earned from purchases.")
    def multiplier(self, root: Parent[TierRow]) -> DecimalString:
        return DecimalString(plain(root.multiplier))


@strawberry.type(description="Where a member stands in the tier ladder now.")
class TierProgress:
    current: Tier | None = strawberry.field(
        description="The tier held now; null when the member holds none."
    )
    next: Tier | None = strawberry.field(
        description="The tier ranked just above the current one; null at the top."
    )
    qualifying_points: int = strawberry.field(
        description="Points that count toward tiers within the rolling window, as of now."
    )
    points_to_next: int | None = strawberry.field(
        description="Qualifying points still needed to reach next (0 if reached); null at the top."
    )
    window_starts_at: datetime = strawberry.field(
        description="Start of the rolling window: qualifying points earned before it do not count."
    )
    window_ends_at: datetime | None = strawberry.field(
        description="When the oldest points counted now leave the rolling window."
    )


TierChangeReason = DomainTierChangeReason
strawberry.enum(
    TierChangeReason,
    name="TierChangeReason",
    description=(
        "QUALIFIED: points reached the tier; EXPIRED: retention ran out below the threshold; "
        "ADMIN: setMemberTier; RULE_CHANGE: the tier was deleted and its members moved."
    ),
)


@strawberry.type(description="One move of a member from one tier to another, kept as history.")
class TierChange:
    from_name: str | None = strawberry.field(
        description="The old tier's name then (kept when the tier is renamed or deleted)."
    )
    to_name: str | None = strawberry.field(
        description="The new tier's name at the time; null when the member was left without one."
    )
    reason: TierChangeReason = strawberry.field(description="Why the tier changed.")
    qualifying_points: int | None = strawberry.field(
        description="Qualifying points when it changed; null for admin and rule changes."
    )
    note: str | None = strawberry.field(
        description="The admin's reason, or what happened (such as a deleted tier)."
    )
    at: datetime = strawberry.field(description="When the change took effect.")

    @strawberry.field(name="from", description="The old tier; null if none or since deleted.")
    async def from_tier(self, root: Parent[TierChangeRow], info: strawberry.Info) -> Tier | None:
        if root.from_tier_id is None:
            return None
        return await info.context.loaders.tier.load(root.from_tier_id)

    @strawberry.field(description="The new tier; null if none or since deleted.")
    async def to(self, root: Parent[TierChangeRow], info: strawberry.Info) -> Tier | None:
        if root.to_tier_id is None:
            return None
        return await info.context.loaders.tier.load(root.to_tier_id)


@strawberry.type(description="A member's point balances now; all are whole points, never negative.")
class Points:
    available: int = strawberry.field(description="What the member can redeem now.")
    pending: int = strawberry.field(
        description="Earned but not yet available (the program's pendingDays); see pendingReleases."
    )
    lifetime_earned: int = strawberry.field(
        description="All earned (base, bonuses, credits by admins) net of refund clawbacks."
    )
    redeemed: int = strawberry.field(description="Spent on rewards, net of cancelled redemptions.")
    expired: int = strawberry.field(description="Lost to expiry.")
    member_id: strawberry.Private[int]

    @strawberry.field(description="Available points that expire within this many days.")
    async def expiring_soon(
        self,
        info: strawberry.Info,
        days: Annotated[
            int, strawberry.argument(description="Look-ahead from now in days, 0 to 3650.")
        ] = 30,
    ) -> int:
        if not 0 <= days <= 3650:
            raise invalid("days must be between 0 and 3650.", "days")
        return await info.context.loaders.expiring_soon.load((self.member_id, days))


@strawberry.type(
    description=(
        "What the member agreed to be sent marketing through; all false until given. Set with "
        "updateMember (the member's own token too)."
    )
)
class MemberConsents:
    marketing_email: bool = strawberry.field(description="Marketing by email.")
    marketing_sms: bool = strawberry.field(description="Marketing by SMS.")
    marketing_push: bool = strawberry.field(description="Marketing by app notifications.")
    updated_at: datetime | None = strawberry.field(
        description="When a consent was last set; null: never."
    )


@strawberry.type(
    description=(
        "A member's RFM scores, 1 (lowest fifth) to 5 (top fifth), among members with a "
        "purchase in the 365 days before computedAt; from the rfm job."
    )
)
class RfmScores:
    recency: int = strawberry.field(description="How recent the last purchase is (5: latest).")
    frequency: int = strawberry.field(description="How many purchases (5: most).")
    monetary: int = strawberry.field(description="How much spent, net of refunds (5: most).")
    computed_at: datetime = strawberry.field(description="The rfm job's now.")


@strawberry.type(description="A member's balances at a past instant, replayed from the ledger.")
class PointBalances:
    available: int = strawberry.field(description="Redeemable at that instant.")
    pending: int = strawberry.field(description="Earned but not yet available at that instant.")
    lifetime_earned: int = strawberry.field(
        description="Earned up to that instant, net of refund clawbacks."
    )
    redeemed: int = strawberry.field(description="Spent on rewards up to that instant, net.")
    expired: int = strawberry.field(description="Lost to expiry up to that instant.")


@strawberry.type(description="Pending points that become available at one instant.")
class PendingRelease:
    amount: int = strawberry.field(description="Points released then.")
    releases_at: datetime = strawberry.field(
        description="When they become available (the release-pending job moves them)."
    )


@strawberry.type(description="Available points that expire at one instant.")
class ExpiringPoints:
    amount: int = strawberry.field(description="Points that expire then unless spent first.")
    expires_at: datetime = strawberry.field(description="When they expire.")


@strawberry.type(
    description=(
        "A loyalty program member. Admin and POS read any member; a member token only its own."
    )
)
class Member:
    external_id: str = strawberry.field(
        description="Your system's identifier for the member (card number, customer id); unique."
    )
    email: str | None = strawberry.field(description="Contact email; null if not given.")
    phone: str | None = strawberry.field(description="Contact phone number; null if not given.")
    first_name: str | None = strawberry.field(description="Given name; null if not given.")
    last_name: str | None = strawberry.field(description="Family name; null if not given.")
    status: MemberStatus = strawberry.field(
        description="Only ACTIVE members earn and redeem points."
    )
    enrolled_at: datetime = strawberry.field(description="When the member enrolled.")

    @strawberry.field(description="Opaque identifier of the member; use it as memberId.")
    def id(self, root: Parent[MemberRow]) -> strawberry.ID:
        return strawberry.ID(encode_id("Member", root.id))

    @strawberry.field(description="The member's balances now.")
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
        self,
        root: Parent[MemberRow],
        info: strawberry.Info,
        first: Annotated[
            int,
            strawberry.argument(
                description="How many expiry dates to list, 1 up to the page size limit."
            ),
        ] = 10,
    ) -> list[ExpiringPoints]:
        if not 1 <= first <= info.context.settings.page_size_max:
            raise invalid("first must be between 1 and the page size limit.", "first")
        scheduled = await info.context.loaders.expiring_points.load((root.id, first))
        return [ExpiringPoints(amount=s.amount, expires_at=s.at) for s in scheduled]

    @strawberry.field(description="The member's balances at an instant, replayed from the ledger.")
    async def points_as_of(
        self,
        root: Parent[MemberRow],
        info: strawberry.Info,
        at: Annotated[
            datetime, strawberry.argument(description="The instant, with its offset (1970-2999).")
        ],
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

    @strawberry.field(description="The tier the member holds now; null when none.")
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
        first: First = None,
        after: After = None,
    ) -> Connection[TierChange]:
        request = page_request(first, after, max_size=info.context.settings.page_size_max)
        page = await info.context.loaders.tier_history.load((root.id, request))
        return to_connection(page, after_given=after is not None)

    @strawberry.field(description="The member's ledger entries, newest first.")
    async def ledger(
        self,
        root: Parent[MemberRow],
        info: strawberry.Info,
        first: First = None,
        after: After = None,
    ) -> Connection["LedgerEntry"]:
        request = page_request(first, after, max_size=info.context.settings.page_size_max)
        page = await info.context.loaders.ledger.load((root.id, request))
        return to_connection(page, after_given=after is not None)

    @strawberry.field(description="The member's NPS and CSAT feedback, newest first.")
    async def feedback(
        self,
        root: Parent[MemberRow],
        info: strawberry.Info,
        first: First = None,
        after: After = None,
    ) -> Connection["Feedback"]:
        request = page_request(first, after, max_size=info.context.settings.page_size_max)
        page = await info.context.loaders.feedback.load((root.id, request))
        return to_connection(page, after_given=after is not None)

    @strawberry.field(description="The member's purchases, newest first.")
    async def purchases(
        self,
        root: Parent[MemberRow],
        info: strawberry.Info,
        first: First = None,
        after: After = None,
    ) -> Connection["Purchase"]:
        request = page_request(first, after, max_size=info.context.settings.page_size_max)
        page = await info.context.loaders.purchases.load((root.id, request))
        return to_connection(page, after_given=after is not None)

    @strawberry.field(description="Share it: a friend enrolling with it becomes a referral.")
    def referral_code(self, root: Parent[MemberRow]) -> str | None:
        return root.referral_code

    @strawberry.field(description="Drives the birthday bonus; null if not given.")
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
        first: First = None,
        after: After = None,
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

    @strawberry.field(description="The member's marketing consents.")
    def consents(self, root: Parent[MemberRow]) -> MemberConsents:
        return MemberConsents(
            marketing_email=root.marketing_email,
            marketing_sms=root.marketing_sms,
            marketing_push=root.marketing_push,
            updated_at=root.consents_updated_at,
        )

    @strawberry.field(
        permission_classes=[IsAdmin],
        description="RFM scores as of the last rfm job (admin); null: no purchase in its window.",
    )
    async def rfm(self, root: Parent[MemberRow], info: strawberry.Info) -> RfmScores | None:
        return await info.context.loaders.rfm.load(root.id)

    @strawberry.field(description="The member's recorded events, newest first.")
    async def events(
        self,
        root: Parent[MemberRow],
        info: strawberry.Info,
        first: First = None,
        after: After = None,
    ) -> Connection["MemberEvent"]:
        request = page_request(first, after, max_size=info.context.settings.page_size_max)
        page = await info.context.loaders.events.load((root.id, request))
        return to_connection(page, after_given=after is not None)

    @strawberry.field(description="The member's redemptions, newest first.")
    async def redemptions(
        self,
        root: Parent[MemberRow],
        info: strawberry.Info,
        first: First = None,
        after: After = None,
    ) -> Connection["Redemption"]:
        request = page_request(first, after, max_size=info.context.settings.page_size_max)
        page = await info.context.loaders.redemptions.load((root.id, request))
        return to_connection(page, after_given=after is not None)


@strawberry.type(description="How a member's referral code has done.")
class ReferralCounts:
    enrolled: int = strawberry.field(description="Members who enrolled with the code.")
    rewarded: int = strawberry.field(description="Of those, referrals rewarded so far.")


@strawberry.type(
    description="A friend (referee) who enrolled with a member's (referrer's) code. Admin only."
)
class Referral:
    created_at: datetime = strawberry.field(description="When the referee enrolled with the code.")
    rewarded_at: datetime | None = strawberry.field(
        description="When the referee's first purchase that earned points rewarded it."
    )
    referrer_points: int = strawberry.field(
        description=(
            "Points the referrer received: 0 until rewarded, or when the referrer was not "
            "active or past the program's referralLimit."
        )
    )
    referee_points: int = strawberry.field(
        description="Points the referee received for it; 0 until rewarded."
    )

    @strawberry.field(description="Opaque identifier of the referral.")
    def id(self, root: Parent[ReferralRow]) -> strawberry.ID:
        return strawberry.ID(encode_id("Referral", root.id))

    @strawberry.field(description="The member whose code was used.")
    async def referrer(self, root: Parent[ReferralRow], info: strawberry.Info) -> Member | None:
        return await info.context.loaders.member.load(root.referrer_id)

    @strawberry.field(description="The member who enrolled with the code.")
    async def referee(self, root: Parent[ReferralRow], info: strawberry.Info) -> Member | None:
        return await info.context.loaders.member.load(root.referee_id)


@strawberry.type(description="A non-purchase action recorded with recordEvent, and what it earned.")
class MemberEvent:
    type: str = strawberry.field(description="What happened, such as app_installed.")
    occurred_at: datetime = strawberry.field(description="When it happened.")
    created_at: datetime = strawberry.field(description="When it was recorded.")
    points_awarded: int = strawberry.field(
        description="Points the event rules in force gave for it (0: none applied)."
    )
    attributes: JSON = strawberry.field(
        description="The JSON object sent with the event, as sent ({} when none)."
    )

    @strawberry.field(description="Opaque identifier of the event.")
    def id(self, root: Parent[MemberEventRow]) -> strawberry.ID:
        return strawberry.ID(encode_id("MemberEvent", root.id))


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


@strawberry.type(description="A catalog entry members spend points on; anyone signed in reads it.")
class Reward:
    name: str = strawberry.field(description="Shown to members, such as Free coffee.")
    description: str | None = strawberry.field(description="Longer text for members; null if none.")
    kind: RewardKind = strawberry.field(description="Where redemption codes come from.")
    cost_points: int = strawberry.field(description="Available points one redemption spends.")
    active: bool = strawberry.field(description="Inactive rewards cannot be redeemed.")
    stock: int | None = strawberry.field(description="Units left to issue; null is unlimited.")
    per_member_limit: int | None = strawberry.field(
        description="Times one member may redeem it (cancelled ones do not count); null: no limit."
    )
    starts_at: datetime | None = strawberry.field(
        description="Redeemable from then; null: already."
    )
    ends_at: datetime | None = strawberry.field(
        description="Redeemable until then (exclusive); null: no end."
    )

    @strawberry.field(description="Opaque identifier of the reward; use it as rewardId.")
    def id(self, root: Parent[rewards.RewardView]) -> strawberry.ID:
        return strawberry.ID(encode_id("Reward", root.reward.id))

    @strawberry.field(description="Channels it can be redeemed in; empty means all.")
    def channels(self, root: Parent[rewards.RewardView]) -> list[Channel]:
        return [DomainChannel(c) for c in root.reward.channels]

    @strawberry.field(
        description="Members need this tier or a higher-ranked one to redeem; null: anyone."
    )
    async def min_tier(
        self, root: Parent[rewards.RewardView], info: strawberry.Info
    ) -> Tier | None:
        if root.reward.min_tier_id is None:
            return None
        return await info.context.loaders.tier.load(root.reward.min_tier_id)

    @strawberry.field(
        description=(
            "Segments whose members alone may redeem it (NOT_IN_SEGMENT for others); "
            "empty: every member."
        )
    )
    def segment_ids(self, root: Parent[rewards.RewardView]) -> list[strawberry.ID]:
        return [strawberry.ID(encode_id("Segment", i)) for i in root.reward.segment_ids or ()]

    @strawberry.field(
        description="For a member token: why the member cannot redeem this now; null if they can."
    )
    def ineligible_reason(self, root: Parent[rewards.RewardView]) -> ErrorCode | None:
        return None if root.ineligible is None else root.ineligible.code

    @strawberry.field(description="A readable explanation of ineligibleReason.")
    def ineligible_message(self, root: Parent[rewards.RewardView]) -> str | None:
        return None if root.ineligible is None else root.ineligible.message


@strawberry.type(description="A reward a member redeemed: the code to present, and its state.")
class Redemption:
    points_spent: int = strawberry.field(
        description="Points it took; a cancellation gives them back."
    )
    code: str = strawberry.field(
        description="The coupon code the till or web shop accepts; unique."
    )
    status: RedemptionStatus = strawberry.field(description="Whether the code is still usable.")
    channel: Channel = strawberry.field(description="Where it was redeemed.")
    created_at: datetime = strawberry.field(description="When it was redeemed.")
    used_at: datetime | None = strawberry.field(
        description="When the code was consumed; null until then."
    )
    cancelled_at: datetime | None = strawberry.field(
        description="When it was cancelled; null unless cancelled."
    )

    @strawberry.field(description="Opaque identifier of the redemption; use it as redemptionId.")
    def id(self, root: Parent[RedemptionRow]) -> strawberry.ID:
        return strawberry.ID(encode_id("Redemption", root.id))

    @strawberry.field(description="What was redeemed.", graphql_type=Reward)
    async def reward(
        self, root: Parent[RedemptionRow], info: strawberry.Info
    ) -> rewards.RewardView:
        return rewards.RewardView(reward=await info.context.loaders.reward.load(root.reward_id))

    @strawberry.field(description="Who redeemed it.")
    async def member(self, root: Parent[RedemptionRow], info: strawberry.Info) -> Member:
        return await info.context.loaders.member.load(root.member_id)


@strawberry.type(description="A score a member gave, with what they said; from submitFeedback.")
class Feedback:
    kind: FeedbackKind = strawberry.field(description="NPS (0-10) or CSAT (1-5).")
    score: int = strawberry.field(description="The score, within its kind's range.")
    comment: str | None = strawberry.field(
        description="What the member said, up to 2,000 characters; null if nothing."
    )
    created_at: datetime = strawberry.field(description="When it was submitted.")

    @strawberry.field(description="Opaque identifier of the feedback.")
    def id(self, root: Parent[FeedbackRow]) -> strawberry.ID:
        return strawberry.ID(encode_id("Feedback", root.id))

    @strawberry.field(description="The purchase it is about; null when it is about no purchase.")
    async def purchase(self, root: Parent[FeedbackRow], info: strawberry.Info) -> Purchase | None:
        if root.purchase_id is None:
            return None
        return await info.context.loaders.purchase.load(root.purchase_id)

    @strawberry.field(description="The member who gave it.")
    async def member(self, root: Parent[FeedbackRow], info: strawberry.Info) -> Member:
        return await info.context.loaders.member.load(root.member_id)
