"""Points lifecycle: pending points and their release, refunds that claw back in proportion,
expiry of the oldest points first, and balances at past instants."""

import asyncio
from datetime import UTC, datetime, timedelta

from sqlalchemy import func, select

from loyalty.ledger.jobs import expire_points, release_pending
from loyalty.members.models import Member
from tests.cli import arun_cli
from tests.helpers import (
    ADJUST,
    CANCEL,
    RECORD_PURCHASE,
    create_reward,
    enroll,
    key,
    purchase_input,
    record,
    redeem,
    refund_input,
)

PROGRAM = """mutation($input: UpdateProgramInput!) { updateProgram(input: $input) {
  errors { code field } } }"""

REFUND = """
mutation($input: RefundPurchaseInput!) {
  refundPurchase(input: $input) {
    purchase { id status pointsAwarded pointsRefunded pointsUnrecovered refunded { amount } }
    pointsClawedBack
    errors { code field message }
  }
}
"""

LIFECYCLE = """
query($id: ID!) {
  member(id: $id) {
    points { available pending lifetimeEarned redeemed expired expiringSoon(days: 10) }
    pendingReleases { amount releasesAt }
    expiringPoints(first: 5) { amount expiresAt }
    ledger(first: 50) { edges { node { kind bucket points balanceAfter } } }
  }
}
"""


async def member_view(admin, member_id) -> dict:
    return (await admin.data(LIFECYCLE, id=member_id))["member"]


def days_ago(days: float) -> str:
    return (datetime.now(UTC) - timedelta(days=days)).isoformat()


async def refund(pos, purchase_id, amount, idempotency_key=None) -> dict:
    data = await pos.data(
        REFUND,
        input=refund_input(purchase_id, amount, idempotency_key=idempotency_key),
    )
    return data["refundPurchase"]


# --- pending -------------------------------------------------------------------------------


async def test_pending_points_are_released_by_the_job_once(admin, pos, db):
    await admin.data(PROGRAM, input={"pendingDays": 7})
    member_id = await enroll(pos)
    bought = datetime.now(UTC) - timedelta(days=2)
    await record(pos, member_id, "40.00", occurredAt=bought.isoformat())

    member = await member_view(admin, member_id)
    assert member["points"]["pending"] == 40
    assert member["pendingReleases"] == [
        {"amount": 40, "releasesAt": (bought + timedelta(days=7)).isoformat()}
    ]

    early = await release_pending(db, now=bought + timedelta(days=7) - timedelta(seconds=1))
    on_time = await release_pending(db, now=bought + timedelta(days=7))
    again = await release_pending(db, now=bought + timedelta(days=7))

    assert (early.points, on_time.points, again.points) == (0, 40, 0)
    member = await member_view(admin, member_id)
    assert (member["points"]["available"], member["points"]["pending"]) == (40, 0)
    assert member["pendingReleases"] == []
    assert [
        (e["node"]["kind"], e["node"]["bucket"], e["node"]["points"])
        for e in member["ledger"]["edges"][:2]
    ] in (
        [("RELEASE", "AVAILABLE", 40), ("RELEASE", "PENDING", -40)],
        [("RELEASE", "PENDING", -40), ("RELEASE", "AVAILABLE", 40)],
    )


# --- refunds -------------------------------------------------------------------------------


async def test_partial_refunds_add_up_to_exactly_what_was_earned(admin, pos):
    await admin.data(PROGRAM, input={"pointsPerUnit": "0.7"})
    member_id = await enroll(pos)
    purchase = (await record(pos, member_id, "100.00"))["purchase"]
    assert purchase["pointsAwarded"] == 70

    first = await refund(pos, purchase["id"], "33.33")
    second = await refund(pos, purchase["id"], "33.33")
    last = await refund(pos, purchase["id"], "33.34")
    after = await refund(pos, purchase["id"], "0.01")

    # floor(70 × 33.33 / 100) = 23; floor(70 × 66.66 / 100) = 46; floor(70 × 100 / 100) = 70
    assert [r["pointsClawedBack"] for r in (first, second, last)] == [23, 23, 24]
    assert [r["purchase"]["status"] for r in (first, second, last)] == [
        "PARTIALLY_REFUNDED",
        "PARTIALLY_REFUNDED",
        "REFUNDED",
    ]
    assert last["purchase"]["refunded"] == {"amount": "100.00"}
    assert [e["code"] for e in after["errors"]] == ["ALREADY_REFUNDED"]
    assert (await member_view(admin, member_id))["points"]["available"] == 0


