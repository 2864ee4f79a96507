"""recordPurchase: points, lines, pending points, tier multiplier hook and the ledger view."""

from datetime import UTC, datetime, timedelta
from decimal import Decimal

from sqlalchemy import update

from loyalty.members.models import Member
from loyalty.tiers.models import Tier
from tests.helpers import MEMBER, RECORD_PURCHASE, enroll, purchase_input, record

PROGRAM = """
mutation($input: UpdateProgramInput!) {
  updateProgram(input: $input) { program { pointsPerUnit pendingDays } errors { code field } }
}
"""

HISTORY = """
query($id: ID!, $first: Int, $after: String) {
  member(id: $id) {
    ledger(first: $first, after: $after) {
      edges { cursor node { kind points bucket balanceAfter purchase { orderId } } }
      pageInfo { hasNextPage endCursor }
    }
    purchases(first: $first) {
      edges {
        node { orderId total { amount currency } lines { sku quantity unitPrice { amount } } }
      }
    }
  }
}
"""


async def test_points_are_the_floor_of_total_times_rate(admin, pos):
    await admin.data(PROGRAM, input={"pointsPerUnit": "1.5"})
    member_id = await enroll(pos)
    assert (await record(pos, member_id, "9.99"))["pointsAwarded"] == 14
    assert (await record(pos, member_id, "0.50"))["pointsAwarded"] == 0
    member = (await admin.data(MEMBER, id=member_id))["member"]
    assert member["points"]["available"] == 14
    assert len(member["ledger"]["edges"]) == 1  # a zero-point receipt writes no ledger entry


async def test_member_can_be_named_by_external_id(pos):
    await enroll(pos, "card-5")
    payload = await pos.data(
        RECORD_PURCHASE,
        input={**purchase_input("unused"), "memberId": None, "memberExternalId": "card-5"},
    )
    assert payload["recordPurchase"]["pointsAwarded"] == 25


async def test_lines_and_total_are_kept_exactly(admin, pos):
    member_id = await enroll(pos)
    lines = [
        {
            "sku": "A1",
            "category": "shoes",
            "quantity": 1,
            "unitPrice": {"amount": "80.10", "currency": "USD"},
        },
        {"sku": "B2", "quantity": 3, "unitPrice": {"amount": "0.3333", "currency": "usd"}},
    ]
    await record(pos, member_id, "81.10", lines=lines)
    purchase = (await admin.data(HISTORY, id=member_id))["member"]["purchases"]["edges"][0]["node"]
    assert purchase["total"] == {"amount": "81.10", "currency": "USD"}
    assert purchase["lines"] == [
        {"sku": "A1", "quantity": 1, "unitPrice": {"amount": "80.10"}},
        {"sku": "B2", "quantity": 3, "unitPrice": {"amount": "0.3333"}},
    ]


async def test_pending_days_hold_points_back(admin, pos):
    await admin.data(PROGRAM, input={"pendingDays": 14})
    member_id = await enroll(pos)
    recent = await record(pos, member_id, "30.00")
    assert recent["member"]["points"]["pending"] == 30
    assert recent["member"]["points"]["available"] == 0
    old = (datetime.now(UTC) - timedelta(days=20)).isoformat()
    settled = await record(pos, member_id, "10.00", occurredAt=old)
    assert settled["member"]["points"] == {
        "available": 10,
        "pending": 30,
        "lifetimeEarned": 40,
        "redeemed": 0,
        "expired": 0,
    }
    history = (await admin.data(HISTORY, id=member_id))["member"]["ledger"]["edges"]
    assert [(e["node"]["bucket"], e["node"]["balanceAfter"]) for e in history] == [
        ("AVAILABLE", 10),
        ("PENDING", 30),
    ]


async def test_the_tier_multiplier_applies(pos, db):
    member_id = await enroll(pos)
    async with db.transaction() as session:
        gold = Tier(name="Gold", rank=3, threshold=1000, multiplier=Decimal("1.5"))
        session.add(gold)
        await session.flush()
        await session.execute(update(Member).values(tier_id=gold.id))
    assert (await record(pos, member_id, "10.00"))["pointsAwarded"] == 15


async def test_ledger_pages_newest_first(admin, pos):
    member_id = await enroll(pos)
    for amount in ("1.00", "2.00", "3.00", "4.00", "5.00"):
        await record(pos, member_id, amount)
    first = (await admin.data(HISTORY, id=member_id, first=2))["member"]["ledger"]
    assert [e["node"]["points"] for e in first["edges"]] == [5, 4]
    rest = (
        await admin.data(HISTORY, id=member_id, first=10, after=first["pageInfo"]["endCursor"])
    )["member"]["ledger"]
    assert [e["node"]["points"] for e in rest["edges"]] == [3, 2, 1]
    assert rest["pageInfo"]["hasNextPage"] is False
    assert [e["node"]["balanceAfter"] for e in rest["edges"]] == [6, 3, 1]


async def test_occurred_at_a_few_minutes_ahead_is_accepted_as_clock_skew(pos):
    member_id = await enroll(pos)
    ahead = (datetime.now(UTC) + timedelta(minutes=2)).isoformat()
    assert (await record(pos, member_id, "5.00", occurredAt=ahead))["errors"] == []


async def test_program_settings_round_trip(admin, app_client):
    data = await admin.data(PROGRAM, input={"pointsPerUnit": "2.25", "pendingDays": 3})
    assert data["updateProgram"]["program"] == {"pointsPerUnit": "2.25", "pendingDays": 3}
    program = await app_client.data(
        "{ program { name currency pointsPerUnit pendingDays pointsExpireAfterDays "
        "tierWindowDays } }"
    )
    assert program["program"] == {
        "name": "Loyalty",
        "currency": "USD",
        "pointsPerUnit": "2.25",
        "pendingDays": 3,
        "pointsExpireAfterDays": None,
        "tierWindowDays": 365,
    }


async def test_currency_cannot_change_once_purchases_exist(admin, pos):
    await admin.data(PROGRAM, input={"currency": "EUR"})
    await admin.data(PROGRAM, input={"currency": "USD"})
    member_id = await enroll(pos)
    await record(pos, member_id)
    refused = await admin.data(PROGRAM, input={"currency": "EUR"})
    assert refused["updateProgram"]["errors"] == [{"code": "INVALID", "field": ["currency"]}]
