"""Segments over GraphQL: the filter types, createSegment/updateSegment/deleteSegment and the
admin's segment queries."""

from datetime import datetime
from typing import Annotated

import strawberry
from strawberry import UNSET, Parent

from loyalty.db import utcnow
from loyalty.graphql.errors import Payload, mutate
from loyalty.graphql.members import Channel, Member
from loyalty.graphql.pagination import After, Connection, First, paged
from loyalty.graphql.permissions import IsAdmin
from loyalty.graphql.program import Money
from loyalty.graphql.purchases import MoneyInput
from loyalty.graphql.scalars import DecimalString
from loyalty.ids import decode_id, encode_id, key_or_zero
from loyalty.members.models import Channel as DomainChannel
from loyalty.money import format_amount
from loyalty.program.service import get_program
from loyalty.segments import service as segments
from loyalty.segments.filters import MarketingChannel as DomainMarketingChannel
from loyalty.segments.filters import SegmentFilter as DomainFilter
from loyalty.segments.models import Segment as SegmentRow
from loyalty.validation import UNSET as UNCHANGED
from loyalty.validation import Unset

# strawberry.enum registers the domain enum in place; the plain alias stays a type for mypy.
MarketingChannel = DomainMarketingChannel
strawberry.enum(
    MarketingChannel,
    name="MarketingChannel",
    description="A channel marketing reaches members by: EMAIL, SMS or PUSH (app notifications).",
)


@strawberry.input(
    description=(
        "Which members a segment holds: every condition given must hold (AND); one left out "
        "or null matches anyone. Only ACTIVE members are ever in a segment. Purchases refunded "
        "in full count as none; day windows end now. Exact definitions: docs/analytics.md."
    )
)
class SegmentFilterInput:
    tier_ids: list[strawberry.ID] | None = strawberry.field(
        default=None, description="Members holding one of these tiers now."
    )
    min_available_points: int | None = strawberry.field(
        default=None, description="Available points at least this (0 or more)."
    )
    max_available_points: int | None = strawberry.field(
        default=None, description="Available points at most this; not below the minimum."
    )
    min_lifetime_spend: MoneyInput | None = strawberry.field(
        default=None,
        description="Sum of all the member's purchase totals net of refunds, at least this.",
    )
    purchased_within_days: int | None = strawberry.field(
        default=None, description="A purchase whose occurredAt lies in the last N days (1-36500)."
    )
    not_purchased_for_days: int | None = strawberry.field(
        default=None,
        description="No purchase in the last N days (members who never bought included).",
    )
    min_purchases: int | None = strawberry.field(
        default=None, description="At least N purchases (in purchasesWithinDays, else ever)."
    )
    purchases_within_days: int | None = strawberry.field(
        default=None, description="The window minPurchases counts in, in days; only with it."
    )
    channels: list[Channel] | None = strawberry.field(
        default=None, description="At least one purchase ever through one of these channels."
    )
    enrolled_after: datetime | None = strawberry.field(
        default=None, description="Enrolled at or after this instant."
    )
    enrolled_before: datetime | None = strawberry.field(
        default=None, description="Enrolled before this instant; after enrolledAfter."
    )
    min_recency: int | None = strawberry.field(
        default=None, description="RFM recency score at least this (1-5); unscored: no match."
    )
    min_frequency: int | None = strawberry.field(
        default=None, description="RFM frequency score at least this (1-5)."
    )
    min_monetary: int | None = strawberry.field(
        default=None, description="RFM monetary score at least this (1-5)."
    )
    marketing_consent: MarketingChannel | None = strawberry.field(
        default=None, description="The member agreed to marketing through this channel."
    )


