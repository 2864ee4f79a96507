"""Member events: recordEvent and the event rules that reward it (caps and budgets as for
purchases), and the birthday-bonus job, run through the CLI as cron would."""

import asyncio
import json
from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest

from tests.cli import arun_cli
from tests.helpers import LONE_SURROGATE, enroll, key, post_with_lone_surrogate, record

CREATE_RULE = """
mutation($input: CreateEarningRuleInput!) {
  createEarningRule(input: $input) {
    earningRule { id name budgetUsed pointsAwarded conditions { eventType } }
    errors { code field message }
  }
}
"""

UPDATE_RULE = """
mutation($input: UpdateEarningRuleInput!) {
  updateEarningRule(input: $input) { earningRule { id version } errors { code field } }
}
"""

RULE = "query($id: ID!) { earningRule(id: $id) { budgetUsed pointsAwarded } }"

RECORD_EVENT = """
mutation($input: RecordEventInput!) {
  recordEvent(input: $input) {
    event { id type occurredAt pointsAwarded attributes }
    pointsAwarded
    member { id points { available lifetimeEarned } }
    errors { code field message }
  }
}
"""

APP_RECORD_EVENT = """
mutation($input: RecordEventInput!) {
  recordEvent(input: $input) {
    event { id type occurredAt pointsAwarded attributes }
    pointsAwarded
    errors { code field message }
  }
}
"""
"""What an app key may read back: the event it recorded, not the member."""

MEMBER_EVENTS = """
query($id: ID!, $first: Int, $after: String) {
  member(id: $id) {
    dateOfBirth
    points { available pending lifetimeEarned }
    events(first: $first, after: $after) {
      edges { node { id type occurredAt pointsAwarded attributes } }
      pageInfo { hasNextPage endCursor }
    }
    ledger(first: 20) { edges { node { kind points reason } } }
  }
}
"""

PROGRAM = """mutation($input: UpdateProgramInput!) { updateProgram(input: $input) {
  errors { code field } } }"""

UPDATE_MEMBER = """mutation($input: UpdateMemberInput!) { updateMember(input: $input) {
  member { id dateOfBirth status } errors { code field } } }"""

LONG_AGO = "2020-01-01T00:00:00+00:00"


async def create_rule(admin, name: str, points: int | str, event_type: str, **fields) -> str:
    data = await admin.data(
        CREATE_RULE,
        input={
            "name": name,
            "effect": {"kind": "FIXED_BONUS", "value": str(points)},
            "conditions": {"eventType": event_type, **fields.pop("conditions", {})},
            **fields,
        },
    )
    payload = data["createEarningRule"]
    assert payload["errors"] == [], payload["errors"]
    return payload["earningRule"]["id"]


def event_input(member_id: str, event_type: str = "app_installed", **fields) -> dict:
    return {"idempotencyKey": key(), "memberId": member_id, "type": event_type, **fields}


async def send(client, member_id: str, event_type: str = "app_installed", **fields) -> dict:
    data = await client.data(RECORD_EVENT, input=event_input(member_id, event_type, **fields))
    return data["recordEvent"]


async def member_view(admin, member_id: str, first: int = 20) -> dict:
    return (await admin.data(MEMBER_EVENTS, id=member_id, first=first))["member"]


def codes(payload: dict) -> list[tuple[str, list[str] | None]]:
    return [(e["code"], e["field"]) for e in payload["errors"]]


def error_codes(body: dict) -> list[str | None]:
    return [(e.get("extensions") or {}).get("code") for e in body.get("errors") or []]


def noon(days_ago: int) -> str:
    day = datetime.now(UTC).replace(hour=12, minute=0, second=0, microsecond=0)
    return (day - timedelta(days=days_ago)).isoformat()


# --- event rules ---------------------------------------------------------------------------


