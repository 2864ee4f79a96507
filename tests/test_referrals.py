"""Referrals: a member's code links a friend who enrolls with it; the friend's first purchase
that earns points rewards both (program settings: referrerPoints, refereePoints,
referralLimit). Rewarded once, never clawed back; the referral list is for admins."""

import asyncio
from datetime import UTC, datetime, timedelta

import pytest

from tests.helpers import (
    ENROLL,
    LONE_SURROGATE,
    RECORD_PURCHASE,
    enroll,
    grant,
    key,
    post_with_lone_surrogate,
    purchase_input,
    record,
    refund_input,
)

PROGRAM = """mutation($input: UpdateProgramInput!) { updateProgram(input: $input) {
  program { referrerPoints refereePoints referralLimit } errors { code field } } }"""

UPDATE_MEMBER = """mutation($input: UpdateMemberInput!) { updateMember(input: $input) {
  member { id status } errors { code field } } }"""

REFUND = """mutation($input: RefundPurchaseInput!) { refundPurchase(input: $input) {
  purchase { status pointsRefunded } pointsClawedBack errors { code field } } }"""

CODE = "query($id: ID!) { member(id: $id) { referralCode } }"

POINTS = """query($id: ID!) { member(id: $id) {
  points { available pending lifetimeEarned }
  referralCounts { enrolled rewarded }
  ledger(first: 50) { edges { node { kind bucket points reason purchase { id } } } }
} }"""

REFERRALS = """query($id: ID!, $first: Int, $after: String) { member(id: $id) {
  referralCounts { enrolled rewarded }
  referrals(first: $first, after: $after) {
    edges { cursor node { id createdAt rewardedAt referrerPoints refereePoints
      referrer { id } referee { id externalId } } }
    pageInfo { hasNextPage endCursor }
  }
} }"""

REFERRED_BY = """query($id: ID!) { member(id: $id) {
  referredBy { id rewardedAt referrerPoints refereePoints referrer { id } referee { id } }
} }"""

MEMBER_BY_EXTERNAL_ID = "query($x: String!) { memberByExternalId(externalId: $x) { id } }"


async def settings(admin, **values) -> None:
    data = await admin.data(PROGRAM, input=values)
    assert data["updateProgram"]["errors"] == [], data["updateProgram"]["errors"]


async def code_of(client, member_id: str) -> str:
    code = (await client.data(CODE, id=member_id))["member"]["referralCode"]
    assert code
    return code


async def enroll_referred(client, code: str, **fields) -> str:
    return await enroll(client, referralCode=code, **fields)


async def view(admin, member_id: str) -> dict:
    return (await admin.data(POINTS, id=member_id))["member"]


def referral_entries(member: dict) -> list[dict]:
    return [
        e["node"]
        for e in member["ledger"]["edges"]
        if (e["node"]["reason"] or "").startswith("Referral bonus")
    ]


async def member_token(app_client, member_id: str) -> str:
    data = await app_client.data(
        "mutation($input: IssueMemberTokenInput!) { issueMemberToken(input: $input) "
        "{ token errors { code } } }",
        input={"memberId": member_id},
    )
    return data["issueMemberToken"]["token"]


def error_codes(body: dict) -> list[str | None]:
    return [(e.get("extensions") or {}).get("code") for e in body.get("errors") or []]


# --- linking and the reward ----------------------------------------------------------------


async def test_a_referees_first_earning_purchase_rewards_both(admin, pos):
    await settings(admin, referrerPoints=50, refereePoints=20)
    referrer = await enroll(pos)
    code = await code_of(pos, referrer)
    referee = await enroll_referred(pos, code)

    linked = (await admin.data(REFERRED_BY, id=referee))["member"]["referredBy"]
    assert linked["referrer"] == {"id": referrer}
    assert linked["referee"] == {"id": referee}
    assert (linked["rewardedAt"], linked["referrerPoints"], linked["refereePoints"]) == (None, 0, 0)
    assert (await view(admin, referrer))["referralCounts"] == {"enrolled": 1, "rewarded": 0}

    payload = await record(pos, referee, "25.00")

    assert payload["errors"] == []
    assert payload["pointsAwarded"] == 25, "the referral bonus is not part of the purchase"
    assert payload["purchase"]["pointsAwarded"] == 25
    assert payload["member"]["points"]["available"] == 45
    referee_view = await view(admin, referee)
    referrer_view = await view(admin, referrer)
    assert referee_view["points"]["available"] == 45
    assert referee_view["points"]["lifetimeEarned"] == 45
    assert referrer_view["points"]["available"] == 50
    assert [(e["kind"], e["points"], e["purchase"]) for e in referral_entries(referee_view)] == [
        ("BONUS", 20, None)
    ]
    assert [(e["kind"], e["points"]) for e in referral_entries(referrer_view)] == [("BONUS", 50)]
    assert referrer_view["referralCounts"] == {"enrolled": 1, "rewarded": 1}
    rewarded = (await admin.data(REFERRED_BY, id=referee))["member"]["referredBy"]
    assert rewarded["id"] == linked["id"]
    assert rewarded["rewardedAt"] is not None
    assert (rewarded["referrerPoints"], rewarded["refereePoints"]) == (50, 20)

    await record(pos, referee, "10.00")
    assert (await view(admin, referee))["points"]["available"] == 55
    assert (await view(admin, referrer))["points"]["available"] == 50


