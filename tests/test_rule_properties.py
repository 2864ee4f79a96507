"""Property: for any purchase, previewPurchase says exactly what recordPurchase then awards.

A fixed book of varied earning rules (every effect, SKU and category filters, a channel, a
store, a tier, a minimum total, the first purchase, weekend days, per-purchase, per-member and
budget caps, an exclusive rule) meets purchases that hypothesis generates. For each purchase
the preview's points and breakdown must equal what the recorded purchase shows, and both must
match an independent model of the rules (kept in step with what was actually awarded, so caps
and budgets carry over from one example to the next), and the balance must move by exactly
the points awarded.
"""

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import ROUND_FLOOR, Decimal
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.helpers import enroll, key

TIME_ZONE = "Europe/Berlin"
POINTS_PER_UNIT = Decimal("1.25")
GOLD_MULTIPLIER = Decimal(2)
LONG_AGO = "2020-01-01T00:00:00+00:00"

PREVIEW = """
query($input: PreviewPurchaseInput!) {
  previewPurchase(input: $input) {
    pointsAwarded
    pointsBreakdown { points description rule { id } }
    errors { code field message }
  }
}
"""

RECORD = """
mutation($input: RecordPurchaseInput!) {
  recordPurchase(input: $input) {
    pointsAwarded
    purchase { pointsAwarded pointsBreakdown { points description rule { id } } }
    errors { code field message }
  }
}
"""

BALANCE = "query($id: ID!) { member(id: $id) { points { available pending } } }"

CREATE_RULE = """
mutation($input: CreateEarningRuleInput!) {
  createEarningRule(input: $input) { earningRule { id } errors { code field message } }
}
"""


def floor(value: Decimal) -> int:
    return int(value.to_integral_value(rounding=ROUND_FLOOR))


# --- the rule book -------------------------------------------------------------------------

RULES: list[dict[str, Any]] = [
    {
        "name": "Online doubles",
        "priority": 10,
        "effect": {"kind": "MULTIPLY", "value": "2"},
        "conditions": {"channels": ["ONLINE"]},
    },
    {
        "name": "Store 9 opening",
        "priority": 5,
        "exclusive": True,
        "effect": {"kind": "FIXED_BONUS", "value": "40"},
        "conditions": {"storeIds": ["store-9"]},
    },
    {
        "name": "Coffee per cup",
        "effect": {"kind": "POINTS_PER_UNIT", "value": "5"},
        "conditions": {"skus": ["COFFEE"]},
        "limits": {"perPurchase": 30},
    },
    {
        "name": "Books per dollar",
        "effect": {"kind": "POINTS_PER_CURRENCY", "value": "0.5"},
        "conditions": {"categories": ["books"]},
    },
    {
        "name": "Big basket",
        "effect": {"kind": "FIXED_BONUS", "value": "25"},
        "conditions": {"minTotal": "100"},
        "limits": {"perMemberPerDay": 50},
    },
    {
        "name": "Gold boost",
        "effect": {"kind": "MULTIPLY", "value": "1.5"},
        "conditions": {"tierIds": ["<gold>"]},
    },
    {
        "name": "Welcome",
        "effect": {"kind": "FIXED_BONUS", "value": "15"},
        "conditions": {"firstPurchase": True},
    },
    {
        "name": "Weekend treat",
        "effect": {"kind": "FIXED_BONUS", "value": "7"},
        "conditions": {"daysOfWeek": ["SATURDAY", "SUNDAY"]},
        "limits": {"perMemberTotal": 21, "budget": 30},
    },
    {
        "name": "Tea or fruit",
        "effect": {"kind": "POINTS_PER_UNIT", "value": "2"},
        "conditions": {"skus": ["TEA"], "categories": ["fruit"]},
        "limits": {"perMemberPerWeek": 40},
    },
    {
        "name": "Triple food",
        "effect": {"kind": "MULTIPLY", "value": "3"},
        "conditions": {"categories": ["food"]},
        "limits": {"perPurchase": 50},
    },
    {
        "name": "App tenth",
        "effect": {"kind": "POINTS_PER_CURRENCY", "value": "0.1"},
        "conditions": {"channels": ["MOBILE_APP"]},
    },
    {
        "name": "Store 1 items",
        "effect": {"kind": "POINTS_PER_UNIT", "value": "1"},
        "conditions": {"storeIds": ["store-1"]},
        "limits": {"perMemberPerMonth": 60},
    },
]


@dataclass
class Model:
    """What the database holds that the rules depend on, from the awards actually made."""

    rule_ids: dict[str, str]
    members: list[str]
    gold: str
    bought: set[str] = field(default_factory=set)
    per_day: dict[tuple[str, str, Any], int] = field(default_factory=lambda: defaultdict(int))
    per_week: dict[tuple[str, str, Any], int] = field(default_factory=lambda: defaultdict(int))
    per_month: dict[tuple[str, str, Any], int] = field(default_factory=lambda: defaultdict(int))
    per_member: dict[tuple[str, str], int] = field(default_factory=lambda: defaultdict(int))
    budget_used: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    purchases: int = 0


