"""Earning rules through GraphQL: conditions, effects, chain order, caps, budget, versions,
archive, backdating, previewPurchase, the points breakdown, validation and roles."""

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from tests.helpers import enroll, grant, key, purchase_input

BREAKDOWN = "pointsBreakdown { points description rule { id name } }"
ERRORS = "errors { code field message }"
RULE_FIELDS = "id name version status budgetUsed pointsAwarded startsAt effect { kind value }"
CREATE_RULE = f"""mutation($input: CreateEarningRuleInput!) {{
  createEarningRule(input: $input) {{ earningRule {{ {RULE_FIELDS} }} {ERRORS} }} }}"""
UPDATE_RULE = f"""mutation($input: UpdateEarningRuleInput!) {{
  updateEarningRule(input: $input) {{ earningRule {{ {RULE_FIELDS} }} {ERRORS} }} }}"""
ARCHIVE_RULE = f"""mutation($input: ArchiveEarningRuleInput!) {{
  archiveEarningRule(input: $input) {{ earningRule {{ {RULE_FIELDS} archivedAt }} {ERRORS} }} }}"""
RULE = f"""query($id: ID!) {{ earningRule(id: $id) {{
  {RULE_FIELDS} limits {{ perMemberPerDay }}
  conditions {{ tierIds daysOfWeek hours minTotal channels }}
  versions {{ version validFrom validTo effect {{ value }} }} }} }}"""
RULES = """query($include: Boolean!) {
  earningRules(includeArchived: $include) { edges { node { name status } } } }"""
RECORD = f"""mutation($input: RecordPurchaseInput!) {{ recordPurchase(input: $input) {{
  pointsAwarded purchase {{ id pointsAwarded {BREAKDOWN} }} {ERRORS} }} }}"""
PREVIEW = f"""query($input: PreviewPurchaseInput!) {{
  previewPurchase(input: $input) {{ pointsAwarded {BREAKDOWN} {ERRORS} }} }}"""
PROGRAM = """mutation($input: UpdateProgramInput!) {
  updateProgram(input: $input) { program { timeZone maxBackdateDays } errors { code field } } }"""
REFUND = """mutation($input: RefundPurchaseInput!) {
  refundPurchase(input: $input) { pointsClawedBack errors { code field } } }"""
LEDGER = """query($id: ID!) {
  member(id: $id) { points { available } ledger(first: 20) { edges { node { kind points } } } } }"""
CREATE_TIER = """mutation($input: CreateTierInput!) {
  createTier(input: $input) { tier { id } errors { code } } }"""
SET_TIER = """mutation($input: SetMemberTierInput!) {
  setMemberTier(input: $input) { errors { code } } }"""
ISSUE_TOKEN = """mutation($input: IssueMemberTokenInput!) {
  issueMemberToken(input: $input) { token } }"""

TOKYO = ZoneInfo("Asia/Tokyo")


def ago(**delta: float) -> str:
    return (datetime.now(UTC) - timedelta(**delta)).isoformat()


def local_day(zone: ZoneInfo, days_ago: int, hour: int, weekday: int | None = None) -> datetime:
    """hour:30 in ``zone`` at least ``days_ago`` days back (on ``weekday``, 0 = Monday)."""
    at = datetime.now(zone).replace(hour=hour, minute=30, second=0, microsecond=0)
    at -= timedelta(days=days_ago)
    while weekday is not None and at.weekday() != weekday:
        at -= timedelta(days=1)
    return at


def line(sku: str, price: str, quantity: int = 1, category: str | None = None) -> dict:
    unit_price = {"amount": price, "currency": "USD"}
    return {"sku": sku, "category": category, "quantity": quantity, "unitPrice": unit_price}


def errors_of(payload: dict) -> list[tuple[str, list[str]]]:
    return [(error["code"], error["field"]) for error in payload["errors"]]


async def make_rule(
    admin, kind: str = "FIXED_BONUS", value: str = "10", *, starts: str | None = "", **fields
) -> str:
    """A rule in force from 40 days ago; ``starts=None`` omits startsAt (in force from now).
    ``fields`` go into the input as they are (name, priority, conditions, limits...)."""
    rule = {"name": f"rule {key()[:6]}", "effect": {"kind": kind, "value": value}, **fields}
    if starts is not None:
        rule["startsAt"] = starts or ago(days=40)
    payload = (await admin.data(CREATE_RULE, input=rule))["createEarningRule"]
    assert payload["errors"] == [], payload["errors"]
    return payload["earningRule"]["id"]


async def buy(client, member_id: str, amount: str = "10.00", **overrides) -> dict:
    data = await client.data(RECORD, input=purchase_input(member_id, amount, **overrides))
    payload = data["recordPurchase"]
    assert payload["errors"] == [], payload["errors"]
    assert payload["pointsAwarded"] == payload["purchase"]["pointsAwarded"]
    items = payload["purchase"]["pointsBreakdown"]
    assert sum(item["points"] for item in items) == payload["pointsAwarded"]
    return payload


async def earned(client, member_id: str, amount: str = "10.00", **overrides) -> int:
    return (await buy(client, member_id, amount, **overrides))["pointsAwarded"]


def preview_input(member_id: str, amount: str = "10.00", **overrides) -> dict:
    given = purchase_input(member_id, amount, **overrides)
    del given["idempotencyKey"]
    return given