async def test_an_event_rule_awards_matching_events_only(admin, pos):
    rule_id = await create_rule(admin, "Install the app", 100, "app_installed")
    member_id = await enroll(pos)

    installed = await send(pos, member_id, attributes={"platform": "ios", "version": [1, 2]})

    assert installed["errors"] == []
    assert installed["pointsAwarded"] == 100
    assert installed["event"]["type"] == "app_installed"
    assert installed["event"]["pointsAwarded"] == 100
    assert installed["event"]["attributes"] == {"platform": "ios", "version": [1, 2]}
    assert installed["member"]["points"] == {"available": 100, "lifetimeEarned": 100}

    other = await send(pos, member_id, "review_written")
    assert other["errors"] == []
    assert (other["pointsAwarded"], other["event"]["pointsAwarded"]) == (0, 0)
    assert other["event"]["attributes"] == {}

    purchase = await record(pos, member_id, "10.00")
    assert purchase["pointsAwarded"] == 10, "an event rule does not reward purchases"

    member = await member_view(admin, member_id)
    assert member["points"]["available"] == 110
    assert [(e["node"]["type"], e["node"]["pointsAwarded"]) for e in member["events"]["edges"]] == [
        ("review_written", 0),
        ("app_installed", 100),
    ]
    assert member["events"]["edges"][1]["node"]["id"] == installed["event"]["id"]
    bonus = [e["node"] for e in member["ledger"]["edges"] if e["node"]["kind"] == "BONUS"]
    assert bonus == [{"kind": "BONUS", "points": 100, "reason": "Event: app_installed"}]
    rule = (await admin.data(RULE, id=rule_id))["earningRule"]
    assert rule == {"budgetUsed": 0, "pointsAwarded": 100}


async def test_the_type_is_lower_cased_and_trimmed(admin, pos):
    await create_rule(admin, "Install the app", 10, "App_Installed")
    member_id = await enroll(pos)
    for spelled in ("APP_INSTALLED", " app_installed ", "App_Installed"):
        sent = await send(pos, member_id, spelled)
        assert sent["errors"] == []
        assert (sent["event"]["type"], sent["pointsAwarded"]) == ("app_installed", 10)


async def test_fractional_bonus_is_floored_and_several_rules_add_up(admin, pos):
    await create_rule(admin, "Review", "12.9", "review_written")
    await create_rule(admin, "Review, again", 5, "review_written")
    member_id = await enroll(pos)
    sent = await send(pos, member_id, "review_written")
    assert sent["pointsAwarded"] == 17
    assert sent["member"]["points"]["available"] == 17


async def test_an_exclusive_event_rule_ends_the_chain(admin, pos):
    await create_rule(admin, "Low", 5, "survey", priority=1)
    await create_rule(admin, "High", 30, "survey", priority=10, exclusive=True)
    member_id = await enroll(pos)
    sent = await send(pos, member_id, "survey")
    assert sent["pointsAwarded"] == 30


async def test_event_rules_honour_their_window_and_tier(admin, pos):
    tiers = await admin.data(
        """mutation { base: createTier(input: {name: "Base", rank: 1, threshold: 0}) {
             tier { id } errors { code } }
           gold: createTier(input: {name: "Gold", rank: 2, threshold: 100000}) {
             tier { id } errors { code } } }"""
    )
    gold = tiers["gold"]["tier"]["id"]
    future = (datetime.now(UTC) + timedelta(days=1)).isoformat()
    await create_rule(admin, "Later", 1000, "check_in", startsAt=future)
    await create_rule(admin, "Gold only", 7, "check_in", conditions={"tierIds": [gold]})
    base_member = await enroll(pos)
    gold_member = await enroll(pos)
    await admin.data(
        """mutation($input: SetMemberTierInput!) { setMemberTier(input: $input) {
             errors { code } } }""",
        input={"memberId": gold_member, "tierId": gold, "reason": "test"},
    )

    assert (await send(pos, base_member, "check_in"))["pointsAwarded"] == 0
    assert (await send(pos, gold_member, "check_in"))["pointsAwarded"] == 7


async def test_event_rules_must_be_fixed_bonus_without_purchase_conditions(admin):
    multiply = await admin.data(
        CREATE_RULE,
        input={
            "name": "x",
            "effect": {"kind": "MULTIPLY", "value": "2"},
            "conditions": {"eventType": "app_installed"},
        },
    )
    assert codes(multiply["createEarningRule"]) == [("INVALID", ["effect", "kind"])]
    skus = await admin.data(
        CREATE_RULE,
        input={
            "name": "x",
            "effect": {"kind": "FIXED_BONUS", "value": "2"},
            "conditions": {"eventType": "app_installed", "skus": ["A"]},
        },
    )
    assert codes(skus["createEarningRule"]) == [("INVALID", ["conditions", "skus"])]
    bad_type = await admin.data(
        CREATE_RULE,
        input={
            "name": "x",
            "effect": {"kind": "FIXED_BONUS", "value": "2"},
            "conditions": {"eventType": "app installed"},
        },
    )
    assert codes(bad_type["createEarningRule"]) == [("INVALID", ["conditions", "eventType"])]
    listed = await admin.data("{ earningRules { edges { node { id } } } }")
    assert listed["earningRules"]["edges"] == []


