"""Member: its type and the values it carries, and the member queries and mutations.

Member links to most domains' types; those modules import Member, so Member names theirs
lazily (``strawberry.lazy``) to keep the imports one-way."""

from datetime import date, datetime
from typing import TYPE_CHECKING, Annotated, Optional

import strawberry
from sqlalchemy.ext.asyncio import AsyncSession
from strawberry import UNSET, Parent

from loyalty.auth.models import Role
from loyalty.db import utcnow
from loyalty.errors import invalid
from loyalty.graphql.errors import Payload, mutate
from loyalty.graphql.pagination import After, Connection, First, paged
from loyalty.graphql.permissions import (
    CanEnroll,
    CanReadMembers,
    CanUpdateMembers,
    IsAdmin,
    IsMember,
    OwnMember,
    forbidden,
)
from loyalty.ids import decode_id, encode_id, key_or_zero
from loyalty.inputs import parse, sent_fields
from loyalty.ledger import balances
from loyalty.members import service as members
from loyalty.members.models import Channel as DomainChannel
from loyalty.members.models import Member as MemberRow
from loyalty.members.models import MemberStatus as DomainMemberStatus
from loyalty.pagination import Page, PageRequest
from loyalty.referrals import service as referrals
from loyalty.referrals.models import Referral as ReferralRow
from loyalty.segments import service as segments
from loyalty.tiers import service as tiers
from loyalty.validation import instant

if TYPE_CHECKING:
    from loyalty.graphql.events import MemberEvent
    from loyalty.graphql.feedback import Feedback
    from loyalty.graphql.ledger import LedgerEntry
    from loyalty.graphql.purchases import Purchase
    from loyalty.graphql.rewards import Redemption
    from loyalty.graphql.tiers import Tier, TierChange, TierProgress

LazyTier = Annotated["Tier", strawberry.lazy("loyalty.graphql.tiers")]
LazyTierProgress = Annotated["TierProgress", strawberry.lazy("loyalty.graphql.tiers")]
LazyTierChange = Annotated["TierChange", strawberry.lazy("loyalty.graphql.tiers")]
LazyLedgerEntry = Annotated["LedgerEntry", strawberry.lazy("loyalty.graphql.ledger")]
LazyFeedback = Annotated["Feedback", strawberry.lazy("loyalty.graphql.feedback")]
LazyPurchase = Annotated["Purchase", strawberry.lazy("loyalty.graphql.purchases")]
LazyMemberEvent = Annotated["MemberEvent", strawberry.lazy("loyalty.graphql.events")]
LazyRedemption = Annotated["Redemption", strawberry.lazy("loyalty.graphql.rewards")]

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
    async def tier(self, root: Parent[MemberRow], info: strawberry.Info) -> LazyTier | None:
        if root.tier_id is None:
            return None
        return await info.context.loaders.tier.load(root.tier_id)

    @strawberry.field(
        description="Where the member stands in the tier ladder.", graphql_type=LazyTierProgress
    )
    async def tier_progress(
        self, root: Parent[MemberRow], info: strawberry.Info
    ) -> tiers.TierProgress:
        return await info.context.loaders.tier_progress.load(root)

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
    ) -> Connection[LazyTierChange]:
        return await paged(
            info,
            first,
            after,
            lambda request: info.context.loaders.tier_history.load((root.id, request)),
        )

    @strawberry.field(description="The member's ledger entries, newest first.")
    async def ledger(
        self,
        root: Parent[MemberRow],
        info: strawberry.Info,
        first: First = None,
        after: After = None,
    ) -> Connection[LazyLedgerEntry]:
        return await paged(
            info, first, after, lambda request: info.context.loaders.ledger.load((root.id, request))
        )

    @strawberry.field(description="The member's NPS and CSAT feedback, newest first.")
    async def feedback(
        self,
        root: Parent[MemberRow],
        info: strawberry.Info,
        first: First = None,
        after: After = None,
    ) -> Connection[LazyFeedback]:
        return await paged(
            info,
            first,
            after,
            lambda request: info.context.loaders.feedback.load((root.id, request)),
        )

    @strawberry.field(description="The member's purchases, newest first.")
    async def purchases(
        self,
        root: Parent[MemberRow],
        info: strawberry.Info,
        first: First = None,
        after: After = None,
    ) -> Connection[LazyPurchase]:
        return await paged(
            info,
            first,
            after,
            lambda request: info.context.loaders.purchases.load((root.id, request)),
        )

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
        return await paged(
            info,
            first,
            after,
            lambda request: info.context.read(
                lambda session: referrals.referrals_of(session, referrer_id=root.id, page=request)
            ),
        )

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
    ) -> Connection[LazyMemberEvent]:
        return await paged(
            info, first, after, lambda request: info.context.loaders.events.load((root.id, request))
        )

    @strawberry.field(description="The member's redemptions, newest first.")
    async def redemptions(
        self,
        root: Parent[MemberRow],
        info: strawberry.Info,
        first: First = None,
        after: After = None,
    ) -> Connection[LazyRedemption]:
        return await paged(
            info,
            first,
            after,
            lambda request: info.context.loaders.redemptions.load((root.id, request)),
        )


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


