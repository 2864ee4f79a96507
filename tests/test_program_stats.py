"""programStats against figures computed by hand over a small seeded history, on both
databases: periods cut in America/New_York across the March 2026 DST change, empty periods,
null rates, the channel filter, roles, bad input and the number of statements."""

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import update

from loyalty.feedback.models import Feedback
from loyalty.ids import decode_id
from loyalty.ledger.jobs import expire_points
from loyalty.members.models import Member
from loyalty.purchases.models import PurchaseRefund
from tests.conftest import execute_sql
from tests.helpers import ADJUST, create_reward, enroll, key, record, redeem
from tests.test_feedback import SUBMIT, submission, token_for
from tests.test_query_cost import counting_statements

STATS = """
query Stats($from: DateTime!, $to: DateTime!, $groupBy: StatsGrouping, $channel: Channel,
            $storeId: String) {
  programStats(from: $from, to: $to, groupBy: $groupBy, channel: $channel, storeId: $storeId) {
    totals { ...figures salesGrowth }
    periods { ...figures salesGrowth }
  }
}
fragment figures on StatsPeriod {
  start end newMembers activeMembers purchases
  revenue { amount currency } refunded { amount } averageOrderValue { amount }
  repeatPurchaseRate purchaseFrequency pointsIssued pointsRedeemed pointsExpired
  redemptionRate liabilityAtEnd referralRate csatAverage csatSatisfied nps feedbackCount
}
"""

LIABILITY = "query($at: DateTime) { pointsLiability(asOf: $at) { total } }"
CODE = "query($id: ID!) { member(id: $id) { referralCode } }"
REFUND = """mutation($input: RefundPurchaseInput!) {
  refundPurchase(input: $input) { errors { code } } }"""
CANCEL = """mutation($input: CancelRedemptionInput!) {
  cancelRedemption(input: $input) { errors { code } } }"""

NEW_YORK = "America/New_York"
FROM = "2026-03-06T00:00:00-05:00"
TO = "2026-03-10T00:00:00-04:00"


def at(iso: str) -> datetime:
    return datetime.fromisoformat(iso)


async def set_time(db, model, row_id: int, column: str, when: str) -> None:
    async with db.transaction() as session:
        await session.execute(update(model).where(model.id == row_id).values({column: at(when)}))


async def enrolled_at(db, member: str, when: str) -> None:
    await set_time(db, Member, decode_id("Member", member), "enrolled_at", when)


async def feedback_at(pos, db, when: str, member: str, kind: str, score: int, purchase: str):
    result = await pos.data(SUBMIT, input=submission(member, kind, score, purchaseId=purchase))
    feedback_id = decode_id("Feedback", result["submitFeedback"]["feedback"]["id"])
    await set_time(db, Feedback, feedback_id, "created_at", when)