async def preview(client, member_id: str, amount: str = "10.00", **overrides) -> dict:
    given = preview_input(member_id, amount, **overrides)
    return (await client.data(PREVIEW, input=given))["previewPurchase"]


def parts(payload: dict) -> list[tuple[str, int]]:
    items = payload.get("pointsBreakdown") or payload["purchase"]["pointsBreakdown"]
    return [(item["description"], item["points"]) for item in items]


async def set_program(admin, **fields) -> None:
    payload = (await admin.data(PROGRAM, input=fields))["updateProgram"]
    assert payload["errors"] == [], payload["errors"]


async def rule_view(admin, rule_id: str) -> dict:
    return (await admin.data(RULE, id=rule_id))["earningRule"]


async def refund(pos, purchase_id: str, amount: str) -> None:
    money = {"amount": amount, "currency": "USD"}
    data = await pos.data(
        REFUND, input={"idempotencyKey": key(), "purchaseId": purchase_id, "amount": money}
    )
    assert data["refundPurchase"]["errors"] == [], data["refundPurchase"]["errors"]


async def gold_member(admin, pos) -> tuple[str, str]:
    """A member moved now from Bronze (×1) to Gold (×2); returns (member id, Gold's id)."""
    tier_ids = []
    for name, rank, threshold, multiplier in (("Bronze", 1, 0, "1"), ("Gold", 2, 1000, "2")):
        tier = {"name": name, "rank": rank, "threshold": threshold, "multiplier": multiplier}
        tier_ids.append((await admin.data(CREATE_TIER, input=tier))["createTier"]["tier"]["id"])
    member_id = await enroll(pos)
    change = {"memberId": member_id, "tierId": tier_ids[1], "reason": "test"}
    assert (await admin.data(SET_TIER, input=change))["setMemberTier"]["errors"] == []
    return member_id, tier_ids[1]


# Effects alone ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "value", "amount", "lines", "bonus"),
    [
        ("MULTIPLY", "1.5", "25.00", None, 12),  # floor(25 × 0.5)
        ("MULTIPLY", "3", "9.99", None, 19),  # floor(9.99 × 2): the base is not floored first
        ("FIXED_BONUS", "10.9", "25.00", None, 10),
        ("POINTS_PER_UNIT", "2.5", "25.00", [line("A", "5.00", 2), line("B", "5.00", 3)], 12),
        ("POINTS_PER_CURRENCY", "0.1", "25.55", None, 2),
    ],
    ids=["multiply-1.5", "multiply-3", "fixed", "per-unit", "per-currency"],
)
async def test_each_effect_alone(admin, pos, kind, value, amount, lines, bonus):
    await make_rule(admin, kind, value, name="Promo")
    member_id = await enroll(pos)
    payload = await buy(pos, member_id, amount, lines=lines)
    base = int(float(amount))
    assert parts(payload) == [("Base points", base), ("Promo", bonus)]
    assert payload["pointsAwarded"] == base + bonus


async def test_points_per_unit_and_tier_feed_multiply_but_not_per_currency(admin, pos):
    await set_program(admin, pointsPerUnit="2")
    member_id, _ = await gold_member(admin, pos)
    await make_rule(admin, "MULTIPLY", "1.5", name="Half again", priority=1)
    await make_rule(admin, "POINTS_PER_CURRENCY", "1", name="Per dollar")
    payload = await buy(pos, member_id, "10.00")
    # base = 10 × 2 (pointsPerUnit) × 2 (Gold) = 40; ×1.5 adds 20; 1 per currency unit adds 10
    assert parts(payload) == [("Base points", 40), ("Half again", 20), ("Per dollar", 10)]


# Conditions alone ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("conditions", "hit", "misses"),
    [
        (
            {"channels": ["ONLINE", "MOBILE_APP"]},
            {"channel": "MOBILE_APP"},
            [{"channel": "IN_STORE"}],
        ),
        ({"storeIds": ["store-9"]}, {"storeId": "store-9"}, [{"storeId": "x"}, {"storeId": None}]),
        ({"minTotal": "50.00"}, {"amount": "50.00"}, [{"amount": "49.99"}]),
    ],
    ids=["channel", "store", "min-total"],
)
async def test_purchase_conditions(admin, pos, conditions, hit, misses):
    await make_rule(admin, "FIXED_BONUS", "100", conditions=conditions)
    member_id = await enroll(pos)
    for miss in misses:
        payload = await buy(pos, member_id, **miss)
        assert parts(payload) == [("Base points", payload["pointsAwarded"])]
    assert parts(await buy(pos, member_id, **hit))[1][1] == 100


async def test_tier_condition_uses_the_tier_held_at_occurred_at(admin, pos):
    member_id, gold = await gold_member(admin, pos)
    await make_rule(admin, "MULTIPLY", "2", name="Gold double", conditions={"tierIds": [gold]})
    assert parts(await buy(pos, member_id)) == [("Base points", 20), ("Gold double", 20)]
    # Two days ago the member was not Gold yet: ×1 base and no Gold rule.
    assert parts(await buy(pos, member_id, occurredAt=ago(days=2))) == [("Base points", 10)]
    assert await earned(pos, await enroll(pos)) == 10