# --- caps ----------------------------------------------------------------------------------


async def test_per_member_per_day_cap_on_events(admin, pos):
    rule_id = await create_rule(
        admin, "Check in", 40, "check_in", startsAt=LONG_AGO, limits={"perMemberPerDay": 100}
    )
    member_id = await enroll(pos)
    other_id = await enroll(pos)

    same_day = [
        (await send(pos, member_id, "check_in", occurredAt=noon(2)))["pointsAwarded"]
        for _ in range(4)
    ]
    next_day = (await send(pos, member_id, "check_in", occurredAt=noon(1)))["pointsAwarded"]
    other = (await send(pos, other_id, "check_in", occurredAt=noon(2)))["pointsAwarded"]

    assert same_day == [40, 40, 20, 0]
    assert (next_day, other) == (40, 40)
    member = await member_view(admin, member_id)
    assert member["points"]["available"] == 140
    assert len(member["events"]["edges"]) == 5, "an event the cap leaves nothing is recorded"
    assert (await admin.data(RULE, id=rule_id))["earningRule"]["pointsAwarded"] == 180


async def test_the_daily_cap_counts_days_in_the_program_time_zone(admin, pos):
    await admin.data(PROGRAM, input={"timeZone": "America/Los_Angeles"})
    await create_rule(
        admin, "Check in", 40, "check_in", startsAt=LONG_AGO, limits={"perMemberPerDay": 50}
    )
    member_id = await enroll(pos)
    zone = ZoneInfo("America/Los_Angeles")
    local_day = (datetime.now(zone) - timedelta(days=3)).date()

    def local(hour: int, minute: int = 0, days: int = 0) -> str:
        moment = datetime.combine(local_day + timedelta(days=days), time(hour, minute), zone)
        return moment.astimezone(UTC).isoformat()

    # 04:00 and 23:30 in Los Angeles are different UTC dates but the same local day.
    awarded = [
        (await send(pos, member_id, "check_in", occurredAt=at))["pointsAwarded"]
        for at in (local(4), local(15), local(23, 30), local(0, 30, days=1))
    ]
    assert awarded == [40, 10, 0, 40]


async def test_per_event_total_and_budget_caps_on_events(admin, pos):
    capped = await create_rule(admin, "Capped", 50, "quiz", limits={"perPurchase": 20})
    total = await create_rule(admin, "Total", 30, "quiz", limits={"perMemberTotal": 70})
    budget = await create_rule(admin, "Budget", 25, "quiz", limits={"budget": 60})
    first, second, third = [await enroll(pos) for _ in range(3)]

    awarded = []
    for member_id in (first, first, first, second, third):
        awarded.append((await send(pos, member_id, "quiz"))["pointsAwarded"])

    # capped: 20 each; total: 30, 30, then the 10 left of 70; budget: 25, 25, the 10 left
    assert awarded == [75, 75, 20 + 10 + 10, 20 + 30 + 0, 20 + 30 + 0]
    rules = {
        name: (await admin.data(RULE, id=rule_id))["earningRule"]
        for name, rule_id in (("capped", capped), ("total", total), ("budget", budget))
    }
    assert rules["capped"]["pointsAwarded"] == 100
    assert rules["total"]["pointsAwarded"] == 70 + 30 + 30
    assert rules["budget"] == {"budgetUsed": 60, "pointsAwarded": 60}


# --- idempotency ---------------------------------------------------------------------------


async def test_same_key_same_input_replays_and_writes_nothing_twice(admin, pos):
    await create_rule(admin, "Install the app", 100, "app_installed", startsAt=LONG_AGO)
    member_id = await enroll(pos)
    same = event_input(member_id, attributes={"b": 2, "a": 1}, occurredAt=noon(1))

    first = (await pos.data(RECORD_EVENT, input=same))["recordEvent"]
    reordered = {**same, "attributes": {"a": 1, "b": 2}}
    retry = (await pos.data(RECORD_EVENT, input=reordered))["recordEvent"]

    assert first["errors"] == [] and first["pointsAwarded"] == 100
    assert retry == first
    member = await member_view(admin, member_id)
    assert member["points"]["available"] == 100
    assert len(member["events"]["edges"]) == 1