async def test_the_code_is_read_leniently(admin, pos):
    await settings(admin, referrerPoints=5, refereePoints=5)
    referrer = await enroll(pos)
    code = await code_of(pos, referrer)
    spelled = f" {code[:5].lower()}-{code[5:].lower()} "
    referee = await enroll_referred(pos, spelled)
    linked = (await admin.data(REFERRED_BY, id=referee))["member"]["referredBy"]
    assert linked["referrer"] == {"id": referrer}


async def test_every_member_has_a_code_of_their_own(pos):
    members = [await enroll(pos) for _ in range(5)]
    codes = [await code_of(pos, m) for m in members]
    assert len(set(codes)) == 5


async def test_without_a_code_there_is_no_referral(admin, pos):
    await settings(admin, referrerPoints=50, refereePoints=20)
    member = await enroll(pos)
    await record(pos, member, "25.00")
    assert (await admin.data(REFERRED_BY, id=member))["member"]["referredBy"] is None
    assert (await view(admin, member))["points"]["available"] == 25


async def test_referral_bonuses_are_pending_like_the_purchase(admin, pos):
    await settings(admin, referrerPoints=50, refereePoints=20)
    await admin.data(
        "mutation { updateProgram(input: {pendingDays: 7}) { errors { code } } }",
    )
    referrer = await enroll(pos)
    referee = await enroll_referred(pos, await code_of(pos, referrer))

    await record(pos, referee, "25.00")

    assert (await view(admin, referee))["points"]["pending"] == 45
    assert (await view(admin, referee))["points"]["available"] == 0
    referrer_points = (await view(admin, referrer))["points"]
    assert (referrer_points["pending"], referrer_points["available"]) == (50, 0)
    assert [e["bucket"] for e in referral_entries(await view(admin, referrer))] == ["PENDING"]


async def test_refunding_a_pending_first_purchase_leaves_the_pending_bonus(admin, pos):
    await settings(admin, referrerPoints=50, refereePoints=20)
    await admin.data("mutation { updateProgram(input: {pendingDays: 7}) { errors { code } } }")
    referrer = await enroll(pos)
    referee = await enroll_referred(pos, await code_of(pos, referrer))
    purchase = (await record(pos, referee, "25.00"))["purchase"]

    refunded = await pos.data(
        REFUND,
        input=refund_input(purchase["id"], "25.00"),
    )

    assert refunded["refundPurchase"]["pointsClawedBack"] == 25
    points = (await view(admin, referee))["points"]
    assert (points["pending"], points["available"]) == (20, 0)
    assert (await view(admin, referrer))["points"]["pending"] == 50


async def test_a_backdated_settled_first_purchase_rewards_available_points(admin, pos):
    await settings(admin, referrerPoints=50, refereePoints=20)
    await admin.data("mutation { updateProgram(input: {pendingDays: 7}) { errors { code } } }")
    referrer = await enroll(pos)
    referee = await enroll_referred(pos, await code_of(pos, referrer))
    settled = (datetime.now(UTC) - timedelta(days=10)).isoformat()

    await record(pos, referee, "25.00", occurredAt=settled)

    referee_points = (await view(admin, referee))["points"]
    assert (referee_points["available"], referee_points["pending"]) == (45, 0)
    assert (await view(admin, referrer))["points"]["available"] == 50


# --- refused codes -------------------------------------------------------------------------


