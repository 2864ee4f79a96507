"""Earning-rule caps and budgets under real concurrency on PostgreSQL.

Purchases (and events) race over separate pooled connections through the app: the member row
lock makes per-member caps exact, the rule row lock (``FOR NO KEY UPDATE`` in id order) makes a
campaign budget exact however many members buy at once. ``ledger verify`` runs after every
test (the ``db`` fixture).
"""

import asyncio
from datetime import UTC, datetime, timedelta

import pytest

from loyalty.events.birthdays import birthday_bonus
from tests.helpers import RECORD_PURCHASE, enroll, key, purchase_input, refund_input

pytestmark = pytest.mark.postgres_only

CREATE_RULE = """
mutation($input: CreateEarningRuleInput!) {
  createEarningRule(input: $input) { earningRule { id } errors { code field message } }
}
"""

RULE = "query($id: ID!) { earningRule(id: $id) { budgetUsed pointsAwarded } }"

RECORD = """
mutation($input: RecordPurchaseInput!) {
  recordPurchase(input: $input) {
    purchase { id pointsAwarded pointsBreakdown { points rule { id } } }
    pointsAwarded
    errors { code field message }
  }
}
"""

RECORD_EVENT = """
mutation($input: RecordEventInput!) {
  recordEvent(input: $input) { pointsAwarded errors { code field } }
}
"""

REFUND = """
mutation($input: RefundPurchaseInput!) {
  refundPurchase(input: $input) { pointsClawedBack errors { code field } }
}
"""

MEMBER = """
query($id: ID!) { member(id: $id) {
  points { available lifetimeEarned }
  ledger(first: 100) { edges { node { kind points } } }
} }
"""

LONG_AGO = "2020-01-01T00:00:00+00:00"


async def create_rule(admin, **fields) -> str:
    data = await admin.data(CREATE_RULE, input={"name": f"rule {key()[:6]}", **fields})
    payload = data["createEarningRule"]
    assert payload["errors"] == [], payload["errors"]
    return payload["earningRule"]["id"]


def bonus_of(payload: dict, rule_id: str) -> int:
    return sum(
        item["points"]
        for item in payload["purchase"]["pointsBreakdown"]
        if item["rule"] is not None and item["rule"]["id"] == rule_id
    )


async def ledger_bonus(admin, member_id: str) -> int:
    member = (await admin.data(MEMBER, id=member_id))["member"]
    return sum(
        e["node"]["points"] for e in member["ledger"]["edges"] if e["node"]["kind"] == "BONUS"
    )


async def test_two_hundred_members_buying_at_once_award_exactly_the_budget(admin, pos):
    rule_id = await create_rule(
        admin, effect={"kind": "FIXED_BONUS", "value": "10"}, limits={"budget": 1000}
    )
    members = [await enroll(pos) for _ in range(200)]

    responses = await asyncio.gather(
        *(pos.data(RECORD, input=purchase_input(m, "5.00")) for m in members)
    )

    payloads = [r["recordPurchase"] for r in responses]
    assert all(p["errors"] == [] for p in payloads)
    bonuses = [bonus_of(p, rule_id) for p in payloads]
    assert sum(bonuses) == 1000
    assert sorted(bonuses) == [0] * 100 + [10] * 100, "whole bonuses of 10: the budget divides"
    assert [p["pointsAwarded"] for p in payloads] == [5 + b for b in bonuses]
    assert (await admin.data(RULE, id=rule_id))["earningRule"] == {
        "budgetUsed": 1000,
        "pointsAwarded": 1000,
    }
    in_ledger = await asyncio.gather(*(ledger_bonus(admin, m) for m in members))
    assert list(in_ledger) == bonuses