async def seed_history(admin, pos, db) -> None:
    """Members A, B (referred by A), C in range and D before it; purchases on both sides of
    each local midnight and of the DST jump (2026-03-08 02:00 EST -> 03:00 EDT)."""
    await execute_sql(
        db,
        f"UPDATE program SET time_zone = '{NEW_YORK}', max_backdate_days = 3650, "
        "points_expire_after_days = 1",
    )
    a = await enroll(pos)
    code = (await admin.data(CODE, id=a))["member"]["referralCode"]
    b = await enroll(pos, referralCode=code)
    c, d = await enroll(pos), await enroll(pos)
    await enrolled_at(db, a, "2026-03-06T10:00:00-05:00")
    await enrolled_at(db, b, "2026-03-07T23:30:00-05:00")  # 04:30Z on the 8th: still the 7th
    await enrolled_at(db, c, "2026-03-08T23:59:00-04:00")  # the 8th's last minute (23 h day)
    await enrolled_at(db, d, "2026-03-05T12:00:00-05:00")

    async def buy(member: str, amount: str, when: str, **more: str) -> str:
        return (await record(pos, member, amount, occurredAt=when, **more))["purchase"]["id"]

    a1 = await buy(a, "10.00", "2026-03-06T12:00:00-05:00")
    await buy(a, "20.00", "2026-03-06T18:00:00-05:00")
    b1 = await buy(b, "30.00", "2026-03-08T00:30:00-05:00")
    a3 = await buy(a, "40.00", "2026-03-08T03:30:00-04:00")  # after the jump
    c1 = await buy(c, "50.00", "2026-03-09T00:00:00-04:00", channel="ONLINE", storeId="web")
    await buy(d, "99.00", "2026-03-05T23:59:59-05:00")  # the preceding range
    await buy(d, "7.00", TO)  # at `to`: excluded

    # A's lots of the 6th and D's of the 5th (30 + 99 points) expire within a day: a run at
    # 20:00 on the 7th expires them.
    await expire_points(db, now=at("2026-03-07T20:00:00-05:00"))

    for when, member, kind, score, purchase in [
        ("2026-03-06T13:00:00-05:00", a, "CSAT", 5, a1),
        ("2026-03-06T13:00:00-05:00", a, "NPS", 10, a1),
        ("2026-03-06T23:59:00-05:00", b, "CSAT", 3, b1),
        ("2026-03-08T09:00:00-04:00", a, "NPS", 6, a3),
        ("2026-03-08T09:00:00-04:00", b, "NPS", 9, b1),
        ("2026-03-08T01:00:00-05:00", c, "NPS", 7, c1),
    ]:
        await feedback_at(pos, db, when, member, kind, score, purchase)

    refund = {
        "idempotencyKey": key(),
        "purchaseId": b1,
        "amount": {"amount": "10.00", "currency": "USD"},
    }
    assert (await pos.data(REFUND, input=refund))["refundPurchase"]["errors"] == []
    async with db.transaction() as session:
        await session.execute(
            update(PurchaseRefund).values(created_at=at("2026-03-09T12:00:00-04:00"))
        )


def figures(period: dict) -> dict:
    """The period without its instants, money as plain amounts."""
    shown = {k: v for k, v in period.items() if k not in ("start", "end")}
    for name in ("revenue", "refunded", "averageOrderValue"):
        if shown[name] is not None:
            shown[name] = shown[name]["amount"]
    return shown


EMPTY = {
    "newMembers": 0,
    "activeMembers": 0,
    "purchases": 0,
    "revenue": "0.00",
    "refunded": "0.00",
    "averageOrderValue": None,
    "repeatPurchaseRate": None,
    "purchaseFrequency": None,
    "pointsIssued": 0,
    "pointsRedeemed": 0,
    "pointsExpired": 0,
    "redemptionRate": None,
    "liabilityAtEnd": 0,
    "referralRate": None,
    "csatAverage": None,
    "csatSatisfied": None,
    "nps": None,
    "feedbackCount": 0,
    "salesGrowth": None,
}