async def test_an_unknown_code_is_not_found_and_writes_nothing(admin, pos):
    await enroll(pos)  # a member with some other code
    external_id = f"m-{key()[:12]}"
    for bad in ("ZZZZZZZZZZ", "", "   ", "X" * 40, "\x00ABC", "ÄBC"):
        data = await pos.data(ENROLL, input={"externalId": external_id, "referralCode": bad})
        payload = data["enrollMember"]
        assert payload["member"] is None
        assert [(e["code"], e["field"]) for e in payload["errors"]] == [
            ("NOT_FOUND", ["referralCode"])
        ], bad
    assert (await admin.data(MEMBER_BY_EXTERNAL_ID, x=external_id))["memberByExternalId"] is None
    body = await post_with_lone_surrogate(
        pos, ENROLL, input={"externalId": external_id, "referralCode": LONE_SURROGATE}
    )
    assert [e["code"] for e in body["data"]["enrollMember"]["errors"]] == ["NOT_FOUND"]


async def test_a_member_cannot_refer_themselves_by_email(admin, pos):
    referrer = await enroll(pos, email="Ann.Lee@Example.com")
    code = await code_of(pos, referrer)
    external_id = f"m-{key()[:12]}"
    for spelled in ("Ann.Lee@Example.com", "Ann.Lee@example.COM", "ann.lee@example.com"):
        data = await pos.data(
            ENROLL, input={"externalId": external_id, "email": spelled, "referralCode": code}
        )
        payload = data["enrollMember"]
        assert payload["member"] is None
        assert [(e["code"], e["field"]) for e in payload["errors"]] == [
            ("INVALID", ["referralCode"])
        ], spelled
    assert (await admin.data(MEMBER_BY_EXTERNAL_ID, x=external_id))["memberByExternalId"] is None
    assert (await view(admin, referrer))["referralCounts"] == {"enrolled": 0, "rewarded": 0}


async def test_a_member_cannot_refer_themselves_by_phone(admin, pos):
    referrer = await enroll(pos, phone="+14155550100")
    code = await code_of(pos, referrer)
    external_id = f"m-{key()[:12]}"
    for spelled in ("+14155550100", "+1 415-555-0100", "+1 (415) 555 0100"):
        data = await pos.data(
            ENROLL,
            input={
                "externalId": external_id,
                "phone": spelled,
                "email": "someone.else@example.com",
                "referralCode": code,
            },
        )
        payload = data["enrollMember"]
        assert payload["member"] is None
        assert [(e["code"], e["field"]) for e in payload["errors"]] == [
            ("INVALID", ["referralCode"])
        ], spelled
    assert (await admin.data(MEMBER_BY_EXTERNAL_ID, x=external_id))["memberByExternalId"] is None


async def test_a_different_email_and_phone_may_use_the_code(admin, pos):
    referrer = await enroll(pos, email="ann@example.com", phone="+14155550100")
    referee = await enroll_referred(
        pos, await code_of(pos, referrer), email="bob@example.com", phone="+14155550101"
    )
    linked = (await admin.data(REFERRED_BY, id=referee))["member"]["referredBy"]
    assert linked["referrer"] == {"id": referrer}


# --- the limit and the referrer's status ---------------------------------------------------


async def test_a_referrer_is_rewarded_up_to_the_limit_and_referees_always(admin, pos):
    await settings(admin, referrerPoints=50, refereePoints=20, referralLimit=2)
    referrer = await enroll(pos)
    code = await code_of(pos, referrer)
    referees = [await enroll_referred(pos, code) for _ in range(4)]

    for referee in referees[:3]:
        await record(pos, referee, "10.00")

    assert (await view(admin, referrer))["points"]["available"] == 100
    for referee in referees[:3]:
        assert (await view(admin, referee))["points"]["available"] == 30
    listed = (await admin.data(REFERRALS, id=referrer))["member"]
    assert listed["referralCounts"] == {"enrolled": 4, "rewarded": 3}
    nodes = [e["node"] for e in listed["referrals"]["edges"]]
    assert [n["referee"]["id"] for n in nodes] == referees[::-1], "newest first"
    assert [(n["referrerPoints"], n["refereePoints"]) for n in nodes] == [
        (0, 0),
        (0, 20),
        (50, 20),
        (50, 20),
    ]
    assert nodes[0]["rewardedAt"] is None

    await settings(admin, referralLimit=None)
    await record(pos, referees[3], "10.00")
    assert (await view(admin, referrer))["points"]["available"] == 150