async def test_days_of_week_are_counted_in_the_program_time_zone(admin, pos):
    await make_rule(admin, "FIXED_BONUS", "7", conditions={"daysOfWeek": ["MONDAY"]})
    member_id = await enroll(pos)
    monday = local_day(TOKYO, 2, hour=2, weekday=0)  # Sunday 17:30 in UTC
    assert await earned(pos, member_id, occurredAt=monday.isoformat()) == 10  # program in UTC
    await set_program(admin, timeZone="Asia/Tokyo")
    assert await earned(pos, member_id, occurredAt=monday.isoformat()) == 17
    in_utc = monday.astimezone(UTC).isoformat()
    assert await earned(pos, member_id, occurredAt=in_utc) == 17, "the offset sent is irrelevant"
    tuesday = (monday + timedelta(days=1)).isoformat()
    assert await earned(pos, member_id, occurredAt=tuesday) == 10


async def test_hours_are_counted_in_the_program_time_zone(admin, pos):
    await set_program(admin, timeZone="America/New_York")
    await make_rule(admin, "FIXED_BONUS", "7", conditions={"hours": [23]})
    member_id = await enroll(pos)
    late = local_day(ZoneInfo("America/New_York"), 2, hour=23)  # 03:30 or 04:30 UTC
    assert await earned(pos, member_id, occurredAt=late.astimezone(UTC).isoformat()) == 17
    earlier = (late - timedelta(hours=1)).isoformat()
    assert await earned(pos, member_id, occurredAt=earlier) == 10


async def test_first_purchase_condition(admin, pos):
    await make_rule(admin, "FIXED_BONUS", "50", name="Welcome", conditions={"firstPurchase": True})
    await make_rule(admin, "FIXED_BONUS", "5", name="Again", conditions={"firstPurchase": False})
    member_id = await enroll(pos)
    assert parts(await buy(pos, member_id)) == [("Base points", 10), ("Welcome", 50)]
    assert parts(await buy(pos, member_id)) == [("Base points", 10), ("Again", 5)]


async def test_sku_condition_uses_the_matching_lines_only(admin, pos):
    await make_rule(admin, "MULTIPLY", "2", name="A double", conditions={"skus": ["A"]})
    await make_rule(admin, "POINTS_PER_UNIT", "3", name="A units", conditions={"skus": ["A"]})
    member_id = await enroll(pos)
    payload = await buy(pos, member_id, "25.00", lines=[line("A", "10.00", 2), line("B", "5.00")])
    assert parts(payload) == [("Base points", 25), ("A double", 20), ("A units", 6)]
    other_sku = await buy(pos, member_id, "5.00", lines=[line("B", "5.00")])
    assert parts(other_sku) == [("Base points", 5)]
    assert await earned(pos, member_id, "5.00") == 5, "no lines: a line rule does not apply"


async def test_category_condition(admin, pos):
    await make_rule(
        admin, "POINTS_PER_CURRENCY", "0.5", name="Shoes", conditions={"categories": ["shoes"]}
    )
    member_id = await enroll(pos)
    lines = [line("S1", "30.00", 1, "shoes"), line("S2", "5.50", 1, "shoes"), line("H", "9.00")]
    # floor(0.5 × 35.50)
    assert parts(await buy(pos, member_id, "44.50", lines=lines)) == [
        ("Base points", 44),
        ("Shoes", 17),
    ]


async def test_event_rules_do_not_reward_purchases(admin, pos):
    await make_rule(admin, "FIXED_BONUS", "25", conditions={"eventType": "app_installed"})
    assert await earned(pos, await enroll(pos)) == 10


# Combinations, chain order, exclusivity ----------------------------------------------------


async def test_sku_or_category_and_every_other_condition_must_hold(admin, pos):
    conditions = {"skus": ["A"], "categories": ["shoes"], "channels": ["ONLINE"], "minTotal": "20"}
    await make_rule(admin, "MULTIPLY", "2", name="Online shoes", conditions=conditions)
    member_id = await enroll(pos)
    lines = [line("A", "10.00", 1, "misc"), line("B", "5.00", 2, "shoes"), line("C", "3.00")]
    online = await buy(pos, member_id, "23.00", lines=lines, channel="ONLINE")
    assert parts(online) == [("Base points", 23), ("Online shoes", 20)]
    assert await earned(pos, member_id, "23.00", lines=lines, channel="IN_STORE") == 23
    small = [line("A", "10.00"), line("C", "9.00")]
    assert await earned(pos, member_id, "19.00", lines=small, channel="ONLINE") == 19


async def test_rules_stack_in_priority_order_then_oldest_first(admin, pos):
    older = await make_rule(admin, "FIXED_BONUS", "1", name="Older")
    await make_rule(admin, "FIXED_BONUS", "2", name="Newer")
    await make_rule(admin, "FIXED_BONUS", "3", name="Urgent", priority=5)
    await make_rule(admin, "FIXED_BONUS", "4", name="Late", priority=-1)
    payload = await buy(pos, await enroll(pos))
    expected = [("Base points", 10), ("Urgent", 3), ("Older", 1), ("Newer", 2), ("Late", 4)]
    assert parts(payload) == expected
    assert payload["purchase"]["pointsBreakdown"][2]["rule"]["id"] == older


async def test_each_rule_is_floored_on_its_own(admin, pos):
    await make_rule(admin, "MULTIPLY", "1.5", name="One")
    await make_rule(admin, "MULTIPLY", "1.5", name="Two")
    # 9 × 0.5 = 4.5 per rule: 4 + 4, not floor(9)
    payload = await buy(pos, await enroll(pos), "9.00")
    assert parts(payload) == [("Base points", 9), ("One", 4), ("Two", 4)]