async def test_a_budget_that_does_not_divide_is_still_exact(admin, pos):
    rule_id = await create_rule(
        admin, effect={"kind": "FIXED_BONUS", "value": "7"}, limits={"budget": 100}
    )
    members = [await enroll(pos) for _ in range(40)]

    responses = await asyncio.gather(
        *(pos.data(RECORD, input=purchase_input(m, "5.00")) for m in members)
    )

    bonuses = sorted(bonus_of(r["recordPurchase"], rule_id) for r in responses)
    assert bonuses == [0] * 25 + [2] + [7] * 14
    assert (await admin.data(RULE, id=rule_id))["earningRule"] == {
        "budgetUsed": 100,
        "pointsAwarded": 100,
    }


async def test_several_budgeted_rules_racing_neither_overspend_nor_deadlock(admin, pos):
    first = await create_rule(
        admin, effect={"kind": "FIXED_BONUS", "value": "10"}, limits={"budget": 300}
    )
    second = await create_rule(
        admin,
        effect={"kind": "FIXED_BONUS", "value": "3"},
        priority=5,
        limits={"budget": 100},
    )
    members = [await enroll(pos) for _ in range(60)]

    responses = await asyncio.gather(
        *(pos.data(RECORD, input=purchase_input(m, "5.00")) for m in members for _ in range(2))
    )

    payloads = [r["recordPurchase"] for r in responses]
    assert all(p["errors"] == [] for p in payloads)
    assert sum(bonus_of(p, first) for p in payloads) == 300
    assert sum(bonus_of(p, second) for p in payloads) == 100
    for rule_id, budget in ((first, 300), (second, 100)):
        assert (await admin.data(RULE, id=rule_id))["earningRule"] == {
            "budgetUsed": budget,
            "pointsAwarded": budget,
        }


async def test_one_member_buying_at_once_gets_exactly_the_daily_cap(admin, pos):
    rule_id = await create_rule(
        admin,
        effect={"kind": "FIXED_BONUS", "value": "10"},
        startsAt=LONG_AGO,
        limits={"perMemberPerDay": 55},
    )
    member_id = await enroll(pos)
    at = datetime.now(UTC).replace(hour=12, minute=0, second=0, microsecond=0) - timedelta(days=1)

    responses = await asyncio.gather(
        *(
            pos.data(RECORD, input=purchase_input(member_id, "2.00", occurredAt=at.isoformat()))
            for _ in range(30)
        )
    )

    payloads = [r["recordPurchase"] for r in responses]
    assert all(p["errors"] == [] for p in payloads)
    bonuses = sorted(bonus_of(p, rule_id) for p in payloads)
    assert bonuses == [0] * 24 + [5] + [10] * 5
    member = (await admin.data(MEMBER, id=member_id))["member"]
    assert member["points"]["available"] == 30 * 2 + 55
    assert await ledger_bonus(admin, member_id) == 55
    assert (await admin.data(RULE, id=rule_id))["earningRule"]["pointsAwarded"] == 55


async def test_a_member_and_a_budget_cap_racing_together(admin, pos):
    """Five members send ten purchases each at once: 20 a day per member, 70 in all."""
    rule_id = await create_rule(
        admin,
        effect={"kind": "FIXED_BONUS", "value": "4"},
        startsAt=LONG_AGO,
        limits={"perMemberPerDay": 20, "budget": 70},
    )
    members = [await enroll(pos) for _ in range(5)]
    at = (datetime.now(UTC) - timedelta(hours=1)).isoformat()

    responses = await asyncio.gather(
        *(
            pos.data(RECORD, input=purchase_input(m, "1.00", occurredAt=at))
            for _ in range(10)
            for m in members
        )
    )

    payloads = [r["recordPurchase"] for r in responses]
    assert all(p["errors"] == [] for p in payloads)
    per_member = await asyncio.gather(*(ledger_bonus(admin, m) for m in members))
    assert sum(per_member) == 70
    assert all(points <= 20 for points in per_member)
    assert (await admin.data(RULE, id=rule_id))["earningRule"] == {
        "budgetUsed": 70,
        "pointsAwarded": 70,
    }