async def test_one_key_sent_at_once_records_one_event(admin, pos):
    await create_rule(admin, "Install the app", 100, "app_installed")
    member_id = await enroll(pos)
    same = event_input(member_id)

    results = await asyncio.gather(*(pos.data(RECORD_EVENT, input=same) for _ in range(10)))

    assert len({r["recordEvent"]["event"]["id"] for r in results}) == 1
    assert {r["recordEvent"]["pointsAwarded"] for r in results} == {100}
    member = await member_view(admin, member_id)
    assert (member["points"]["available"], len(member["events"]["edges"])) == (100, 1)


async def test_same_key_different_input_is_a_conflict(admin, pos):
    await create_rule(admin, "Install the app", 100, "app_installed")
    member_id = await enroll(pos)
    other_id = await enroll(pos)
    same = event_input(member_id, attributes={"a": 1})
    assert (await pos.data(RECORD_EVENT, input=same))["recordEvent"]["errors"] == []

    for changed in (
        {**same, "type": "review_written"},
        {**same, "attributes": {"a": 2}},
        {**same, "memberId": other_id},
        {**same, "occurredAt": noon(1)},
    ):
        payload = (await pos.data(RECORD_EVENT, input=changed))["recordEvent"]
        assert codes(payload) == [("IDEMPOTENCY_CONFLICT", ["idempotencyKey"])], changed
        assert payload["event"] is None
    assert len((await member_view(admin, member_id))["events"]["edges"]) == 1
    other = await member_view(admin, other_id)
    assert (other["events"]["edges"], other["points"]["available"]) == ([], 0)
    assert (await member_view(admin, member_id))["points"]["available"] == 100


async def test_keys_are_per_caller(admin, pos, app_client):
    await create_rule(admin, "Install the app", 100, "app_installed")
    member_id = await enroll(pos)
    same = event_input(member_id)
    first = (await pos.data(RECORD_EVENT, input=same))["recordEvent"]
    second = (await app_client.data(APP_RECORD_EVENT, input=same))["recordEvent"]
    assert first["errors"] == second["errors"] == []
    assert first["event"]["id"] != second["event"]["id"]


# --- refused input -------------------------------------------------------------------------


@pytest.mark.parametrize("spelled", ["birthday", "Birthday", " BIRTHDAY "])
async def test_birthday_cannot_be_recorded(admin, pos, spelled):
    await create_rule(admin, "Birthday", 100, "birthday", startsAt=LONG_AGO)
    member_id = await enroll(pos)
    payload = await send(pos, member_id, spelled)
    assert codes(payload) == [("INVALID", ["type"])]
    member = await member_view(admin, member_id)
    assert (member["events"]["edges"], member["points"]["available"]) == ([], 0)


async def test_bad_types_are_invalid(admin, pos):
    member_id = await enroll(pos)
    for bad in ("", "   ", "app installed", "a" * 65, "_app", "-app", "appé", "a/b", "a\nb"):
        payload = await send(pos, member_id, bad)
        assert codes(payload) == [("INVALID", ["type"])], bad
    assert (await send(pos, member_id, "a" * 64))["errors"] == []
    assert (await send(pos, member_id, "0a_b.c:d-e"))["errors"] == []
    assert len((await member_view(admin, member_id))["events"]["edges"]) == 2


async def test_attributes_must_be_a_small_json_object(admin, pos):
    member_id = await enroll(pos)
    for bad in ([1, 2], "text", 5, True, {"note": "x" * 5000}, {"n": "\x00"}):
        payload = await send(pos, member_id, attributes=bad)
        assert codes(payload) == [("INVALID", ["attributes"])], bad
    assert (await member_view(admin, member_id))["events"]["edges"] == []

    nested = {"note": "x" * 4000, "deep": {"list": [1, 2.5, None, "é"], "flag": False}}
    accepted = await send(pos, member_id, attributes=nested)
    assert accepted["errors"] == []
    assert accepted["event"]["attributes"] == nested
    listed = (await member_view(admin, member_id))["events"]["edges"]
    assert listed[0]["node"]["attributes"] == nested