async def test_an_exclusive_rule_that_awards_ends_the_chain(admin, pos):
    await make_rule(admin, "FIXED_BONUS", "3", name="Before", priority=20)
    online = {"channels": ["ONLINE"]}
    await make_rule(
        admin, "FIXED_BONUS", "100", name="Web", priority=15, exclusive=True, conditions=online
    )
    await make_rule(admin, "FIXED_BONUS", "5", name="Exclusive", priority=10, exclusive=True)
    await make_rule(admin, "FIXED_BONUS", "7", name="After", priority=5)
    member_id = await enroll(pos)
    in_store = await buy(pos, member_id)
    assert parts(in_store) == [("Base points", 10), ("Before", 3), ("Exclusive", 5)], (
        "an exclusive rule whose condition fails does not end the chain"
    )
    web = await buy(pos, member_id, channel="ONLINE")
    assert parts(web) == [("Base points", 10), ("Before", 3), ("Web", 100)]


async def test_an_exclusive_rule_whose_cap_is_used_up_does_not_end_the_chain(admin, pos):
    once = {"perMemberTotal": 5}
    await make_rule(admin, "FIXED_BONUS", "5", name="Once", exclusive=True, limits=once)
    await make_rule(admin, "FIXED_BONUS", "7", name="After")
    member_id = await enroll(pos)
    assert parts(await buy(pos, member_id)) == [("Base points", 10), ("Once", 5)]
    assert parts(await buy(pos, member_id)) == [("Base points", 10), ("After", 7)]


# Caps and budget ----------------------------------------------------------------------------


async def test_per_purchase_cap(admin, pos):
    await make_rule(admin, "POINTS_PER_UNIT", "10", name="Units", limits={"perPurchase": 25})
    member_id = await enroll(pos)
    five = await buy(pos, member_id, "5.00", lines=[line("A", "1.00", 5)])
    assert parts(five) == [("Base points", 5), ("Units", 25)]
    two = await buy(pos, member_id, "2.00", lines=[line("A", "1.00", 2)])
    assert parts(two) == [("Base points", 2), ("Units", 20)]


async def test_daily_cap_counts_the_local_day_of_occurred_at(admin, pos):
    """Tokyo days: 00:30 and 23:30 on day D are one local day but two UTC days, and 00:30 on
    D+1 shares its UTC day with 23:30 on D."""
    await set_program(admin, timeZone="Asia/Tokyo")
    rule_id = await make_rule(admin, "FIXED_BONUS", "30", limits={"perMemberPerDay": 50})
    member_id, other = await enroll(pos), await enroll(pos)
    day_start = local_day(TOKYO, 3, hour=0)
    day_end, next_day = day_start + timedelta(hours=23), day_start + timedelta(days=1)
    assert await earned(pos, member_id, occurredAt=day_start.isoformat()) == 40
    assert await earned(pos, member_id, occurredAt=day_end.isoformat()) == 30, "20 left"
    assert await earned(pos, member_id, occurredAt=day_end.isoformat()) == 10, "cap reached"
    assert await earned(pos, member_id, occurredAt=next_day.isoformat()) == 40
    assert await earned(pos, other, occurredAt=day_end.isoformat()) == 40, "per member"
    assert (await rule_view(admin, rule_id))["pointsAwarded"] == 30 + 20 + 30 + 30


async def test_weekly_cap_starts_on_monday(admin, pos):
    await make_rule(admin, "FIXED_BONUS", "30", limits={"perMemberPerWeek": 40})
    member_id = await enroll(pos)
    monday = local_day(ZoneInfo("UTC"), 2, hour=12, weekday=0)
    sunday, tuesday = monday - timedelta(days=1), monday + timedelta(days=1)
    assert await earned(pos, member_id, occurredAt=sunday.isoformat()) == 40
    assert await earned(pos, member_id, occurredAt=monday.isoformat()) == 40, "a new week"
    assert await earned(pos, member_id, occurredAt=tuesday.isoformat()) == 20


async def test_monthly_cap_resets_on_the_first_and_the_total_cap_never(admin, pos):
    await set_program(admin, maxBackdateDays=60)
    await make_rule(admin, name="Month", starts=ago(days=70), limits={"perMemberPerMonth": 40})
    await make_rule(admin, name="Ever", starts=ago(days=70), limits={"perMemberTotal": 25})
    first = datetime.now(UTC).replace(day=1, hour=0, minute=30, second=0, microsecond=0)
    if first > datetime.now(UTC) - timedelta(hours=2):
        first = (first - timedelta(days=1)).replace(day=1)
    member_id = await enroll(pos)
    when = [first - timedelta(hours=1), first, first + timedelta(hours=1)]
    awarded = [parts(await buy(pos, member_id, occurredAt=at.isoformat())) for at in when]
    assert awarded == [
        [("Base points", 10), ("Month", 10), ("Ever", 10)],
        [("Base points", 10), ("Month", 10), ("Ever", 10)],
        [("Base points", 10), ("Month", 10), ("Ever", 5)],
    ]


async def test_budget_awards_what_is_left_then_nothing(admin, pos):
    rule_id = await make_rule(admin, "FIXED_BONUS", "30", name="Launch", limits={"budget": 50})
    first, second, third = await enroll(pos), await enroll(pos), await enroll(pos)
    assert parts(await buy(pos, first)) == [("Base points", 10), ("Launch", 30)]
    assert parts(await buy(pos, second)) == [("Base points", 10), ("Launch", 20)]
    assert parts(await buy(pos, third)) == [("Base points", 10)]
    rule = await rule_view(admin, rule_id)
    assert (rule["budgetUsed"], rule["pointsAwarded"]) == (50, 50)