async def test_events_racing_for_a_budget_award_exactly_the_budget(admin, pos, app_client):
    rule_id = await create_rule(
        admin,
        effect={"kind": "FIXED_BONUS", "value": "25"},
        conditions={"eventType": "app_installed"},
        limits={"budget": 500},
    )
    members = [await enroll(pos) for _ in range(50)]

    responses = await asyncio.gather(
        *(
            caller.data(
                RECORD_EVENT,
                input={"idempotencyKey": key(), "memberId": m, "type": "app_installed"},
            )
            for m in members
            for caller in (pos, app_client)
        )
    )

    awarded = [r["recordEvent"]["pointsAwarded"] for r in responses]
    assert all(r["recordEvent"]["errors"] == [] for r in responses)
    assert sum(awarded) == 500
    assert sorted(awarded) == [0] * 80 + [25] * 20
    assert (await admin.data(RULE, id=rule_id))["earningRule"] == {
        "budgetUsed": 500,
        "pointsAwarded": 500,
    }


async def test_refunds_free_budget_that_racing_purchases_then_use(admin, pos):
    rule_id = await create_rule(
        admin, effect={"kind": "FIXED_BONUS", "value": "10"}, limits={"budget": 100}
    )
    early = [await enroll(pos) for _ in range(10)]
    bought = [
        (await pos.data(RECORD, input=purchase_input(m, "10.00")))["recordPurchase"] for m in early
    ]
    assert sum(bonus_of(p, rule_id) for p in bought) == 100
    late = [await enroll(pos) for _ in range(30)]

    refunds = [
        pos.data(
            REFUND,
            input=refund_input(p["purchase"]["id"], "10.00"),
        )
        for p in bought[:5]
    ]
    purchases = [pos.data(RECORD, input=purchase_input(m, "10.00")) for m in late]
    results = await asyncio.gather(*refunds, *purchases)

    assert all(r["refundPurchase"]["errors"] == [] for r in results[:5])
    late_bonus = sum(bonus_of(r["recordPurchase"], rule_id) for r in results[5:])
    assert late_bonus <= 50
    rule = (await admin.data(RULE, id=rule_id))["earningRule"]
    assert rule["budgetUsed"] == rule["pointsAwarded"] == 50 + late_bonus
    assert rule["budgetUsed"] <= 100


async def test_a_retried_purchase_racing_itself_awards_the_bonus_once(admin, pos):
    rule_id = await create_rule(
        admin, effect={"kind": "FIXED_BONUS", "value": "10"}, limits={"budget": 1000}
    )
    member_id = await enroll(pos)
    same = purchase_input(member_id, "5.00")

    responses = await asyncio.gather(*(pos.data(RECORD_PURCHASE, input=same) for _ in range(20)))

    assert len({r["recordPurchase"]["purchase"]["id"] for r in responses}) == 1
    assert await ledger_bonus(admin, member_id) == 10
    assert (await admin.data(RULE, id=rule_id))["earningRule"]["budgetUsed"] == 10


async def test_a_first_purchase_bonus_is_awarded_once_to_purchases_racing(admin, pos):
    rule_id = await create_rule(
        admin, effect={"kind": "FIXED_BONUS", "value": "15"}, conditions={"firstPurchase": True}
    )
    member_id = await enroll(pos)

    responses = await asyncio.gather(
        *(pos.data(RECORD, input=purchase_input(member_id, "3.00")) for _ in range(15))
    )

    assert sorted(bonus_of(r["recordPurchase"], rule_id) for r in responses) == [0] * 14 + [15]
    assert await ledger_bonus(admin, member_id) == 15