@strawberry.type(description="A segment's filter as stored; null fields are not conditions.")
class SegmentFilter:
    min_available_points: int | None = strawberry.field(description="Available points minimum.")
    max_available_points: int | None = strawberry.field(description="Available points maximum.")
    purchased_within_days: int | None = strawberry.field(
        description="A purchase in the last N days."
    )
    not_purchased_for_days: int | None = strawberry.field(
        description="No purchase in the last N days."
    )
    min_purchases: int | None = strawberry.field(description="At least N purchases.")
    purchases_within_days: int | None = strawberry.field(
        description="The window of minPurchases; null: ever."
    )
    enrolled_after: datetime | None = strawberry.field(description="Enrolled at or after.")
    enrolled_before: datetime | None = strawberry.field(description="Enrolled before.")
    min_recency: int | None = strawberry.field(description="RFM recency minimum (1-5).")
    min_frequency: int | None = strawberry.field(description="RFM frequency minimum (1-5).")
    min_monetary: int | None = strawberry.field(description="RFM monetary minimum (1-5).")
    marketing_consent: MarketingChannel | None = strawberry.field(
        description="Consent required for this channel."
    )

    @strawberry.field(description="Tiers the member must hold; null: any.")
    def tier_ids(self, root: Parent[DomainFilter]) -> list[strawberry.ID] | None:
        if root.tier_ids is None:
            return None
        return [strawberry.ID(encode_id("Tier", t)) for t in root.tier_ids]

    @strawberry.field(description="Channels purchased through; null: any.")
    def channels(self, root: Parent[DomainFilter]) -> list[Channel] | None:
        if root.channels is None:
            return None
        return [DomainChannel(c) for c in root.channels]

    @strawberry.field(description="Lifetime spend minimum, in the program's currency.")
    async def min_lifetime_spend(
        self, root: Parent[DomainFilter], info: strawberry.Info
    ) -> Money | None:
        if root.min_lifetime_spend is None:
            return None
        program = await info.context.read(get_program)
        return Money(
            amount=DecimalString(format_amount(root.min_lifetime_spend)),
            currency=program.currency,
        )


@strawberry.type(
    description=(
        "A named group of members, computed from its filter whenever asked (RFM scores are "
        "as of the last rfm job). Earning rules and rewards can be limited to segments. Admin."
    )
)
class Segment:
    name: str = strawberry.field(description="The admin's name for it, up to 200 characters.")
    description: str | None = strawberry.field(
        description="What it is for, up to 2,000 characters; null if none."
    )
    created_at: datetime = strawberry.field(description="When it was created.")
    updated_at: datetime = strawberry.field(description="When it was last changed.")

    @strawberry.field(description="Opaque identifier of the segment; use it in segmentIds.")
    def id(self, root: Parent[SegmentRow]) -> strawberry.ID:
        return strawberry.ID(encode_id("Segment", root.id))

    @strawberry.field(description="Who is in it.", graphql_type=SegmentFilter)
    def filter(self, root: Parent[SegmentRow]) -> DomainFilter:
        return DomainFilter.from_stored(root.filter)

    @strawberry.field(description="How many members are in it now (one SQL count).")
    async def member_count(self, root: Parent[SegmentRow], info: strawberry.Info) -> int:
        return await info.context.read(
            lambda session: segments.member_count(session, segment=root, now=utcnow())
        )

    @strawberry.field(description="Its members now, oldest enrollment first.")
    async def members(
        self,
        root: Parent[SegmentRow],
        info: strawberry.Info,
        first: First = None,
        after: After = None,
    ) -> Connection[Member]:
        return await paged(
            info,
            first,
            after,
            lambda request: info.context.read(
                lambda session: segments.segment_members(
                    session, segment=root, page=request, now=utcnow()
                )
            ),
        )


@strawberry.input(description="A new segment.")
class CreateSegmentInput:
    name: str = strawberry.field(description="Up to 200 characters.")
    description: str | None = strawberry.field(
        default=None, description="What it is for, up to 2,000 characters."
    )
    filter: SegmentFilterInput = strawberry.field(description="Who is in it.")


@strawberry.input(
    description="Changes to a segment: fields left out stay as they are; a filter sent replaces "
    "the whole filter."
)
class UpdateSegmentInput:
    id: strawberry.ID = strawberry.field(description="The segment to change.")
    name: str | None = strawberry.field(default=UNSET, description="Up to 200 characters.")
    description: str | None = strawberry.field(
        default=UNSET, description="Up to 2,000 characters; null clears it."
    )
    filter: SegmentFilterInput | None = strawberry.field(
        default=UNSET,
        description=(
            "The new filter; null: no conditions (every active member). Rules and rewards "
            "naming the segment follow it at once."
        ),
    )


@strawberry.input(description="The segment to delete.")
class DeleteSegmentInput:
    id: strawberry.ID = strawberry.field(
        description="A segment no live earning rule and no reward names (else INVALID)."
    )