async def test_a_refund_frees_the_daily_cap_in_proportion(admin, pos):
    """Chosen behaviour: a refund frees floor(rule award × points taken back / points awarded)
    of the rule's caps, in the periods of the purchase's occurredAt."""
    rule_id = await make_rule(admin, "FIXED_BONUS", "30", limits={"perMemberPerDay": 50})
    member_id = await enroll(pos)
    first = await buy(pos, member_id, "10.00")
    assert first["pointsAwarded"] == 40
    assert await earned(pos, member_id) == 30, "20 left today"
    await refund(pos, first["purchase"]["id"], "5.00")  # half: frees floor(30 × 1/2) = 15
    assert (await rule_view(admin, rule_id))["pointsAwarded"] == 35
    assert await earned(pos, member_id) == 25
    assert await earned(pos, member_id) == 10


async def test_a_refund_gives_the_budget_back(admin, pos):
    rule_id = await make_rule(admin, "FIXED_BONUS", "30", limits={"budget": 50})
    first, second, third = await enroll(pos), await enroll(pos), await enroll(pos)
    bought = await buy(pos, first)
    await buy(pos, second)
    await refund(pos, bought["purchase"]["id"], "10.00")
    rule = await rule_view(admin, rule_id)
    assert (rule["budgetUsed"], rule["pointsAwarded"]) == (20, 20)
    assert await earned(pos, third) == 40


async def test_a_refund_of_points_already_spent_frees_neither_budget_nor_cap(admin, pos):
    """Only points actually taken back free a rule: the campaign paid what was spent."""
    rule_id = await make_rule(
        admin, "FIXED_BONUS", "100", limits={"budget": 100, "perMemberPerDay": 100}
    )
    spender, other = await enroll(pos), await enroll(pos)
    bought = await buy(pos, spender)
    assert bought["pointsAwarded"] == 110
    await grant(admin, spender, -110)
    await refund(pos, bought["purchase"]["id"], "10.00")
    rule = await rule_view(admin, rule_id)
    assert (rule["budgetUsed"], rule["pointsAwarded"]) == (100, 100)
    assert await earned(pos, other) == 10, "the budget is spent"
    assert await earned(pos, spender) == 10, "the day's cap is spent"


async def test_matching_lines_never_count_above_the_purchase_total(admin, pos):
    await make_rule(admin, "POINTS_PER_CURRENCY", "1", conditions={"skus": ["TV"]})
    member_id = await enroll(pos)
    discounted = await buy(pos, member_id, "80.00", lines=[line("TV", "100.00")])
    assert parts(discounted)[1][1] == 80


# Versions, windows, archive, backdating ----------------------------------------------------


async def test_an_edit_applies_from_now_and_earlier_purchases_keep_the_old_version(admin, pos):
    rule_id = await make_rule(admin, "MULTIPLY", "2", name="Double", starts=ago(days=14))
    effect = {"kind": "MULTIPLY", "value": "3"}
    updated = await admin.data(
        UPDATE_RULE, input={"id": rule_id, "name": "Triple", "effect": effect}
    )
    assert updated["updateEarningRule"]["errors"] == []
    assert updated["updateEarningRule"]["earningRule"]["version"] == 2
    member_id = await enroll(pos)
    week_ago = await buy(pos, member_id, "10.00", occurredAt=ago(days=7))
    assert parts(week_ago) == [("Base points", 10), ("Double", 10)]
    assert parts(await buy(pos, member_id, "10.00")) == [("Base points", 10), ("Triple", 20)]
    versions = (await rule_view(admin, rule_id))["versions"]
    assert [(v["version"], v["effect"]["value"]) for v in versions] == [(1, "2"), (2, "3")]
    assert versions[0]["validFrom"] is None
    assert versions[0]["validTo"] == versions[1]["validFrom"] is not None
    assert versions[1]["validTo"] is None
    # Before the rule's startsAt (two weeks ago): base only.
    assert await earned(pos, member_id, "10.00", occurredAt=ago(days=15)) == 10


async def test_an_edit_keeps_what_it_does_not_send(admin, pos):
    _, gold = await gold_member(admin, pos)
    conditions = {"tierIds": [gold], "daysOfWeek": ["MONDAY", "FRIDAY"], "hours": [0, 23]}
    conditions |= {"minTotal": "5.5", "channels": ["IN_STORE"]}
    rule_id = await make_rule(admin, conditions=conditions, limits={"perMemberPerDay": 9})
    before = await rule_view(admin, rule_id)
    payload = await admin.data(UPDATE_RULE, input={"id": rule_id, "name": "Renamed"})
    assert payload["updateEarningRule"]["errors"] == []
    after = await rule_view(admin, rule_id)
    assert (after["name"], after["version"]) == ("Renamed", 2)
    for field in ("conditions", "limits", "effect", "startsAt"):
        assert after[field] == before[field], field
    assert after["conditions"]["tierIds"] == [gold]
    assert after["conditions"]["daysOfWeek"] == ["MONDAY", "FRIDAY"]


DELETE_TIER = """mutation($input: DeleteTierInput!) {
  deleteTier(input: $input) { errors { code field } } }"""