async def test_attributes_with_a_lone_surrogate_are_invalid(admin, pos):
    member_id = await enroll(pos)
    body = await post_with_lone_surrogate(
        pos, RECORD_EVENT, input=event_input(member_id, attributes={"a": LONE_SURROGATE})
    )
    assert codes(body["data"]["recordEvent"]) == [("INVALID", ["attributes"])]
    assert (await member_view(admin, member_id))["events"]["edges"] == []


async def test_attributes_are_measured_in_bytes_of_json(pos):
    member_id = await enroll(pos)
    attributes = {"note": "é" * 2000}
    size = len(json.dumps(attributes, ensure_ascii=False, separators=(",", ":")).encode())
    assert size == 4011
    accepted = await send(pos, member_id, attributes=attributes)
    assert accepted["errors"] == []
    assert accepted["event"]["attributes"] == attributes


async def test_occurred_at_must_be_recent_and_not_in_the_future(admin, pos):
    member_id = await enroll(pos)
    now = datetime.now(UTC)
    for bad in (now + timedelta(minutes=10), now - timedelta(days=31)):
        payload = await send(pos, member_id, occurredAt=bad.isoformat())
        assert codes(payload) == [("INVALID", ["occurredAt"])], bad
    naive = await send(pos, member_id, occurredAt="2026-01-01T10:00:00")
    assert naive["event"] is None
    assert (await member_view(admin, member_id))["events"]["edges"] == []
    at = (now - timedelta(days=3)).replace(microsecond=0)
    accepted = await send(pos, member_id, occurredAt=at.isoformat())
    assert datetime.fromisoformat(accepted["event"]["occurredAt"]) == at


async def test_unknown_or_inactive_members(admin, pos):
    await create_rule(admin, "Install the app", 100, "app_installed")
    for unknown in ("TWVtYmVyOjk5OTk5", "nonsense"):
        payload = await send(pos, unknown)
        assert codes(payload) == [("NOT_FOUND", ["memberId"])], unknown
    member_id = await enroll(pos)
    await admin.data(UPDATE_MEMBER, input={"id": member_id, "status": "SUSPENDED"})
    payload = await send(pos, member_id)
    assert codes(payload) == [("MEMBER_INACTIVE", ["memberId"])]
    member = await member_view(admin, member_id)
    assert (member["events"]["edges"], member["points"]["available"]) == ([], 0)


async def test_an_empty_idempotency_key_is_invalid(pos):
    member_id = await enroll(pos)
    payload = (
        await pos.data(RECORD_EVENT, input={**event_input(member_id), "idempotencyKey": ""})
    )["recordEvent"]
    assert codes(payload) == [("INVALID", ["idempotencyKey"])]


async def test_events_paginate_newest_first(admin, pos):
    member_id = await enroll(pos)
    types = [f"step_{i}" for i in range(5)]
    for event_type in types:
        await send(pos, member_id, event_type)
    first = await admin.data(MEMBER_EVENTS, id=member_id, first=3)
    page = first["member"]["events"]
    assert page["pageInfo"]["hasNextPage"] is True
    rest = await admin.data(
        MEMBER_EVENTS, id=member_id, first=3, after=page["pageInfo"]["endCursor"]
    )
    listed = [e["node"]["type"] for e in page["edges"]] + [
        e["node"]["type"] for e in rest["member"]["events"]["edges"]
    ]
    assert listed == types[::-1]
    assert rest["member"]["events"]["pageInfo"]["hasNextPage"] is False


# --- roles ---------------------------------------------------------------------------------


async def test_admin_pos_and_app_may_record_events(admin, pos, app_client):
    await create_rule(admin, "Install the app", 10, "app_installed")
    member_id = await enroll(pos)
    for caller in (admin, pos, app_client):
        document = APP_RECORD_EVENT if caller is app_client else RECORD_EVENT
        data = await caller.data(document, input=event_input(member_id))
        payload = data["recordEvent"]
        assert payload["errors"] == [] and payload["pointsAwarded"] == 10
    assert (await member_view(admin, member_id))["points"]["available"] == 30