@pytest.fixture
async def model(admin, pos) -> Model:
    program = await admin.data(
        """mutation($input: UpdateProgramInput!) { updateProgram(input: $input) {
             errors { code field } } }""",
        input={"pointsPerUnit": str(POINTS_PER_UNIT), "timeZone": TIME_ZONE},
    )
    assert program["updateProgram"]["errors"] == []
    tiers = await admin.data(
        """mutation($gold: Decimal!) {
             base: createTier(input: {name: "Base", rank: 1, threshold: 0}) {
               tier { id } errors { code } }
             gold: createTier(input: {name: "Gold", rank: 2, threshold: 300, multiplier: $gold}) {
               tier { id } errors { code } } }""",
        gold=str(GOLD_MULTIPLIER),
    )
    gold = tiers["gold"]["tier"]["id"]
    rule_ids = {}
    for rule in RULES:
        spec = {**rule, "startsAt": LONG_AGO}
        if "tierIds" in spec.get("conditions", {}):
            spec["conditions"] = {**spec["conditions"], "tierIds": [gold]}
        data = await admin.data(CREATE_RULE, input=spec)
        assert data["createEarningRule"]["errors"] == [], data["createEarningRule"]["errors"]
        rule_ids[rule["name"]] = data["createEarningRule"]["earningRule"]["id"]
    members = [await enroll(pos) for _ in range(3)]
    promoted = await admin.data(
        """mutation($input: SetMemberTierInput!) { setMemberTier(input: $input) {
             errors { code } } }""",
        input={"memberId": members[0], "tierId": gold, "reason": "property test"},
    )
    assert promoted["setMemberTier"]["errors"] == []
    return Model(rule_ids=rule_ids, members=members, gold=gold)


# --- generated purchases -------------------------------------------------------------------


def cents(low: int, high: int) -> st.SearchStrategy[str]:
    return st.integers(low, high).map(lambda c: f"{c // 100}.{c % 100:02d}")


lines = st.lists(
    st.fixed_dictionaries(
        {
            "sku": st.sampled_from([None, "COFFEE", "TEA", "BREAD"]),
            "category": st.sampled_from([None, "books", "fruit", "food"]),
            "quantity": st.integers(1, 6),
        },
        optional={"unitPrice": cents(1, 6000).map(lambda a: {"amount": a, "currency": "USD"})},
    ),
    max_size=4,
)

purchases = st.fixed_dictionaries(
    {
        "member": st.integers(0, 2),
        "channel": st.sampled_from(["IN_STORE", "ONLINE", "MOBILE_APP"]),
        "storeId": st.sampled_from([None, "store-1", "store-9"]),
        "total": cents(1, 25000),
        "lines": lines,
        # 0: now, after the fixture promoted member 0 to Gold; earlier: the tier back then.
        "minutesAgo": st.one_of(st.just(0), st.integers(1, 6 * 24 * 60)),
    }
)


# --- the independent model of the rules ----------------------------------------------------


def expected_awards(model: Model, purchase: dict[str, Any], member: str, gold: bool) -> list:
    """(rule name, points) in chain order, as the rules documented in schema.graphql say."""
    total = Decimal(purchase["total"])
    local = purchase["occurredAt"].astimezone(ZoneInfo(TIME_ZONE))
    day, week = local.date(), local.date() - timedelta(days=local.weekday())
    month = (local.year, local.month)
    multiplier = GOLD_MULTIPLIER if gold else Decimal(1)
    sent = purchase["lines"]

    def matching(skus=(), categories=()) -> list[dict]:
        return [line for line in sent if line["sku"] in skus or line["category"] in categories]

    def amount(chosen: list[dict]) -> Decimal:
        """What the chosen lines cost, never more than the purchase total (a discount)."""
        lines_cost = sum(
            (
                line["quantity"] * Decimal(line["unitPrice"]["amount"])
                for line in chosen
                if "unitPrice" in line
            ),
            Decimal(0),
        )
        return min(lines_cost, total)

    def units(chosen: list[dict]) -> int:
        return sum(line["quantity"] for line in chosen)

    proposals: list[tuple[str, int | None, int | None]] = []  # (name, points or None, room)
    proposals.append(
        (
            "Online doubles",
            floor(total * POINTS_PER_UNIT * multiplier)
            if purchase["channel"] == "ONLINE"
            else None,
            None,
        )
    )
    proposals.append(("Store 9 opening", 40 if purchase["storeId"] == "store-9" else None, None))
    coffee = matching(skus=("COFFEE",))
    proposals.append(("Coffee per cup", min(5 * units(coffee), 30) if coffee else None, None))
    books = matching(categories=("books",))
    proposals.append(("Books per dollar", floor(amount(books) / 2) if books else None, None))
    proposals.append(
        (
            "Big basket",
            25 if total >= 100 else None,
            50 - model.per_day[("Big basket", member, day)],
        )
    )
    proposals.append(
        (
            "Gold boost",
            floor(total * POINTS_PER_UNIT * multiplier / 2) if gold else None,
            None,
        )
    )
    proposals.append(("Welcome", 15 if member not in model.bought else None, None))
    proposals.append(
        (
            "Weekend treat",
            7 if local.weekday() in (5, 6) else None,
            min(
                21 - model.per_member[("Weekend treat", member)],
                30 - model.budget_used["Weekend treat"],
            ),
        )
    )
    tea = matching(skus=("TEA",), categories=("fruit",))
    proposals.append(
        (
            "Tea or fruit",
            2 * units(tea) if tea else None,
            40 - model.per_week[("Tea or fruit", member, week)],
        )
    )
    food = matching(categories=("food",))
    proposals.append(
        (
            "Triple food",
            min(floor(amount(food) * POINTS_PER_UNIT * multiplier * 2), 50) if food else None,
            None,
        )
    )
    proposals.append(
        ("App tenth", floor(total / 10) if purchase["channel"] == "MOBILE_APP" else None, None)
    )
    proposals.append(
        (
            "Store 1 items",
            units(sent) if purchase["storeId"] == "store-1" else None,
            60 - model.per_month[("Store 1 items", member, month)],
        )
    )
    awards = []
    for name, points, room in proposals:
        if points is None:
            continue
        if room is not None:
            points = min(points, max(room, 0))
        if points <= 0:
            continue
        awards.append((name, points))
        if name == "Store 9 opening":
            break
    return awards