@strawberry.input(description="A new member; only externalId is required.")
class EnrollMemberInput:
    external_id: str = strawberry.field(
        description="Your identifier for the member (card number, customer id), up to 128 chars."
    )
    email: str | None = strawberry.field(default=None, description="Contact email.")
    phone: str | None = strawberry.field(default=None, description="Contact phone number.")
    first_name: str | None = strawberry.field(
        default=None, description="Given name, up to 100 characters."
    )
    last_name: str | None = strawberry.field(
        default=None, description="Family name, up to 100 characters."
    )
    channel: Channel | None = strawberry.field(
        default=None, description="Where the member enrolled, for reporting."
    )
    date_of_birth: date | None = strawberry.field(
        default=None, description="For the birthday bonus; between 1900-01-01 and today."
    )
    referral_code: str | None = strawberry.field(
        default=None, description="A member's referral code: the new member is their referee."
    )


@strawberry.input(description="Marketing consents: those left out stay as they are; never null.")
class ConsentsInput:
    marketing_email: bool | None = strawberry.field(
        default=UNSET, description="Marketing by email."
    )
    marketing_sms: bool | None = strawberry.field(default=UNSET, description="Marketing by SMS.")
    marketing_push: bool | None = strawberry.field(
        default=UNSET, description="Marketing by app notifications."
    )


@strawberry.input(
    description="Changes to a member: fields left out stay as they are; null clears a field."
)
class UpdateMemberInput:
    id: strawberry.ID = strawberry.field(description="The member to change.")
    email: str | None = strawberry.field(default=UNSET, description="Contact email.")
    phone: str | None = strawberry.field(default=UNSET, description="Contact phone number.")
    first_name: str | None = strawberry.field(
        default=UNSET, description="Given name, up to 100 characters."
    )
    last_name: str | None = strawberry.field(
        default=UNSET, description="Family name, up to 100 characters."
    )
    date_of_birth: date | None = strawberry.field(
        default=UNSET, description="For the birthday bonus; between 1900-01-01 and today."
    )
    status: MemberStatus | None = strawberry.field(
        default=UNSET,
        description="Suspend, close or reactivate; admin only, and never null.",
    )
    consents: ConsentsInput | None = strawberry.field(
        default=UNSET,
        description="Marketing consents to change (a member token may set its own).",
    )


@strawberry.type(description="The result of enrollMember.")
class EnrollMemberPayload(Payload):
    member: Member | None = strawberry.field(
        default=None, description="The new member; null when errors is not empty."
    )


@strawberry.type(description="The result of updateMember.")
class UpdateMemberPayload(Payload):
    member: Member | None = strawberry.field(
        default=None, description="The member as changed; null when errors is not empty."
    )


def _changes(input: UpdateMemberInput) -> members.MemberChanges:
    """The one mapping of updateMember's input onto the profile change; every error at once."""
    values = sent_fields(input, members.MemberChanges, UNSET)
    given = values.get("consents")
    if given is not None:
        values["consents"] = sent_fields(given, members.ConsentsIn, UNSET)
    elif "consents" in values:
        values["consents"] = {}
    return parse(members.MemberChanges, **values)