async def test_member_tokens_may_not_record_events(admin, pos, app_client):
    await create_rule(admin, "Install the app", 10, "app_installed")
    member_id = await enroll(pos)
    issued = await app_client.data(
        "mutation($input: IssueMemberTokenInput!) { issueMemberToken(input: $input) "
        "{ token errors { code } } }",
        input={"memberId": member_id},
    )
    me = app_client.as_(issued["issueMemberToken"]["token"])

    body = await me(RECORD_EVENT, input=event_input(member_id))

    assert error_codes(body) == ["FORBIDDEN"]
    assert body["data"] is None
    own = await me.data("{ me { events { edges { node { id } } } } }")
    assert own["me"]["events"]["edges"] == []
    assert (await member_view(admin, member_id))["points"]["available"] == 0


async def test_without_credentials_recording_is_unauthorized(client, pos):
    member_id = await enroll(pos)
    response = await client.post(
        "/graphql", json={"query": RECORD_EVENT, "variables": {"input": event_input(member_id)}}
    )
    assert response.status_code == 401


async def test_only_admins_create_event_rules(pos, app_client):
    for caller in (pos, app_client):
        body = await caller(
            CREATE_RULE,
            input={
                "name": "x",
                "effect": {"kind": "FIXED_BONUS", "value": "2"},
                "conditions": {"eventType": "app_installed"},
            },
        )
        assert error_codes(body) == ["FORBIDDEN"]


# --- the birthday-bonus job ----------------------------------------------------------------


async def birthday_rule(admin, points: int = 100, name: str = "Happy birthday", **fields) -> str:
    return await create_rule(admin, name, points, "birthday", startsAt=LONG_AGO, **fields)


async def run_birthdays(database_url: str, now: str) -> str:
    ran = await arun_cli(database_url, "jobs", "run", "birthday-bonus", "--now", now)
    assert ran.returncode == 0, ran.stdout + ran.stderr
    return ran.stdout


def awarded(stdout: str) -> str:
    return stdout.strip().rsplit(": ", 1)[1]


async def available(admin, member_id: str) -> int:
    return (await member_view(admin, member_id))["points"]["available"]


async def test_birthday_job_awards_todays_birthdays_once_a_year(admin, pos, database_url):
    rule_id = await birthday_rule(admin)
    today = await enroll(pos, dateOfBirth="1990-06-15")
    updated = await enroll(pos)
    changed = await admin.data(UPDATE_MEMBER, input={"id": updated, "dateOfBirth": "1985-06-15"})
    assert changed["updateMember"]["member"]["dateOfBirth"] == "1985-06-15"
    tomorrow = await enroll(pos, dateOfBirth="1990-06-16")
    unknown = await enroll(pos)
    suspended = await enroll(pos, dateOfBirth="1970-06-15")
    await admin.data(UPDATE_MEMBER, input={"id": suspended, "status": "SUSPENDED"})

    first = await run_birthdays(database_url, "2025-06-15T09:00:00+00:00")

    assert awarded(first) == "200 points of 2 members", first
    assert [await available(admin, m) for m in (today, updated, tomorrow, unknown, suspended)] == [
        100,
        100,
        0,
        0,
        0,
    ]
    member = await member_view(admin, today)
    assert [(e["node"]["type"], e["node"]["pointsAwarded"]) for e in member["events"]["edges"]] == [
        ("birthday", 100)
    ]
    assert datetime.fromisoformat(member["events"]["edges"][0]["node"]["occurredAt"]) == (
        datetime(2025, 6, 15, 9, tzinfo=UTC)
    )
    assert [(e["node"]["kind"], e["node"]["points"]) for e in member["ledger"]["edges"]] == [
        ("BONUS", 100)
    ]
    assert member["ledger"]["edges"][0]["node"]["reason"].startswith("Birthday bonus")
    assert (await admin.data(RULE, id=rule_id))["earningRule"]["pointsAwarded"] == 200

    rerun = await run_birthdays(database_url, "2025-06-15T09:00:00+00:00")
    later_that_day = await run_birthdays(database_url, "2025-06-15T23:59:00+00:00")
    assert awarded(rerun) == awarded(later_that_day) == "0 points of 0 members"

    next_day = await run_birthdays(database_url, "2025-06-16T09:00:00+00:00")
    assert awarded(next_day) == "100 points of 1 members"
    assert await available(admin, tomorrow) == 100

    next_year = await run_birthdays(database_url, "2026-06-15T09:00:00+00:00")
    assert awarded(next_year) == "200 points of 2 members"
    assert [await available(admin, m) for m in (today, updated, tomorrow)] == [200, 200, 100]
    assert len((await member_view(admin, today))["events"]["edges"]) == 2