def remember(model: Model, purchase: dict[str, Any], member: str, awards: list) -> None:
    local = purchase["occurredAt"].astimezone(ZoneInfo(TIME_ZONE))
    day, week = local.date(), local.date() - timedelta(days=local.weekday())
    month = (local.year, local.month)
    model.bought.add(member)
    model.purchases += 1
    for name, points in awards:
        model.per_day[(name, member, day)] += points
        model.per_week[(name, member, week)] += points
        model.per_month[(name, member, month)] += points
        model.per_member[(name, member)] += points
        model.budget_used[name] += points


# --- the property --------------------------------------------------------------------------


async def held_gold(admin, member: str, at: datetime, gold: str) -> bool:
    """Whether the member held Gold at ``at``, from the tier history (newest first)."""
    data = (
        await admin.data(
            """query($id: ID!) { member(id: $id) { tier { id }
                 tierHistory(first: 100) { edges { node { at from { id } to { id } } } } } }""",
            id=member,
        )
    )["member"]
    changes = [e["node"] for e in data["tierHistory"]["edges"]]
    held = data["tier"]
    for change in changes:  # newest first: the last change at or before ``at`` decides
        if datetime.fromisoformat(change["at"]) <= at:
            held = change["to"]
            break
        held = change["from"]
    return held is not None and held["id"] == gold


def as_pairs(breakdown: list[dict], names: dict[str, str]) -> list[tuple[str | None, int]]:
    return [
        (None if item["rule"] is None else names[item["rule"]["id"]], item["points"])
        for item in breakdown
    ]


@settings(
    max_examples=25,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(batch=st.lists(purchases, min_size=1, max_size=4))
async def test_preview_equals_what_recording_awards(admin, pos, model, batch):
    names = {rule_id: name for name, rule_id in model.rule_ids.items()}
    now = datetime.now(UTC)
    for generated in batch:
        member = model.members[generated["member"]]
        occurred_at = now - timedelta(minutes=generated["minutesAgo"])
        purchase = {**generated, "occurredAt": occurred_at}
        sent = {
            "memberId": member,
            "orderId": f"order-{key()[:16]}",
            "channel": generated["channel"],
            "storeId": generated["storeId"],
            "total": {"amount": generated["total"], "currency": "USD"},
            "lines": generated["lines"],
            "occurredAt": occurred_at.isoformat(),
        }
        before = (await admin.data(BALANCE, id=member))["member"]["points"]
        gold = await held_gold(admin, member, occurred_at, model.gold)

        preview = (await pos.data(PREVIEW, input=sent))["previewPurchase"]
        recorded = (await pos.data(RECORD, input={**sent, "idempotencyKey": key()}))[
            "recordPurchase"
        ]

        assert preview["errors"] == [] and recorded["errors"] == [], (preview, recorded)
        breakdown = recorded["purchase"]["pointsBreakdown"]
        awarded = as_pairs(breakdown, names)
        base, awards = awarded[0][1], awarded[1:]
        expected = expected_awards(model, purchase, member, gold)
        remember(model, purchase, member, awards)

        assert preview["pointsAwarded"] == recorded["pointsAwarded"]
        assert preview["pointsBreakdown"] == breakdown
        assert recorded["purchase"]["pointsAwarded"] == recorded["pointsAwarded"]
        assert sum(points for _, points in awarded) == recorded["pointsAwarded"]
        assert awarded[0][0] is None and breakdown[0]["description"] == "Base points"
        assert all(item["description"] == names[item["rule"]["id"]] for item in breakdown[1:])
        multiplier = GOLD_MULTIPLIER if gold else Decimal(1)
        assert base == floor(Decimal(generated["total"]) * POINTS_PER_UNIT * multiplier)
        assert awards == expected, (generated, awarded)
        after = (await admin.data(BALANCE, id=member))["member"]["points"]
        assert after["available"] - before["available"] == recorded["pointsAwarded"]
        assert after["pending"] == before["pending"] == 0