async def test_a_limit_of_zero_rewards_referees_only(admin, pos):
    await settings(admin, referrerPoints=50, refereePoints=20, referralLimit=0)
    referrer = await enroll(pos)
    referee = await enroll_referred(pos, await code_of(pos, referrer))
    await record(pos, referee, "10.00")
    assert (await view(admin, referrer))["points"]["available"] == 0
    assert (await view(admin, referee))["points"]["available"] == 30


async def test_a_suspended_referrer_gets_nothing_but_the_referee_does(admin, pos):
    await settings(admin, referrerPoints=50, refereePoints=20)
    referrer = await enroll(pos)
    referee = await enroll_referred(pos, await code_of(pos, referrer))
    suspended = await admin.data(UPDATE_MEMBER, input={"id": referrer, "status": "SUSPENDED"})
    assert suspended["updateMember"]["errors"] == []

    await record(pos, referee, "10.00")

    assert (await view(admin, referrer))["points"]["available"] == 0
    assert (await view(admin, referee))["points"]["available"] == 30
    linked = (await admin.data(REFERRED_BY, id=referee))["member"]["referredBy"]
    assert linked["rewardedAt"] is not None
    assert (linked["referrerPoints"], linked["refereePoints"]) == (0, 20)

    await admin.data(UPDATE_MEMBER, input={"id": referrer, "status": "ACTIVE"})
    await record(pos, referee, "10.00")
    assert (await view(admin, referrer))["points"]["available"] == 0, "rewarded once, already"


async def test_zero_referral_points_write_no_bonus_but_mark_the_referral_rewarded(admin, pos):
    referrer = await enroll(pos)
    referee = await enroll_referred(pos, await code_of(pos, referrer))
    await record(pos, referee, "10.00")
    assert referral_entries(await view(admin, referee)) == []
    assert referral_entries(await view(admin, referrer)) == []
    counts = (await view(admin, referrer))["referralCounts"]
    assert counts == {"enrolled": 1, "rewarded": 1}

    await settings(admin, referrerPoints=50, refereePoints=20)
    await record(pos, referee, "10.00")
    assert (await view(admin, referrer))["points"]["available"] == 0


# --- rewarded once -------------------------------------------------------------------------


async def test_refund_and_rebuy_does_not_reward_again_nor_claw_back(admin, pos):
    await settings(admin, referrerPoints=50, refereePoints=20)
    referrer = await enroll(pos)
    referee = await enroll_referred(pos, await code_of(pos, referrer))
    first = (await record(pos, referee, "25.00"))["purchase"]

    refunded = await pos.data(
        REFUND,
        input=refund_input(first["id"], "25.00"),
    )
    assert refunded["refundPurchase"]["errors"] == []
    assert refunded["refundPurchase"]["pointsClawedBack"] == 25
    assert refunded["refundPurchase"]["purchase"]["status"] == "REFUNDED"
    assert (await view(admin, referee))["points"]["available"] == 20
    assert (await view(admin, referrer))["points"]["available"] == 50

    again = await record(pos, referee, "30.00")

    assert again["pointsAwarded"] == 30
    assert again["member"]["points"]["available"] == 50
    referee_view = await view(admin, referee)
    assert referee_view["points"]["available"] == 50
    assert len(referral_entries(referee_view)) == 1
    referrer_view = await view(admin, referrer)
    assert referrer_view["points"]["available"] == 50
    assert len(referral_entries(referrer_view)) == 1
    assert referrer_view["referralCounts"] == {"enrolled": 1, "rewarded": 1}


async def test_a_purchase_replayed_by_its_key_does_not_reward_twice(admin, pos):
    await settings(admin, referrerPoints=50, refereePoints=20)
    referrer = await enroll(pos)
    referee = await enroll_referred(pos, await code_of(pos, referrer))
    same = purchase_input(referee, "25.00")
    first = (await pos.data(RECORD_PURCHASE, input=same))["recordPurchase"]
    retry = (await pos.data(RECORD_PURCHASE, input=same))["recordPurchase"]
    assert retry["purchase"]["id"] == first["purchase"]["id"]
    assert (await view(admin, referee))["points"]["available"] == 45
    assert (await view(admin, referrer))["points"]["available"] == 50