async def test_over_refund_is_invalid_and_writes_nothing(admin, pos):
    member_id = await enroll(pos)
    purchase = (await record(pos, member_id, "20.00"))["purchase"]
    await refund(pos, purchase["id"], "15.00")
    refused = await refund(pos, purchase["id"], "5.01")
    assert [(e["code"], e["field"]) for e in refused["errors"]] == [
        ("INVALID", ["amount", "amount"])
    ]
    assert (await member_view(admin, member_id))["points"]["available"] == 5


async def test_refund_retry_replays_and_conflict_is_refused(admin, pos):
    member_id = await enroll(pos)
    purchase = (await record(pos, member_id, "50.00"))["purchase"]
    same = key()
    first = await refund(pos, purchase["id"], "10.00", same)
    retry = await refund(pos, purchase["id"], "10.00", same)
    conflict = await refund(pos, purchase["id"], "20.00", same)
    assert retry == first
    assert [e["code"] for e in conflict["errors"]] == ["IDEMPOTENCY_CONFLICT"]
    assert (await member_view(admin, member_id))["points"]["available"] == 40


async def test_refund_takes_the_purchases_pending_points_first(admin, pos):
    await admin.data(PROGRAM, input={"pendingDays": 14})
    member_id = await enroll(pos)
    await record(pos, member_id, "30.00", occurredAt=days_ago(20))  # settled: available
    purchase = (await record(pos, member_id, "50.00"))["purchase"]  # pending

    result = await refund(pos, purchase["id"], "20.00")

    assert result["pointsClawedBack"] == 20
    points = (await member_view(admin, member_id))["points"]
    assert (points["available"], points["pending"]) == (30, 30)


async def test_refund_after_the_points_were_spent_records_what_is_unrecovered(admin, pos):
    member_id = await enroll(pos)
    purchase = (await record(pos, member_id, "100.00"))["purchase"]
    reward_id = await create_reward(admin, costPoints=80)
    assert (await redeem(pos, member_id, reward_id))["errors"] == []

    result = await refund(pos, purchase["id"], "100.00")

    assert result["pointsClawedBack"] == 20
    assert result["purchase"]["pointsRefunded"] == 100
    assert result["purchase"]["pointsUnrecovered"] == 80
    points = (await member_view(admin, member_id))["points"]
    assert points["available"] == 0
    assert points["lifetimeEarned"] == 80


async def test_refund_of_unknown_purchase_and_wrong_currency(pos):
    missing = await refund(pos, "UHVyY2hhc2U6OTk5OQ", "1.00")
    assert [e["code"] for e in missing["errors"]] == ["NOT_FOUND"]
    member_id = await enroll(pos)
    purchase = (await record(pos, member_id, "10.00"))["purchase"]
    data = await pos.data(
        REFUND,
        input=refund_input(purchase["id"], "1.00", "EUR"),
    )
    assert [e["code"] for e in data["refundPurchase"]["errors"]] == ["CURRENCY_NOT_SUPPORTED"]


# --- expiry --------------------------------------------------------------------------------


async def test_redemptions_take_the_oldest_points_and_expiry_takes_what_is_left(admin, pos, db):
    await admin.data(PROGRAM, input={"pointsExpireAfterDays": 30})
    member_id = await enroll(pos)
    oldest = datetime.now(UTC).replace(microsecond=0) - timedelta(days=25)
    await record(pos, member_id, "100.00", occurredAt=oldest.isoformat())
    await record(pos, member_id, "50.00", occurredAt=days_ago(10))
    await record(pos, member_id, "20.00", occurredAt=days_ago(1))
    reward_id = await create_reward(admin, costPoints=70)
    assert (await redeem(pos, member_id, reward_id))["errors"] == []  # takes 70 of the oldest

    member = await member_view(admin, member_id)
    assert member["points"]["expiringSoon"] == 30
    assert [p["amount"] for p in member["expiringPoints"]] == [30, 50, 20]

    boundary = oldest + timedelta(days=30)
    before = await expire_points(db, now=boundary - timedelta(seconds=1))
    at = await expire_points(db, now=boundary)
    again = await expire_points(db, now=boundary)
    assert (before.points, at.points, again.points) == (0, 30, 0)

    points = (await member_view(admin, member_id))["points"]
    assert (points["available"], points["expired"], points["redeemed"]) == (70, 30, 70)