@strawberry.type
class MemberQueries:
    @strawberry.field(
        permission_classes=[CanReadMembers],
        extensions=[OwnMember(lambda args: args["id"])],
        description=(
            "A member by id; null if none. Admin and POS; a member token for itself only."
        ),
    )
    async def member(
        self,
        info: strawberry.Info,
        id: Annotated[strawberry.ID, strawberry.argument(description="The member's id.")],
    ) -> Member | None:
        member_id = decode_id("Member", id)
        return await info.context.read(
            lambda session: members.find_member(session, member_id=member_id)
        )

    @strawberry.field(
        permission_classes=[CanReadMembers],
        extensions=[OwnMember()],
        description=(
            "A member by your identifier (a scanned card); null if none. Admin and POS; "
            "a member token for itself only."
        ),
    )
    async def member_by_external_id(
        self,
        info: strawberry.Info,
        external_id: Annotated[
            str, strawberry.argument(description="The externalId given at enrollment.")
        ],
    ) -> Member | None:
        return await info.context.read(
            lambda session: members.find_member_by_external_id(session, external_id=external_id)
        )

    @strawberry.field(
        permission_classes=[IsAdmin],
        description="Members in enrollment order, oldest first, optionally searched. Admin only.",
    )
    async def members(
        self,
        info: strawberry.Info,
        first: First = None,
        after: After = None,
        search: Annotated[
            str | None,
            strawberry.argument(
                description=(
                    "Case-insensitive substring of externalId, email, phone or name "
                    "(at most 200 characters); omitted: every member."
                )
            ),
        ] = None,
        segment_id: Annotated[
            strawberry.ID | None,
            strawberry.argument(
                description=(
                    "Only the members of this segment now; one that names nothing: no members."
                )
            ),
        ] = None,
    ) -> Connection[Member]:
        async def load(session: AsyncSession, request: PageRequest) -> Page[MemberRow]:
            within = None
            if segment_id is not None:
                within = await segments.condition_of(
                    session, segment_id=decode_id("Segment", segment_id), now=utcnow()
                )
                if within is None:
                    return Page(items=[], keys=[], has_next=False)
            return await members.search_members(session, search=search, page=request, within=within)

        return await paged(
            info, first, after, lambda request: info.context.read(lambda s: load(s, request))
        )

    @strawberry.field(
        permission_classes=[IsMember],
        description="The member a member token names; only member tokens may ask.",
    )
    async def me(self, info: strawberry.Info) -> Member | None:
        return await info.context.read(
            lambda session: members.find_member(session, member_id=info.context.principal.member_id)
        )


@strawberry.type
class MemberMutations:
    @strawberry.mutation(
        permission_classes=[CanEnroll],
        description=(
            "Enroll a member at the base tier. Admin, POS and app keys; a second enrollment of "
            "an externalId is ALREADY_EXISTS, so a retry never creates a duplicate."
        ),
    )
    async def enroll_member(
        self,
        info: strawberry.Info,
        input: Annotated[EnrollMemberInput, strawberry.argument(description="The new member.")],
    ) -> EnrollMemberPayload:
        return await mutate(
            info,
            EnrollMemberPayload,
            lambda session: members.enroll_member(
                session,
                enrollment=parse(
                    members.Enrollment, **sent_fields(input, members.Enrollment, UNSET)
                ),
            ),
            lambda member: {"member": member},
        )

    @strawberry.mutation(
        permission_classes=[CanUpdateMembers],
        extensions=[OwnMember(lambda args: args["input"].id)],
        description="Admins change any member; a member token changes its own profile.",
    )
    async def update_member(
        self,
        info: strawberry.Info,
        input: Annotated[
            UpdateMemberInput, strawberry.argument(description="The member and its changes.")
        ],
    ) -> UpdateMemberPayload:
        if info.context.principal.role == Role.MEMBER and input.status is not UNSET:
            raise forbidden()  # a member may change its profile, not its status
        member_id = key_or_zero("Member", input.id)
        return await mutate(
            info,
            UpdateMemberPayload,
            lambda session: members.update_member(
                session, member_id=member_id, changes=_changes(input)
            ),
            lambda member: {"member": member},
        )