async def test_a_birthday_events_attributes_are_an_empty_object(admin, pos, database_url):
    await birthday_rule(admin)
    member_id = await enroll(pos, dateOfBirth="1990-06-15")
    await run_birthdays(database_url, "2025-06-15T09:00:00+00:00")
    events = (await member_view(admin, member_id))["events"]["edges"]
    assert [e["node"]["attributes"] for e in events] == [{}]


async def test_a_new_version_of_the_rule_does_not_award_again_that_year(admin, pos, database_url):
    rule_id = await birthday_rule(admin)
    today = datetime.now(UTC).date()
    born = today.replace(year=1990) if (today.month, today.day) != (2, 29) else today
    member_id = await enroll(pos, dateOfBirth=born.isoformat())
    first = await run_birthdays(database_url, datetime.now(UTC).isoformat())
    assert awarded(first) == "100 points of 1 members"
    updated = await admin.data(
        UPDATE_RULE, input={"id": rule_id, "effect": {"kind": "FIXED_BONUS", "value": "300"}}
    )
    assert updated["updateEarningRule"]["earningRule"]["version"] == 2

    again = await run_birthdays(database_url, datetime.now(UTC).isoformat())

    assert awarded(again) == "0 points of 0 members"
    assert await available(admin, member_id) == 100


async def test_the_birthday_is_counted_in_the_program_time_zone(admin, pos, database_url):
    await admin.data(PROGRAM, input={"timeZone": "America/New_York"})
    await birthday_rule(admin)
    member_id = await enroll(pos, dateOfBirth="1990-06-15")
    next_day_member = await enroll(pos, dateOfBirth="1990-06-16")

    # 02:00 UTC on the 15th is still the 14th in New York.
    early = await run_birthdays(database_url, "2025-06-15T02:00:00+00:00")
    assert awarded(early) == "0 points of 0 members"
    # 02:00 UTC on the 16th is 22:00 on the 15th in New York.
    late = await run_birthdays(database_url, "2025-06-16T02:00:00+00:00")
    assert awarded(late) == "100 points of 1 members"
    assert (await available(admin, member_id), await available(admin, next_day_member)) == (100, 0)


async def test_leap_day_birthdays_on_28_february_in_other_years(admin, pos, database_url):
    await birthday_rule(admin)
    leap = await enroll(pos, dateOfBirth="2000-02-29")
    eve = await enroll(pos, dateOfBirth="1999-02-28")
    march = await enroll(pos, dateOfBirth="1999-03-01")

    assert awarded(await run_birthdays(database_url, "2025-02-28T12:00:00+00:00")) == (
        "200 points of 2 members"
    )
    assert awarded(await run_birthdays(database_url, "2025-03-01T12:00:00+00:00")) == (
        "100 points of 1 members"
    )
    assert [await available(admin, m) for m in (leap, eve, march)] == [100, 100, 100]

    assert awarded(await run_birthdays(database_url, "2024-02-28T12:00:00+00:00")) == (
        "100 points of 1 members"
    )
    assert await available(admin, eve) == 200
    assert awarded(await run_birthdays(database_url, "2024-02-29T12:00:00+00:00")) == (
        "100 points of 1 members"
    )
    assert await available(admin, leap) == 200