async def test_a_cancelled_redemption_gives_back_the_same_lots(admin, pos, db):
    await admin.data(PROGRAM, input={"pointsExpireAfterDays": 30})
    member_id = await enroll(pos)
    old = datetime.now(UTC) - timedelta(days=29)
    await record(pos, member_id, "60.00", occurredAt=old.isoformat())
    await record(pos, member_id, "40.00")
    reward_id = await create_reward(admin, costPoints=50)
    issued = (await redeem(pos, member_id, reward_id))["redemption"]
    await pos.data(CANCEL, input={"idempotencyKey": key(), "redemptionId": issued["id"]})

    report = await expire_points(db, now=old + timedelta(days=30))

    assert report.points == 60, "the 50 returned to the old lot expire with it"
    assert (await member_view(admin, member_id))["points"]["available"] == 40


async def test_a_debit_adjustment_takes_the_oldest_points(admin, pos, db):
    await admin.data(PROGRAM, input={"pointsExpireAfterDays": 30})
    member_id = await enroll(pos)
    old = datetime.now(UTC) - timedelta(days=20)
    await record(pos, member_id, "10.00", occurredAt=old.isoformat())
    await record(pos, member_id, "10.00")
    await admin.data(
        ADJUST,
        input={"idempotencyKey": key(), "memberId": member_id, "points": -8, "reason": "fix"},
    )
    report = await expire_points(db, now=old + timedelta(days=30))
    assert report.points == 2


async def test_a_new_policy_applies_to_new_lots_only(admin, pos, db):
    member_id = await enroll(pos)
    await record(pos, member_id, "10.00")  # never expires
    await admin.data(PROGRAM, input={"pointsExpireAfterDays": 5})
    await record(pos, member_id, "20.00")
    report = await expire_points(db, now=datetime.now(UTC) + timedelta(days=3650))
    assert report.points == 20


async def test_expiry_must_come_after_pending(admin):
    data = await admin.data(
        PROGRAM.replace("errors { code field }", "errors { code field }"),
        input={"pendingDays": 30, "pointsExpireAfterDays": 30},
    )
    assert data["updateProgram"]["errors"] == [
        {"code": "INVALID", "field": ["pointsExpireAfterDays"]}
    ]


# --- balances at past instants -------------------------------------------------------------


async def test_points_as_of_replays_the_ledger(admin, pos):
    member_id = await enroll(pos)
    observed = []
    purchase = (await record(pos, member_id, "30.00"))["purchase"]
    observed.append((datetime.now(UTC), 30))
    await record(pos, member_id, "12.00")
    observed.append((datetime.now(UTC), 42))
    await refund(pos, purchase["id"], "10.00")
    observed.append((datetime.now(UTC), 32))
    await admin.data(
        ADJUST,
        input={"idempotencyKey": key(), "memberId": member_id, "points": 8, "reason": "x"},
    )
    observed.append((datetime.now(UTC), 40))

    query = """query($id: ID!, $at: DateTime!) { member(id: $id) {
                 pointsAsOf(at: $at) { available pending lifetimeEarned } } }"""
    before = await admin.data(query, id=member_id, at=days_ago(1))
    assert before["member"]["pointsAsOf"] == {"available": 0, "pending": 0, "lifetimeEarned": 0}
    for at, available in observed:
        data = await admin.data(query, id=member_id, at=at.isoformat())
        assert data["member"]["pointsAsOf"]["available"] == available, at


async def test_liability_equals_an_independent_sum(admin, pos, db):
    await admin.data(PROGRAM, input={"pendingDays": 5})
    for amount in ("10.00", "25.50", "99.99"):
        member_id = await enroll(pos)
        await record(pos, member_id, amount)
        await record(pos, member_id, "7.00", occurredAt=days_ago(6))
    data = await admin.data(
        """{ pointsLiability { members available pending total
             byTier { tier { name } members total } } }"""
    )
    async with db.transaction() as session:
        available, pending = (
            await session.execute(
                select(func.sum(Member.points_available), func.sum(Member.points_pending))
            )
        ).one()
    liability = data["pointsLiability"]
    assert (liability["available"], liability["pending"]) == (available, pending)
    assert liability["total"] == available + pending == 21 + 134
    assert liability["byTier"] == [{"tier": None, "members": 3, "total": 155}]
    past = await admin.data(
        "query($at: DateTime) { pointsLiability(asOf: $at) { total } }", at=days_ago(1)
    )
    assert past["pointsLiability"]["total"] == 0