async def test_a_first_purchase_earning_nothing_does_not_trigger_the_next_one_does(admin, pos):
    await settings(admin, referrerPoints=50, refereePoints=20)
    referrer = await enroll(pos)
    referee = await enroll_referred(pos, await code_of(pos, referrer))

    nothing = await record(pos, referee, "0.99")

    assert nothing["errors"] == [] and nothing["pointsAwarded"] == 0
    assert (await view(admin, referee))["points"]["available"] == 0
    assert (await view(admin, referrer))["points"]["available"] == 0
    linked = (await admin.data(REFERRED_BY, id=referee))["member"]["referredBy"]
    assert linked["rewardedAt"] is None

    earning = await record(pos, referee, "3.00")

    assert earning["pointsAwarded"] == 3
    assert (await view(admin, referee))["points"]["available"] == 23
    assert (await view(admin, referrer))["points"]["available"] == 50
    linked = (await admin.data(REFERRED_BY, id=referee))["member"]["referredBy"]
    assert linked["rewardedAt"] is not None


async def test_points_from_events_or_adjustments_do_not_reward_the_referral(admin, pos):
    await settings(admin, referrerPoints=50, refereePoints=20)
    created = await admin.data(
        """mutation($input: CreateEarningRuleInput!) { createEarningRule(input: $input) {
             errors { code } } }""",
        input={
            "name": "Install",
            "effect": {"kind": "FIXED_BONUS", "value": "30"},
            "conditions": {"eventType": "app_installed"},
        },
    )
    assert created["createEarningRule"]["errors"] == []
    referrer = await enroll(pos)
    referee = await enroll_referred(pos, await code_of(pos, referrer))

    event = await pos.data(
        """mutation($input: RecordEventInput!) { recordEvent(input: $input) {
             pointsAwarded errors { code } } }""",
        input={"idempotencyKey": key(), "memberId": referee, "type": "app_installed"},
    )
    assert event["recordEvent"]["pointsAwarded"] == 30
    await grant(admin, referee, 5)

    assert (await view(admin, referee))["points"]["available"] == 35
    assert (await view(admin, referrer))["points"]["available"] == 0
    assert (await admin.data(REFERRED_BY, id=referee))["member"]["referredBy"]["rewardedAt"] is None

    await record(pos, referee, "10.00")
    assert (await view(admin, referee))["points"]["available"] == 35 + 10 + 20
    assert (await view(admin, referrer))["points"]["available"] == 50


async def test_a_purchase_earning_only_rule_points_rewards_the_referral(admin, pos):
    await settings(admin, referrerPoints=50, refereePoints=20)
    await admin.data(
        """mutation($input: CreateEarningRuleInput!) { createEarningRule(input: $input) {
             errors { code } } }""",
        input={"name": "Bonus", "effect": {"kind": "FIXED_BONUS", "value": "4"}},
    )
    referrer = await enroll(pos)
    referee = await enroll_referred(pos, await code_of(pos, referrer))

    payload = await record(pos, referee, "0.50")

    assert payload["pointsAwarded"] == 4
    assert (await view(admin, referee))["points"]["available"] == 24
    assert (await view(admin, referrer))["points"]["available"] == 50


async def test_a_referrer_who_was_referred_is_rewarded_for_their_own_first_purchase(admin, pos):
    await settings(admin, referrerPoints=50, refereePoints=20)
    first = await enroll(pos)
    second = await enroll_referred(pos, await code_of(pos, first))
    third = await enroll_referred(pos, await code_of(pos, second))

    await record(pos, third, "10.00")
    await record(pos, second, "10.00")

    assert (await view(admin, third))["points"]["available"] == 30
    assert (await view(admin, second))["points"]["available"] == 50 + 10 + 20
    assert (await view(admin, first))["points"]["available"] == 50


# --- who sees what -------------------------------------------------------------------------


async def test_counts_and_the_admin_only_list_paginate(admin, pos):
    await settings(admin, referrerPoints=1, refereePoints=1)
    referrer = await enroll(pos)
    code = await code_of(pos, referrer)
    referees = [await enroll_referred(pos, code) for _ in range(5)]
    await record(pos, referees[1], "5.00")

    first_page = (await admin.data(REFERRALS, id=referrer, first=3))["member"]
    assert first_page["referralCounts"] == {"enrolled": 5, "rewarded": 1}
    assert first_page["referrals"]["pageInfo"]["hasNextPage"] is True
    second_page = (
        await admin.data(
            REFERRALS, id=referrer, first=3, after=first_page["referrals"]["pageInfo"]["endCursor"]
        )
    )["member"]
    assert second_page["referrals"]["pageInfo"]["hasNextPage"] is False
    listed = [
        e["node"]["referee"]["id"]
        for page in (first_page, second_page)
        for e in page["referrals"]["edges"]
    ]
    assert listed == referees[::-1]
    assert {
        e["node"]["referrer"]["id"]
        for page in (first_page, second_page)
        for e in page["referrals"]["edges"]
    } == {referrer}
    other = await enroll(pos)
    empty = (await admin.data(REFERRALS, id=other))["member"]
    assert empty["referralCounts"] == {"enrolled": 0, "rewarded": 0}
    assert empty["referrals"]["edges"] == []