async def test_referees_and_their_referrer_buying_at_once_with_a_budgeted_rule(admin, pos):
    """The referrer keeps shopping while the friends they brought make their first purchases."""
    await admin.data(
        "mutation { updateProgram(input: {referrerPoints: 50, refereePoints: 20}) "
        "{ errors { code } } }"
    )
    rule_id = await create_rule(
        admin, effect={"kind": "FIXED_BONUS", "value": "1"}, limits={"budget": 100000}
    )
    referrer = await enroll(pos)
    code = (await pos.data("query($id: ID!) { member(id: $id) { referralCode } }", id=referrer))[
        "member"
    ]["referralCode"]
    referees = [await enroll(pos, referralCode=code) for _ in range(20)]

    operations = []
    for referee in referees:
        operations.append(pos(RECORD, input=purchase_input(referee, "5.00")))
        operations.append(pos(RECORD, input=purchase_input(referrer, "5.00")))
    bodies = await asyncio.gather(*operations)

    failed = [b["errors"] for b in bodies if b.get("errors")]
    assert failed == [], f"{len(failed)} of 40 purchases failed: {failed[0]}"
    assert (await admin.data(RULE, id=rule_id))["earningRule"]["budgetUsed"] == 40
    member = (await admin.data(MEMBER, id=referrer))["member"]
    assert member["points"]["available"] == 20 * (5 + 1) + 20 * 50


async def test_the_birthday_job_beside_referees_first_purchases(admin, pos, db):
    await admin.data(
        "mutation { updateProgram(input: {referrerPoints: 50, refereePoints: 20}) "
        "{ errors { code } } }"
    )
    await create_rule(
        admin,
        effect={"kind": "FIXED_BONUS", "value": "5"},
        conditions={"eventType": "birthday"},
        startsAt=LONG_AGO,
    )
    now = datetime.now(UTC)
    born = now.date().replace(year=1992) if (now.month, now.day) != (2, 29) else now.date()
    referees = []
    for _ in range(100):
        referrer = await enroll(pos, dateOfBirth=born.isoformat())
        code = (
            await pos.data("query($id: ID!) { member(id: $id) { referralCode } }", id=referrer)
        )["member"]["referralCode"]
        referees.append(await enroll(pos, referralCode=code, dateOfBirth=born.isoformat()))

    job, *purchases = await asyncio.gather(
        birthday_bonus(db, now=now),
        *(pos(RECORD_PURCHASE, input=purchase_input(r, "5.00")) for r in referees),
        return_exceptions=True,
    )

    assert not isinstance(job, BaseException), f"the job failed: {job}"
    assert (job.members, job.points) == (200, 1000)
    assert [p.get("errors") for p in purchases] == [None] * 100


async def test_replayed_and_live_purchases_race_when_a_budget_changed_between_versions(admin, pos):
    """A receipt replayed from before an edit sees the old version (budgeted: locks the rule),
    a live one the new (no budget: only references the rule from its award row). Both must
    go through: the budget lock must not conflict with the award rows' foreign-key check."""
    first = await create_rule(
        admin,
        priority=10,
        startsAt=LONG_AGO,
        effect={"kind": "FIXED_BONUS", "value": "3"},
        limits={"budget": 1_000_000},
    )
    await create_rule(
        admin,
        startsAt=LONG_AGO,
        effect={"kind": "FIXED_BONUS", "value": "2"},
        limits={"budget": 1_000_000},
    )
    edited = await admin.data(
        """mutation($input: UpdateEarningRuleInput!) {
        updateEarningRule(input: $input) { errors { code } } }""",
        input={"id": first, "limits": None},
    )
    assert edited["updateEarningRule"]["errors"] == []
    before_edit = (datetime.now(UTC) - timedelta(hours=2)).isoformat()
    members = [await enroll(pos) for _ in range(40)]

    async def buy(index: int, member_id: str) -> dict:
        extra = {"occurredAt": before_edit} if index % 2 else {}
        data = await pos(RECORD, input=purchase_input(member_id, "1.00", **extra))
        return data

    results = await asyncio.gather(*(buy(i, m) for i, m in enumerate(members * 3)))
    assert all("errors" not in body for body in results), [
        body["errors"] for body in results if "errors" in body
    ][:3]
    assert {body["data"]["recordPurchase"]["pointsAwarded"] for body in results} == {6}