async def test_daily_figures_across_midnights_and_the_dst_change(admin, pos, db):
    await seed_history(admin, pos, db)
    stats = (await admin.data(STATS, **{"from": FROM, "to": TO, "groupBy": "DAY"}))["programStats"]
    periods = stats["periods"]
    assert [(at(p["start"]), at(p["end"])) for p in periods] == [
        (at("2026-03-06T05:00:00+00:00"), at("2026-03-07T05:00:00+00:00")),
        (at("2026-03-07T05:00:00+00:00"), at("2026-03-08T05:00:00+00:00")),
        (at("2026-03-08T05:00:00+00:00"), at("2026-03-09T04:00:00+00:00")),  # 23 hours
        (at("2026-03-09T04:00:00+00:00"), at("2026-03-10T04:00:00+00:00")),
    ]
    # Liability is booked now (the history was recorded today): 0 at each of these ends.
    assert [figures(p) for p in periods] == [
        {
            **EMPTY,
            "newMembers": 1,
            "activeMembers": 1,
            "purchases": 2,
            "revenue": "30.00",
            "averageOrderValue": "15.00",
            "repeatPurchaseRate": 1.0,
            "purchaseFrequency": 2.0,
            "pointsIssued": 30,
            "redemptionRate": 0.0,
            "referralRate": 0.0,
            "csatAverage": 4.0,
            "csatSatisfied": 0.5,
            "nps": 100.0,
            "feedbackCount": 3,
        },
        {**EMPTY, "newMembers": 1, "referralRate": 1.0, "pointsExpired": 129},
        {
            **EMPTY,
            "newMembers": 1,
            "activeMembers": 2,
            "purchases": 2,
            "revenue": "70.00",
            "averageOrderValue": "35.00",
            "repeatPurchaseRate": 0.0,
            "purchaseFrequency": 1.0,
            "pointsIssued": 70,
            "redemptionRate": 0.0,
            "referralRate": 0.0,
            "nps": 0.0,  # one promoter (9), one detractor (6), one passive (7)
            "feedbackCount": 3,
        },
        {
            **EMPTY,
            "activeMembers": 1,
            "purchases": 1,
            "revenue": "50.00",
            "refunded": "10.00",
            "averageOrderValue": "50.00",
            "repeatPurchaseRate": 0.0,
            "purchaseFrequency": 1.0,
            "pointsIssued": 50,
            "redemptionRate": 0.0,
        },
    ]
    totals = figures(stats["totals"])
    assert totals == {
        **EMPTY,
        "newMembers": 3,
        "activeMembers": 3,
        "purchases": 5,
        "revenue": "150.00",
        "refunded": "10.00",
        "averageOrderValue": "30.00",
        "repeatPurchaseRate": pytest.approx(1 / 3),
        "purchaseFrequency": pytest.approx(5 / 3),
        "pointsIssued": 150,
        "pointsExpired": 129,
        "redemptionRate": 0.0,
        "referralRate": pytest.approx(1 / 3),
        "csatAverage": 4.0,
        "csatSatisfied": 0.5,
        "nps": 25.0,  # 9-10: 2 of 4, 0-6: 1 of 4
        "feedbackCount": 6,
        "salesGrowth": pytest.approx(150 / 99 - 1),
    }


async def test_weeks_months_one_period_and_the_channel_filter(admin, pos, db):
    await seed_history(admin, pos, db)

    async def stats(**variables: object) -> dict:
        return (await admin.data(STATS, **{"from": FROM, "to": TO, **variables}))["programStats"]

    whole = await stats()
    assert len(whole["periods"]) == 1
    assert whole["periods"][0] | {"salesGrowth": None} == whole["totals"] | {"salesGrowth": None}

    weeks = (await stats(groupBy="WEEK"))["periods"]  # Monday 2026-03-09 opens a week
    assert [at(p["start"]) for p in weeks] == [at(FROM), at("2026-03-09T04:00:00+00:00")]
    assert [p["purchases"] for p in weeks] == [4, 1]
    assert [p["activeMembers"] for p in weeks] == [2, 1]

    months = await stats(**{"from": "2026-01-15T00:00:00-05:00", "groupBy": "MONTH"})
    assert [at(p["start"]) for p in months["periods"]] == [
        at("2026-01-15T05:00:00+00:00"),
        at("2026-02-01T05:00:00+00:00"),
        at("2026-03-01T05:00:00+00:00"),
    ]
    assert [p["revenue"]["amount"] for p in months["periods"]] == ["0.00", "0.00", "249.00"]

    online = (await stats(channel="ONLINE"))["totals"]
    assert (online["purchases"], online["revenue"]["amount"], online["activeMembers"]) == (
        1,
        "50.00",
        1,
    )
    assert online["refunded"]["amount"] == "0.00"  # the refund was of an in-store purchase
    assert online["salesGrowth"] is None  # nothing online in the preceding range
    at_store = (await stats(storeId="web"))["totals"]
    assert at_store["purchases"] == 1