async def test_pos_sees_counts_but_not_the_referrals_or_the_referrer(pos):
    referrer = await enroll(pos)
    referee = await enroll_referred(pos, await code_of(pos, referrer))

    counts = await pos.data(
        "query($id: ID!) { member(id: $id) { referralCounts { enrolled rewarded } } }",
        id=referrer,
    )
    assert counts["member"]["referralCounts"] == {"enrolled": 1, "rewarded": 0}

    listed = await pos(
        "query($id: ID!) { member(id: $id) { referrals(first: 5) { edges { node { id } } } } }",
        id=referrer,
    )
    assert error_codes(listed) == ["FORBIDDEN"]
    assert listed["data"] is None or listed["data"]["member"] is None
    by = await pos("query($id: ID!) { member(id: $id) { referredBy { id } } }", id=referee)
    assert error_codes(by) == ["FORBIDDEN"]
    assert referrer not in str(by.get("data"))


async def test_a_member_sees_their_own_code_and_counts_but_not_the_list(app_client, pos):
    referrer = await enroll(pos)
    code = await code_of(pos, referrer)
    await enroll_referred(pos, code)
    me = app_client.as_(await member_token(app_client, referrer))

    own = await me.data("{ me { referralCode referralCounts { enrolled rewarded } } }")
    assert own["me"] == {"referralCode": code, "referralCounts": {"enrolled": 1, "rewarded": 0}}
    listed = await me("{ me { referrals { edges { node { id } } } } }")
    assert error_codes(listed) == ["FORBIDDEN"]
    by = await me("{ me { referredBy { id } } }")
    assert error_codes(by) == ["FORBIDDEN"]


async def test_a_member_cannot_read_another_members_counts(app_client, pos):
    referrer = await enroll(pos)
    other = await enroll(pos)
    me = app_client.as_(await member_token(app_client, other))
    body = await me(
        "query($id: ID!) { member(id: $id) { referralCounts { enrolled } } }", id=referrer
    )
    assert error_codes(body) == ["FORBIDDEN"]


# --- concurrency ---------------------------------------------------------------------------


async def test_concurrent_purchases_of_one_referee_reward_the_referral_once(admin, pos):
    await settings(admin, referrerPoints=50, refereePoints=20)
    referrer = await enroll(pos)
    referee = await enroll_referred(pos, await code_of(pos, referrer))

    results = await asyncio.gather(
        *(pos.data(RECORD_PURCHASE, input=purchase_input(referee, "10.00")) for _ in range(10))
    )

    assert all(r["recordPurchase"]["errors"] == [] for r in results)
    assert (await view(admin, referee))["points"]["available"] == 100 + 20
    assert (await view(admin, referrer))["points"]["available"] == 50


@pytest.mark.postgres_only
async def test_concurrent_first_purchases_of_many_referees_respect_the_limit(admin, pos):
    await settings(admin, referrerPoints=50, refereePoints=20, referralLimit=3)
    referrer = await enroll(pos)
    code = await code_of(pos, referrer)
    referees = [await enroll_referred(pos, code) for _ in range(20)]

    results = await asyncio.gather(
        *(pos.data(RECORD_PURCHASE, input=purchase_input(r, "10.00")) for r in referees)
    )

    assert all(r["recordPurchase"]["errors"] == [] for r in results)
    assert (await view(admin, referrer))["points"]["available"] == 150
    for referee in referees:
        assert (await view(admin, referee))["points"]["available"] == 30
    listed = (await admin.data(REFERRALS, id=referrer, first=50))["member"]
    assert listed["referralCounts"] == {"enrolled": 20, "rewarded": 20}
    assert (
        sorted(e["node"]["referrerPoints"] for e in listed["referrals"]["edges"])
        == [0] * 17 + [50] * 3
    )