async def test_birthday_rules_honour_tiers_per_award_cap_and_budget(admin, pos, database_url):
    tiers = await admin.data(
        """mutation { base: createTier(input: {name: "Base", rank: 1, threshold: 0}) {
             tier { id } errors { code } }
           gold: createTier(input: {name: "Gold", rank: 2, threshold: 100000}) {
             tier { id } errors { code } } }"""
    )
    gold = tiers["gold"]["tier"]["id"]
    await birthday_rule(admin, 1000, "Gold birthday", conditions={"tierIds": [gold]})
    await birthday_rule(admin, 500, "Capped birthday", limits={"perPurchase": 30})
    budgeted = await birthday_rule(admin, 100, "Budgeted birthday", limits={"budget": 250})
    members = [await enroll(pos, dateOfBirth="1990-06-15") for _ in range(3)]
    await admin.data(
        """mutation($input: SetMemberTierInput!) { setMemberTier(input: $input) {
             errors { code } } }""",
        input={"memberId": members[2], "tierId": gold, "reason": "test"},
    )

    report = await run_birthdays(database_url, "2025-06-15T09:00:00+00:00")

    # gold: 1000 × 1; capped: 30 × 3; budgeted: whole awards of 100 within 250 → 2
    assert awarded(report) == f"{1000 + 90 + 200} points of 6 members", report
    assert [await available(admin, m) for m in members] == [30 + 100, 30 + 100, 1000 + 30]
    rule = (await admin.data(RULE, id=budgeted))["earningRule"]
    assert rule == {"budgetUsed": 200, "pointsAwarded": 200}

    another = await enroll(pos, dateOfBirth="1990-06-16")
    report = await run_birthdays(database_url, "2025-06-16T09:00:00+00:00")
    assert awarded(report) == "30 points of 1 members", "50 left of the budget: no whole award"
    assert await available(admin, another) == 30


async def test_a_birthday_rule_not_in_force_awards_nothing(admin, pos, database_url):
    await create_rule(admin, "Not yet", 100, "birthday", startsAt="2025-07-01T00:00:00+00:00")
    await create_rule(
        admin,
        "Over",
        100,
        "birthday",
        startsAt=LONG_AGO,
        endsAt="2025-06-01T00:00:00+00:00",
    )
    member_id = await enroll(pos, dateOfBirth="1990-06-15")
    report = await run_birthdays(database_url, "2025-06-15T09:00:00+00:00")
    assert awarded(report) == "0 points of 0 members"
    assert await available(admin, member_id) == 0


async def test_a_birthday_rule_does_not_reward_recorded_events_or_purchases(admin, pos):
    await birthday_rule(admin)
    member_id = await enroll(pos, dateOfBirth="1990-06-15")
    purchase = await record(pos, member_id, "10.00")
    assert purchase["pointsAwarded"] == 10
    assert (await send(pos, member_id, "app_installed"))["pointsAwarded"] == 0


async def test_a_birthday_rule_honours_its_days_and_hours(admin, pos, database_url):
    await birthday_rule(admin, 10, "Mondays", conditions={"daysOfWeek": ["MONDAY"]})
    await birthday_rule(admin, 1, "Mornings", conditions={"hours": [8, 9]})
    sunday = await enroll(pos, dateOfBirth="1990-06-15")
    monday = await enroll(pos, dateOfBirth="1990-06-16")

    sunday_morning = await run_birthdays(database_url, "2025-06-15T09:00:00+00:00")
    monday_evening = await run_birthdays(database_url, "2025-06-16T20:00:00+00:00")

    assert awarded(sunday_morning) == "1 points of 1 members"
    assert awarded(monday_evening) == "10 points of 1 members"
    assert (await available(admin, sunday), await available(admin, monday)) == (1, 10)


async def test_a_refused_event_does_not_use_up_its_key(admin, pos):
    await create_rule(admin, "Install the app", 100, "app_installed", startsAt=LONG_AGO)
    member_id = await enroll(pos)
    await admin.data(UPDATE_MEMBER, input={"id": member_id, "status": "SUSPENDED"})
    same = event_input(member_id)
    refused = (await pos.data(RECORD_EVENT, input=same))["recordEvent"]
    assert codes(refused) == [("MEMBER_INACTIVE", ["memberId"])]
    await admin.data(UPDATE_MEMBER, input={"id": member_id, "status": "ACTIVE"})
    too_old = {**event_input(member_id), "occurredAt": noon(40)}
    assert codes((await pos.data(RECORD_EVENT, input=too_old))["recordEvent"]) == [
        ("INVALID", ["occurredAt"])
    ]

    accepted = (await pos.data(RECORD_EVENT, input=same))["recordEvent"]
    assert accepted["errors"] == [] and accepted["pointsAwarded"] == 100
    retried = (await pos.data(RECORD_EVENT, input={**too_old, "occurredAt": noon(2)}))[
        "recordEvent"
    ]
    assert retried["errors"] == [] and retried["pointsAwarded"] == 100