# --- jobs beside live traffic --------------------------------------------------------------


async def test_jobs_racing_live_purchases_keep_the_ledger_sound(admin, pos, db, database_url):
    await admin.data(PROGRAM, input={"pendingDays": 1, "pointsExpireAfterDays": 10})
    members = [await enroll(pos) for _ in range(5)]
    for member_id in members:
        await record(pos, member_id, "20.00", occurredAt=days_ago(20))
        await record(pos, member_id, "20.00", occurredAt=days_ago(2))
    now = datetime.now(UTC)

    traffic = [pos.data(RECORD_PURCHASE, input=purchase_input(m, "5.00")) for m in members * 4]
    results = await asyncio.gather(
        *traffic, expire_points(db, now=now), release_pending(db, now=now)
    )

    assert all(r["recordPurchase"]["errors"] == [] for r in results[:-2])
    verified = await arun_cli(database_url, "ledger", "verify")
    assert verified.returncode == 0, verified.stdout
    cli = await arun_cli(database_url, "jobs", "run", "expire-points", "--now", now.isoformat())
    assert cli.returncode == 0 and "0 points of 0 members" in cli.stdout, cli.stdout


async def test_a_debit_spanning_more_lots_than_one_read_takes_them_oldest_first(admin, pos, db):
    await admin.data(PROGRAM, input={"pointsExpireAfterDays": 300, "maxBackdateDays": 365})
    member_id = await enroll(pos)
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(days=200)
    for day in range(130):
        await record(pos, member_id, "1.00", occurredAt=(start + timedelta(days=day)).isoformat())
    reward_id = await create_reward(admin, costPoints=120)
    assert (await redeem(pos, member_id, reward_id))["errors"] == []

    report = await expire_points(db, now=start + timedelta(days=300 + 125))

    assert report.points == 6, "the 120 oldest lots were spent; the lots of days 120-125 expire"


async def test_a_refund_of_spent_points_still_takes_back_tier_qualification(admin, pos):
    await admin.data(
        """mutation { createTier(input: {name: "Base", rank: 1, threshold: 0}) { errors { code } }
                      gold: createTier(input: {name: "Gold", rank: 2, threshold: 500}) {
                        errors { code } } }"""
    )
    member_id = await enroll(pos)
    purchase = (await record(pos, member_id, "600.00"))["purchase"]
    reward_id = await create_reward(admin, costPoints=600)
    assert (await redeem(pos, member_id, reward_id))["errors"] == []

    result = await refund(pos, purchase["id"], "600.00")

    assert (result["pointsClawedBack"], result["purchase"]["pointsUnrecovered"]) == (0, 600)
    progress = await admin.data(
        "query($id: ID!) { member(id: $id) { tierProgress { qualifyingPoints } "
        "ledger(first: 1) { edges { node { kind points } } } } }",
        id=member_id,
    )
    assert progress["member"]["tierProgress"]["qualifyingPoints"] == 0
    assert progress["member"]["ledger"]["edges"][0]["node"] == {
        "kind": "REFUND_CLAWBACK",
        "points": 0,
    }


async def test_without_pending_days_a_clock_a_little_ahead_earns_available_points(admin, pos):
    member_id = await enroll(pos)
    ahead = (datetime.now(UTC) + timedelta(minutes=2)).isoformat()
    payload = await record(pos, member_id, "10.00", occurredAt=ahead)
    assert (payload["member"]["points"]["available"], payload["member"]["points"]["pending"]) == (
        10,
        0,
    )


async def test_batches_in_parallel_expire_each_member_once(admin, pos, db):
    await admin.data(PROGRAM, input={"pointsExpireAfterDays": 10})
    members = [await enroll(pos) for _ in range(7)]
    for member_id in members:
        await record(pos, member_id, "20.00", occurredAt=days_ago(20))
        await record(pos, member_id, "10.00", occurredAt=days_ago(1))
    now = datetime.now(UTC)

    report = await expire_points(db, now=now, batch_size=2, workers=3)
    again = await expire_points(db, now=now, batch_size=2, workers=3)

    assert (report.members, report.points, again.members) == (7, 7 * 20, 0)
    for member_id in members:
        points = (await member_view(admin, member_id))["points"]
        assert (points["available"], points["expired"]) == (10, 20)