@strawberry.type(description="The result of createSegment, updateSegment or deleteSegment.")
class SegmentPayload(Payload):
    segment: Segment | None = strawberry.field(
        default=None, description="The segment as saved (deleteSegment: as it was)."
    )


def filter_in(given: SegmentFilterInput) -> segments.FilterIn:
    spend = given.min_lifetime_spend
    return segments.FilterIn(
        tier_ids=None
        if given.tier_ids is None
        else [key_or_zero("Tier", t) for t in given.tier_ids],
        min_available_points=given.min_available_points,
        max_available_points=given.max_available_points,
        min_lifetime_spend=None
        if spend is None
        else segments.AmountIn(amount=spend.amount, currency=spend.currency),
        purchased_within_days=given.purchased_within_days,
        not_purchased_for_days=given.not_purchased_for_days,
        min_purchases=given.min_purchases,
        purchases_within_days=given.purchases_within_days,
        channels=None if given.channels is None else [c.value for c in given.channels],
        enrolled_after=given.enrolled_after,
        enrolled_before=given.enrolled_before,
        min_recency=given.min_recency,
        min_frequency=given.min_frequency,
        min_monetary=given.min_monetary,
        marketing_consent=None
        if given.marketing_consent is None
        else given.marketing_consent.value,
    )


def segment_keys(ids: list[strawberry.ID] | None) -> list[int] | None:
    """Segment IDs as keys; one that names nothing becomes 0, which no segment has."""
    return None if ids is None else [key_or_zero("Segment", i) for i in ids]


@strawberry.type
class SegmentQueries:
    @strawberry.field(permission_classes=[IsAdmin], description="The segments, oldest first.")
    async def segments(
        self, info: strawberry.Info, first: First = None, after: After = None
    ) -> Connection[Segment]:
        return await paged(
            info,
            first,
            after,
            lambda request: info.context.read(
                lambda session: segments.list_segments(session, page=request)
            ),
        )

    @strawberry.field(permission_classes=[IsAdmin], description="A segment by id; null if none.")
    async def segment(
        self,
        info: strawberry.Info,
        id: Annotated[strawberry.ID, strawberry.argument(description="The segment's id.")],
    ) -> Segment | None:
        segment_id = decode_id("Segment", id)
        return await info.context.read(
            lambda session: segments.get_segment(session, segment_id=segment_id)
        )


@strawberry.type
class SegmentMutations:
    @strawberry.mutation(permission_classes=[IsAdmin], description="Create a segment. Admin only.")
    async def create_segment(
        self,
        info: strawberry.Info,
        input: Annotated[CreateSegmentInput, strawberry.argument(description="The segment.")],
    ) -> SegmentPayload:
        given = filter_in(input.filter)
        return await mutate(
            info,
            SegmentPayload,
            lambda session: segments.create_segment(
                session, name=input.name, description=input.description, filter=given
            ),
            lambda segment: {"segment": segment},
        )

    @strawberry.mutation(
        permission_classes=[IsAdmin],
        description="Rename a segment or replace its filter; applies at once. Admin only.",
    )
    async def update_segment(
        self,
        info: strawberry.Info,
        input: Annotated[
            UpdateSegmentInput, strawberry.argument(description="The segment and its changes.")
        ],
    ) -> SegmentPayload:
        if input.filter is None:
            given: segments.FilterIn | Unset = segments.FilterIn()
        else:
            given = UNCHANGED if input.filter is UNSET else filter_in(input.filter)
        changes = segments.SegmentChanges(
            name=UNCHANGED if input.name is UNSET else input.name,
            description=UNCHANGED if input.description is UNSET else input.description,
            filter=given,
        )
        return await mutate(
            info,
            SegmentPayload,
            lambda session: segments.update_segment(
                session, segment_id=key_or_zero("Segment", input.id), changes=changes
            ),
            lambda segment: {"segment": segment},
        )

    @strawberry.mutation(
        permission_classes=[IsAdmin],
        description=(
            "Delete a segment; INVALID while a live earning rule or a reward names it. Admin only."
        ),
    )
    async def delete_segment(
        self,
        info: strawberry.Info,
        input: Annotated[DeleteSegmentInput, strawberry.argument(description="The segment.")],
    ) -> SegmentPayload:
        return await mutate(
            info,
            SegmentPayload,
            lambda session: segments.delete_segment(
                session, segment_id=key_or_zero("Segment", input.id)
            ),
            lambda segment: {"segment": segment},
        )
