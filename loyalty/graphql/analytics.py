"""programStats: the program's KPIs by period (definitions in docs/analytics.md)."""

from datetime import datetime
from decimal import Decimal
from typing import Annotated

import strawberry

from loyalty.analytics import stats
from loyalty.graphql.members import Channel
from loyalty.graphql.permissions import IsAdmin
from loyalty.graphql.program import Money
from loyalty.graphql.scalars import DecimalString
from loyalty.members.models import Channel as DomainChannel
from loyalty.money import format_amount

# strawberry.enum registers the domain enum in place; the plain alias stays a type for mypy.
StatsGrouping = stats.Grouping
strawberry.enum(
    StatsGrouping,
    name="StatsGrouping",
    description="How programStats cuts its range: at midnights of the program's time zone, "
    "weeks from Monday, months from the 1st.",
)


@strawberry.type(
    description="The program's figures over one half-open period [start, end). Rates are null "
    "when their denominator is 0."
)
class StatsPeriod:
    start: datetime = strawberry.field(description="Where the period starts (included).")
    end: datetime = strawberry.field(description="Where the period ends (excluded).")
    new_members: int = strawberry.field(description="Members whose enrolledAt is in the period.")
    active_members: int = strawberry.field(
        description="Distinct members with at least one purchase whose occurredAt is in the "
        "period (narrowed by channel and storeId)."
    )
    purchases: int = strawberry.field(
        description="Purchases whose occurredAt is in the period, refunded ones included."
    )
    revenue: Money = strawberry.field(description="Sum of those purchases' totals, before refunds.")
    refunded: Money = strawberry.field(
        description="Sum of the refunds recorded (refundPurchase) in the period, whenever the "
        "purchase was."
    )
    average_order_value: Money | None = strawberry.field(
        description="revenue ÷ purchases, to 4 decimal places; null when there were none."
    )
    repeat_purchase_rate: float | None = strawberry.field(
        description="Members with 2 or more purchases in the period ÷ activeMembers."
    )
    purchase_frequency: float | None = strawberry.field(description="purchases ÷ activeMembers.")
    points_issued: int = strawberry.field(
        description="Points credited to members (EARN and BONUS entries: base, earning rules, "
        "events, referrals; and positive ADJUST entries) whose occurredAt is in the period."
    )
    points_redeemed: int = strawberry.field(
        description="Points spent on redemptions minus points given back by cancellations, "
        "by the entries' occurredAt."
    )
    points_expired: int = strawberry.field(
        description="Points taken by expiry (EXPIRE entries) in the period."
    )
    redemption_rate: float | None = strawberry.field(description="pointsRedeemed ÷ pointsIssued.")
    liability_at_end: int = strawberry.field(
        description="Available plus pending points of all members booked up to end "
        "(inclusive): pointsLiability(asOf: end).total."
    )
    referral_rate: float | None = strawberry.field(
        description="New members who enrolled with a referral code ÷ newMembers."
    )
    csat_average: float | None = strawberry.field(
        description="Mean of the CSAT scores submitted in the period (1-5)."
    )
    csat_satisfied: float | None = strawberry.field(
        description="Share of those CSAT scores that are 4 or 5."
    )
    nps: float | None = strawberry.field(
        description="Net promoter score of the NPS scores submitted in the period: % of 9-10 "
        "minus % of 0-6, from -100 to 100."
    )
    feedback_count: int = strawberry.field(
        description="Feedback of both kinds submitted in the period."
    )
    sales_growth: float | None = strawberry.field(
        description="On totals only: revenue ÷ revenue of the preceding range of the same "
        "length − 1 (null when that was 0); null on periods."
    )


@strawberry.type(description="programStats' answer: the whole range and each period of it.")
class ProgramStats:
    totals: StatsPeriod = strawberry.field(
        description="The whole range [from, to) as one period (active members counted once)."
    )
    periods: list[StatsPeriod] = strawberry.field(
        description="The range cut by groupBy, in order, tiling it with no gap; empty periods "
        "included. Without groupBy: one period, the range."
    )


def _money(amount: Decimal, currency: str) -> Money:
    return Money(amount=DecimalString(format_amount(amount)), currency=currency)


def _period(period: stats.PeriodStats, currency: str) -> StatsPeriod:
    aov = period.average_order_value
    return StatsPeriod(
        start=period.start,
        end=period.end,
        new_members=period.new_members,
        active_members=period.active_members,
        purchases=period.purchases,
        revenue=_money(period.revenue, currency),
        refunded=_money(period.refunded, currency),
        average_order_value=None if aov is None else _money(aov, currency),
        repeat_purchase_rate=period.repeat_purchase_rate,
        purchase_frequency=period.purchase_frequency,
        points_issued=period.points_issued,
        points_redeemed=period.points_redeemed,
        points_expired=period.points_expired,
        redemption_rate=period.redemption_rate,
        liability_at_end=period.liability_at_end,
        referral_rate=period.referral_rate,
        csat_average=period.csat_average,
        csat_satisfied=period.csat_satisfied,
        nps=period.nps,
        feedback_count=period.feedback_count,
        sales_growth=period.sales_growth,
    )


@strawberry.type
class AnalyticsQueries:
    @strawberry.field(
        permission_classes=[IsAdmin],
        description="The program's KPIs over [from, to), by period in the program's time zone. "
        "Admin only; at most 1,000 periods (INVALID otherwise).",
    )
    async def program_stats(
        self,
        info: strawberry.Info,
        since: Annotated[
            datetime, strawberry.argument(name="from", description="Start (included).")
        ],
        until: Annotated[datetime, strawberry.argument(name="to", description="End (excluded).")],
        group_by: Annotated[
            StatsGrouping | None,
            strawberry.argument(description="DAY, WEEK or MONTH; omitted: one period."),
        ] = None,
        channel: Annotated[
            Channel | None,
            strawberry.argument(description="Only purchases and refunds through this channel."),
        ] = None,
        store_id: Annotated[
            str | None,
            strawberry.argument(description="Only purchases and refunds at this store."),
        ] = None,
    ) -> ProgramStats:
        query = stats.StatsQuery(
            start=since,
            end=until,
            group_by=None if group_by is None else stats.Grouping(group_by),
            channel=None if channel is None else DomainChannel(channel),
            store_id=store_id,
        )
        found = await info.context.read(lambda session: stats.program_stats(session, query))
        return ProgramStats(
            totals=_period(found.totals, found.currency),
            periods=[_period(period, found.currency) for period in found.periods],
        )