async def test_points_redeemed_net_of_cancellations_and_liability_as_points_liability(
    admin, pos, db
):
    member = await enroll(pos)
    now = datetime.now(UTC)
    await record(pos, member, "10.00")
    for points in (5, -2):
        adjusted = await admin.data(
            ADJUST,
            input={"idempotencyKey": key(), "memberId": member, "points": points, "reason": "t"},
        )
        assert adjusted["adjustPoints"]["errors"] == []
    reward = await create_reward(admin, costPoints=3)
    kept = await redeem(pos, member, reward)
    cancelled = await redeem(pos, member, reward)
    assert kept["errors"] == [] and cancelled["errors"] == []
    done = await pos.data(
        CANCEL,
        input={"idempotencyKey": key(), "redemptionId": cancelled["redemption"]["id"]},
    )
    assert done["cancelRedemption"]["errors"] == []

    start, end = now - timedelta(days=2), now + timedelta(days=1)
    stats = (
        await admin.data(
            STATS, **{"from": start.isoformat(), "to": end.isoformat(), "groupBy": "DAY"}
        )
    )["programStats"]
    totals = stats["totals"]
    assert (totals["pointsIssued"], totals["pointsRedeemed"]) == (15, 3)
    assert totals["redemptionRate"] == pytest.approx(0.2)
    for period in stats["periods"]:
        expected = (await admin.data(LIABILITY, at=period["end"]))["pointsLiability"]["total"]
        assert period["liabilityAtEnd"] == expected
    assert stats["periods"][0]["liabilityAtEnd"] == 0
    assert totals["liabilityAtEnd"] == 10 + 5 - 2 - 3 == stats["periods"][-1]["liabilityAtEnd"]


async def test_an_empty_program_gives_zero_counts_and_null_rates(admin, db):
    await execute_sql(db, f"UPDATE program SET time_zone = '{NEW_YORK}'")
    stats = (await admin.data(STATS, **{"from": FROM, "to": TO, "groupBy": "DAY"}))["programStats"]
    assert len(stats["periods"]) == 4
    for period in [*stats["periods"], stats["totals"]]:
        assert figures(period) == EMPTY


async def test_only_admin_reads_program_stats(pos, app_client):
    member = await enroll(pos)
    as_member = await token_for(app_client, member)
    for caller in (pos, app_client, as_member):
        body = await caller(STATS, **{"from": FROM, "to": TO})
        assert body["data"] is None
        assert body["errors"][0]["extensions"]["code"] == "FORBIDDEN"


async def test_bad_ranges_are_invalid(admin):
    cases = [
        {"from": TO, "to": FROM},
        {"from": FROM, "to": FROM},
        {"from": "2020-01-01T00:00:00Z", "to": "2022-12-31T00:00:00Z", "groupBy": "DAY"},
        {"from": "1900-01-01T00:00:00Z", "to": TO},
        {"from": FROM, "to": TO, "storeId": "x" * 65},
    ]
    for variables in cases:
        body = await admin(STATS, **variables)
        assert body["data"] is None, variables
        assert body["errors"][0]["extensions"]["code"] == "INVALID", (variables, body)
    naive = await admin(STATS, **{"from": "2026-03-06T00:00:00", "to": TO})
    assert naive["errors"]


async def test_the_number_of_statements_does_not_depend_on_the_number_of_periods(admin, pos, db):
    await seed_history(admin, pos, db)
    await admin.data(STATS, **{"from": FROM, "to": TO})  # the key's last use is recorded once
    counts = []
    for start, group_by in [(FROM, None), (FROM, "DAY"), ("2024-01-01T00:00:00-05:00", "DAY")]:
        with counting_statements(db) as statements:
            data = await admin.data(STATS, **{"from": start, "to": TO, "groupBy": group_by})
        counts.append(len(statements))
        assert data["programStats"]["totals"]["purchases"] >= 5
    assert counts[0] == counts[1] == counts[2], counts
    assert len(data["programStats"]["periods"]) == 799