async def test_a_tier_named_by_a_live_rule_cannot_be_deleted_until_the_rule_is_archived(admin, pos):
    _, gold = await gold_member(admin, pos)
    bronze = (await admin.data("{ tiers { id } }"))["tiers"][0]["id"]
    rule_id = await make_rule(admin, conditions={"tierIds": [gold, bronze]})
    refused = await admin.data(DELETE_TIER, input={"id": gold, "moveMembersTo": bronze})
    assert refused["deleteTier"]["errors"] == [{"code": "INVALID", "field": ["id"]}]
    renamed = await admin.data(UPDATE_RULE, input={"id": rule_id, "name": "Renamed"})
    assert errors_of(renamed["updateEarningRule"]) == []
    await admin.data(ARCHIVE_RULE, input={"id": rule_id})
    deleted = await admin.data(DELETE_TIER, input={"id": gold, "moveMembersTo": bronze})
    assert deleted["deleteTier"]["errors"] == []


async def test_the_window_starts_now_by_default_and_ends_before_ends_at(admin, pos):
    rule_id = await make_rule(admin, "FIXED_BONUS", "5", name="Now", starts=None)
    assert (await rule_view(admin, rule_id))["startsAt"] is not None
    await make_rule(admin, name="Ended", starts=ago(days=10), endsAt=ago(days=3))
    await make_rule(admin, name="Scheduled", starts=ago(days=-1))
    member_id = await enroll(pos)
    assert parts(await buy(pos, member_id)) == [("Base points", 10), ("Now", 5)]
    assert parts(await buy(pos, member_id, occurredAt=ago(hours=1))) == [("Base points", 10)]
    five_days_ago = await buy(pos, member_id, occurredAt=ago(days=5))
    assert parts(five_days_ago) == [("Base points", 10), ("Ended", 10)]
    listed = (await admin.data(RULES, include=False))["earningRules"]["edges"]
    assert [(e["node"]["name"], e["node"]["status"]) for e in listed] == [
        ("Scheduled", "SCHEDULED"),
        ("Ended", "ENDED"),
        ("Now", "ACTIVE"),
    ]


async def test_archive_stops_new_purchases_but_earlier_ones_keep_the_rule(admin, pos):
    rule_id = await make_rule(admin, "FIXED_BONUS", "10", name="Gone", starts=ago(days=1))
    before_archive = ago(minutes=1)
    archived = (await admin.data(ARCHIVE_RULE, input={"id": rule_id}))["archiveEarningRule"]
    assert archived["errors"] == []
    assert archived["earningRule"]["status"] == "ARCHIVED"
    member_id = await enroll(pos)
    assert parts(await buy(pos, member_id)) == [("Base points", 10)]
    earlier = await buy(pos, member_id, occurredAt=before_archive)
    assert parts(earlier) == [("Base points", 10), ("Gone", 10)]
    assert (await admin.data(RULES, include=False))["earningRules"]["edges"] == []
    listed = (await admin.data(RULES, include=True))["earningRules"]["edges"]
    assert [e["node"]["status"] for e in listed] == ["ARCHIVED"]
    refused = await admin.data(UPDATE_RULE, input={"id": rule_id, "name": "Back"})
    assert errors_of(refused["updateEarningRule"]) == [("INVALID", ["id"])]
    assert (await rule_view(admin, rule_id))["name"] == "Gone"


async def test_occurred_at_older_than_max_backdate_days_is_refused(admin, pos):
    member_id = await enroll(pos)
    old = ago(days=31)
    recorded = await pos.data(RECORD, input=purchase_input(member_id, occurredAt=old))
    assert errors_of(recorded["recordPurchase"]) == [("INVALID", ["occurredAt"])]
    previewed = await pos.data(PREVIEW, input=preview_input(member_id, occurredAt=old))
    assert errors_of(previewed["previewPurchase"]) == [("INVALID", ["occurredAt"])]
    assert await earned(pos, member_id, occurredAt=ago(days=29)) == 10
    await set_program(admin, maxBackdateDays=5)
    refused = await pos.data(RECORD, input=purchase_input(member_id, occurredAt=ago(days=6)))
    assert errors_of(refused["recordPurchase"]) == [("INVALID", ["occurredAt"])]
    assert await earned(pos, member_id, occurredAt=ago(days=4)) == 10
    assert len((await admin.data(LEDGER, id=member_id))["member"]["ledger"]["edges"]) == 2


async def test_program_time_zone_must_be_iana(admin):
    data = await admin.data(PROGRAM, input={"timeZone": "Mars/Olympus"})
    assert data["updateProgram"]["errors"] == [{"code": "INVALID", "field": ["timeZone"]}]
    await set_program(admin, timeZone="Europe/Paris")
    program = await admin.data("{ program { timeZone maxBackdateDays } }")
    assert program["program"] == {"timeZone": "Europe/Paris", "maxBackdateDays": 30}


# previewPurchase, breakdown, ledger ---------------------------------------------------------


async def test_preview_equals_what_record_then_awards(admin, pos):
    daily = await make_rule(
        admin, "FIXED_BONUS", "30", name="Daily", limits={"perMemberPerDay": 50}
    )
    await make_rule(admin, "FIXED_BONUS", "50", name="Welcome", conditions={"firstPurchase": True})
    socks = {"skus": ["SOCK"]}
    await make_rule(admin, "POINTS_PER_UNIT", "2", name="Socks", priority=3, conditions=socks)
    member_id = await enroll(pos)
    cases = [
        {"amount": "10.00"},
        {"amount": "12.34", "lines": [line("SOCK", "2.00", 3), line("HAT", "6.34")]},
        {"amount": "10.00", "channel": "ONLINE"},
        {"amount": "1.00", "occurredAt": ago(days=2)},
    ]
    for case in cases:
        first, again = await preview(pos, member_id, **case), await preview(pos, member_id, **case)
        assert first == again, "a preview changes nothing"
        recorded = await buy(pos, member_id, **case)
        assert first["errors"] == []
        assert first["pointsAwarded"] == recorded["pointsAwarded"]
        assert first["pointsBreakdown"] == recorded["purchase"]["pointsBreakdown"]
    assert parts(first) == [("Base points", 1), ("Daily", 30)]
    assert (await rule_view(admin, daily))["pointsAwarded"] == 30 + 20 + 0 + 30


async def test_preview_writes_no_points_and_uses_no_cap(admin, pos):
    rule_id = await make_rule(admin, "FIXED_BONUS", "30", limits={"perMemberTotal": 30})
    member_id = await enroll(pos)
    for _ in range(3):
        assert (await preview(pos, member_id))["pointsAwarded"] == 40
    member = (await admin.data(LEDGER, id=member_id))["member"]
    assert member == {"points": {"available": 0}, "ledger": {"edges": []}}
    rule = await rule_view(admin, rule_id)
    assert (rule["pointsAwarded"], rule["budgetUsed"]) == (0, 0)
    assert await earned(pos, member_id) == 40


async def test_breakdown_and_one_bonus_ledger_entry_per_rule(admin, pos):
    double = await make_rule(admin, "MULTIPLY", "2", name="Double", priority=1)
    welcome = await make_rule(admin, "FIXED_BONUS", "5", name="Welcome")
    await make_rule(admin, name="Web", conditions={"channels": ["ONLINE"]})
    member_id = await enroll(pos)
    payload = await buy(pos, member_id, "10.00")
    assert payload["pointsAwarded"] == 25
    assert payload["purchase"]["pointsBreakdown"] == [
        {"points": 10, "description": "Base points", "rule": None},
        {"points": 10, "description": "Double", "rule": {"id": double, "name": "Double"}},
        {"points": 5, "description": "Welcome", "rule": {"id": welcome, "name": "Welcome"}},
    ]
    member = (await admin.data(LEDGER, id=member_id))["member"]
    entries = [(e["node"]["kind"], e["node"]["points"]) for e in member["ledger"]["edges"]]
    assert sorted(entries) == [("BONUS", 5), ("BONUS", 10), ("EARN", 10)]
    assert entries[-1] == ("EARN", 10), "newest first: the EARN entry was written first"
    assert member["points"]["available"] == 25


async def test_a_purchase_with_no_base_points_can_still_earn_a_bonus(admin, pos):
    await make_rule(admin, "FIXED_BONUS", "10", name="Visit")
    member_id = await enroll(pos)
    assert parts(await buy(pos, member_id, "0.50")) == [("Base points", 0), ("Visit", 10)]
    member = (await admin.data(LEDGER, id=member_id))["member"]
    assert [e["node"]["kind"] for e in member["ledger"]["edges"]] == ["BONUS"]


# Validation ---------------------------------------------------------------------------------


def effect(kind: str, value: str) -> dict:
    return {"effect": {"kind": kind, "value": value}}


def event(**conditions) -> dict:
    return {"conditions": {"eventType": "review", **conditions}}


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"startsAt": "2030-01-02T00:00:00Z", "endsAt": "2030-01-01T00:00:00Z"}, ["endsAt"]),
        ({"startsAt": "2030-01-01T00:00:00Z", "endsAt": "2030-01-01T00:00:00Z"}, ["endsAt"]),
        (effect("MULTIPLY", "1"), ["effect", "value"]),
        (effect("MULTIPLY", "0.5"), ["effect", "value"]),
        (effect("FIXED_BONUS", "0"), ["effect", "value"]),
        (effect("POINTS_PER_UNIT", "-1"), ["effect", "value"]),
        (effect("POINTS_PER_CURRENCY", "0"), ["effect", "value"]),
        ({"conditions": {"tierIds": ["VGllcjo5OTk5"]}}, ["conditions", "tierIds"]),  # Tier:9999
        ({"conditions": {"channels": []}}, ["conditions", "channels"]),
        ({"conditions": {"skus": []}}, ["conditions", "skus"]),
        ({"conditions": {"daysOfWeek": []}}, ["conditions", "daysOfWeek"]),
        ({"conditions": {"hours": [24]}}, ["conditions", "hours"]),
        ({"conditions": {"hours": [-1]}}, ["conditions", "hours"]),
        ({"limits": {"perPurchase": 0}}, ["limits", "perPurchase"]),
        ({"limits": {"perMemberPerDay": -5}}, ["limits", "perMemberPerDay"]),
        ({"limits": {"budget": 0}}, ["limits", "budget"]),
        ({**effect("MULTIPLY", "2"), **event()}, ["effect", "kind"]),
        (event(skus=["A"]), ["conditions", "skus"]),
        (event(channels=["ONLINE"]), ["conditions", "channels"]),
        (event(minTotal="5"), ["conditions", "minTotal"]),
    ],
)
async def test_bad_rules_are_refused_and_nothing_is_written(admin, fields, field):
    rule = {"name": "Bad", **effect("FIXED_BONUS", "5"), **fields}
    payload = (await admin.data(CREATE_RULE, input=rule))["createEarningRule"]
    assert payload["earningRule"] is None
    assert errors_of(payload) == [("INVALID", field)]
    assert (await admin.data(RULES, include=True))["earningRules"]["edges"] == []


async def test_every_bad_field_is_reported_at_once(admin):
    # given a rule with six bad fields
    rule = {
        "name": " ",
        "priority": 2_000_000,
        **effect("MULTIPLY", "1"),
        "conditions": {"hours": [24], "skus": []},
        "limits": {"perPurchase": 0},
    }
    # when it is created
    payload = (await admin.data(CREATE_RULE, input=rule))["createEarningRule"]
    # then each is named, in the input's order, and nothing is written
    assert errors_of(payload) == [
        ("INVALID", ["name"]),
        ("INVALID", ["priority"]),
        ("INVALID", ["conditions", "hours"]),
        ("INVALID", ["conditions", "skus"]),
        ("INVALID", ["effect", "value"]),
        ("INVALID", ["limits", "perPurchase"]),
    ]
    assert payload["errors"][2]["message"] == "Must be between 0 and 23."
    assert (await admin.data(RULES, include=True))["earningRules"]["edges"] == []


async def test_an_event_rule_reports_every_condition_it_cannot_have(admin):
    rule = {"name": "Bad", **effect("MULTIPLY", "2"), **event(skus=["A"], minTotal="5")}
    payload = (await admin.data(CREATE_RULE, input=rule))["createEarningRule"]
    assert errors_of(payload) == [
        ("INVALID", ["effect", "kind"]),
        ("INVALID", ["conditions", "minTotal"]),
        ("INVALID", ["conditions", "skus"]),
    ]


async def test_a_bad_update_is_refused_and_keeps_the_version(admin, pos):
    rule_id = await make_rule(admin, "MULTIPLY", "2", name="Double")
    changes = {"id": rule_id, **effect("MULTIPLY", "1"), "name": "", "limits": {"budget": 0}}
    payload = (await admin.data(UPDATE_RULE, input=changes))["updateEarningRule"]
    assert errors_of(payload) == [
        ("INVALID", ["name"]),
        ("INVALID", ["effect", "value"]),
        ("INVALID", ["limits", "budget"]),
    ]
    rule = await rule_view(admin, rule_id)
    assert (rule["version"], rule["effect"]["value"]) == (1, "2")
    assert await earned(pos, await enroll(pos)) == 20


# Roles --------------------------------------------------------------------------------------


def forbidden(body: dict) -> bool:
    return [error["extensions"]["code"] for error in body["errors"]] == ["FORBIDDEN"]


async def test_only_admins_manage_and_list_rules(admin, pos, app_client):
    rule_id = await make_rule(admin, name="Kept")
    mine = {"name": "Mine", **effect("MULTIPLY", "9")}
    for caller in (pos, app_client):
        assert forbidden(await caller(CREATE_RULE, input=mine))
        assert forbidden(await caller(UPDATE_RULE, input={"id": rule_id, "name": "Mine"}))
        assert forbidden(await caller(ARCHIVE_RULE, input={"id": rule_id}))
        assert forbidden(await caller(RULES, include=True))
        assert forbidden(await caller(RULE, id=rule_id))
    rules = (await admin.data(RULES, include=True))["earningRules"]["edges"]
    assert rules == [{"node": {"name": "Kept", "status": "ACTIVE"}}]
    assert (await rule_view(admin, rule_id))["version"] == 1


async def test_preview_roles(admin, pos, app_client):
    await make_rule(admin)
    member_id, other_id = await enroll(pos), await enroll(pos)
    issued = await app_client.data(ISSUE_TOKEN, input={"memberId": member_id})
    member = app_client.as_(issued["issueMemberToken"]["token"])
    for caller in (admin, pos, member):
        assert (await preview(caller, member_id))["pointsAwarded"] == 20
    assert forbidden(await member(PREVIEW, input=preview_input(other_id)))
    # by externalId the answer is FORBIDDEN whether or not the member exists: nothing leaks
    for external_id in ("no-such-member", f"m-{key()[:12]}"):
        by_external = {**preview_input(member_id), "memberExternalId": external_id}
        del by_external["memberId"]
        assert forbidden(await member(PREVIEW, input=by_external))
    assert forbidden(await app_client(PREVIEW, input=preview_input(member_id)))
    assert forbidden(await member(RECORD, input=purchase_input(member_id)))


async def test_rules_page_newest_first(admin):
    for name in ("One", "Two", "Three"):
        await make_rule(admin, name=name)
    page = """query($after: String) { earningRules(first: 2, after: $after) {
      edges { node { name } } pageInfo { hasNextPage endCursor } } }"""
    first = (await admin.data(page))["earningRules"]
    assert [e["node"]["name"] for e in first["edges"]] == ["Three", "Two"]
    assert first["pageInfo"]["hasNextPage"] is True
    rest = (await admin.data(page, after=first["pageInfo"]["endCursor"]))["earningRules"]
    assert [e["node"]["name"] for e in rest["edges"]] == ["One"]
    assert rest["pageInfo"]["hasNextPage"] is False
    assert (await admin.data(RULE, id="RWFybmluZ1J1bGU6OTk5"))["earningRule"] is None
