"""Rewards catalog and redemption through the API: happy paths per channel and role, every
failure code with nothing written, the redemption lifecycle, and the codes."""

import re
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from loyalty.tiers.models import Tier
from tests.helpers import (
    CANCEL,
    REDEEM,
    create_reward,
    enroll,
    grant,
    key,
    redeem,
    redeem_input,
)

MEMBER_STATE = """
query($id: ID!) {
  member(id: $id) {
    points { available redeemed }
    redemptions(first: 50) { edges { node { id status code reward { name } } } }
    ledger(first: 50) { edges { node { kind points redemption { id } } } }
  }
}
"""

REWARD = "query($id: ID!) { reward(id: $id) { id stock } }"

USED = """
mutation($input: MarkRedemptionUsedInput!) {
  markRedemptionUsed(input: $input) { redemption { id status usedAt } errors { code message } }
}
"""


async def state(admin, member_id):
    return (await admin.data(MEMBER_STATE, id=member_id))["member"]


async def member_token(app_client, member_id) -> str:
    data = await app_client.data(
        "mutation($input: IssueMemberTokenInput!) { issueMemberToken(input: $input) "
        "{ token errors { code } } }",
        input={"memberId": member_id},
    )
    return data["issueMemberToken"]["token"]


@pytest.mark.parametrize("channel", ["IN_STORE", "ONLINE", "MOBILE_APP"])
async def test_a_till_redeems_for_a_member_in_each_channel(admin, pos, channel):
    member_id = await enroll(pos)
    await grant(admin, member_id, 250)
    reward_id = await create_reward(admin, name="Free coffee", costPoints=100, stock=5)

    payload = await redeem(pos, member_id, reward_id, channel)

    assert payload["errors"] == []
    assert payload["redemption"]["status"] == "ISSUED"
    assert payload["redemption"]["pointsSpent"] == 100
    assert payload["redemption"]["reward"]["stock"] == 4
    assert payload["member"]["points"] == {"available": 150, "redeemed": 100}
    member = await state(admin, member_id)
    assert member["ledger"]["edges"][0]["node"]["kind"] == "REDEEM"
    assert member["ledger"]["edges"][0]["node"]["points"] == -100
    assert member["ledger"]["edges"][0]["node"]["redemption"]["id"] == payload["redemption"]["id"]


async def test_a_member_token_redeems_for_itself_only(admin, pos, app_client):
    me = await enroll(pos)
    other = await enroll(pos)
    await grant(admin, me, 300)
    await grant(admin, other, 300)
    reward_id = await create_reward(admin)
    phone = app_client.as_(await member_token(app_client, me))

    mine = await redeem(phone, me, reward_id, "MOBILE_APP")
    assert mine["errors"] == []

    body = await phone(REDEEM, input=redeem_input(other, reward_id, "MOBILE_APP"))
    assert body["errors"][0]["extensions"]["code"] == "FORBIDDEN"
    assert body["data"] is None or body["data"]["redeemReward"] is None
    assert (await state(admin, other))["points"]["available"] == 300


async def test_the_app_key_cannot_redeem(admin, pos, app_client):
    member_id = await enroll(pos)
    await grant(admin, member_id, 300)
    reward_id = await create_reward(admin)
    body = await app_client(REDEEM, input=redeem_input(member_id, reward_id))
    assert body["errors"][0]["extensions"]["code"] == "FORBIDDEN"


async def _failure(admin, pos, member_id, reward_id, channel="IN_STORE"):
    before = await state(admin, member_id)
    stock_before = (await admin.data(REWARD, id=reward_id))["reward"]
    payload = await redeem(pos, member_id, reward_id, channel)
    assert payload["redemption"] is None
    assert await state(admin, member_id) == before, "a failed redemption wrote something"
    assert (await admin.data(REWARD, id=reward_id))["reward"] == stock_before
    return [e["code"] for e in payload["errors"]]


async def test_insufficient_points(admin, pos):
    member_id = await enroll(pos)
    await grant(admin, member_id, 99)
    reward_id = await create_reward(admin, costPoints=100, stock=3)
    assert await _failure(admin, pos, member_id, reward_id) == ["INSUFFICIENT_POINTS"]


async def test_out_of_stock(admin, pos):
    member_id = await enroll(pos)
    await grant(admin, member_id, 1000)
    reward_id = await create_reward(admin, stock=1)
    assert (await redeem(pos, member_id, reward_id))["errors"] == []
    assert await _failure(admin, pos, member_id, reward_id) == ["OUT_OF_STOCK"]


async def test_limit_reached_and_released_by_cancelling(admin, pos):
    member_id = await enroll(pos)
    await grant(admin, member_id, 1000)
    reward_id = await create_reward(admin, perMemberLimit=2)
    first = await redeem(pos, member_id, reward_id)
    await redeem(pos, member_id, reward_id)
    assert await _failure(admin, pos, member_id, reward_id) == ["LIMIT_REACHED"]

    await pos.data(
        CANCEL,
        input={"idempotencyKey": key(), "redemptionId": first["redemption"]["id"]},
    )
    assert (await redeem(pos, member_id, reward_id))["errors"] == []


@pytest.mark.parametrize(
    ("reward_fields", "channel"),
    [
        ({"active": False}, "IN_STORE"),
        ({"channels": ["ONLINE"]}, "IN_STORE"),
        ({"startsAt": (datetime.now(UTC) + timedelta(days=1)).isoformat()}, "IN_STORE"),
        ({"endsAt": (datetime.now(UTC) - timedelta(days=1)).isoformat()}, "IN_STORE"),
    ],
    ids=["inactive", "wrong channel", "not started", "ended"],
)
async def test_not_eligible(admin, pos, reward_fields, channel):
    member_id = await enroll(pos)
    await grant(admin, member_id, 500)
    reward_id = await create_reward(admin, **reward_fields)
    assert await _failure(admin, pos, member_id, reward_id, channel) == ["NOT_ELIGIBLE"]


async def test_minimum_tier(admin, pos, db):
    async with db.transaction() as session:
        silver = Tier(name="Silver", rank=2, threshold=500, multiplier=Decimal(1))
        session.add(silver)
        await session.flush()
        silver_id = silver.id
    from loyalty.ids import encode_id

    member_id = await enroll(pos)
    await grant(admin, member_id, 500)
    reward_id = await create_reward(admin, minTierId=encode_id("Tier", silver_id))
    assert await _failure(admin, pos, member_id, reward_id) == ["NOT_ELIGIBLE"]


async def test_inactive_member(admin, pos):
    member_id = await enroll(pos)
    await grant(admin, member_id, 500)
    reward_id = await create_reward(admin)
    await admin.data(
        "mutation($input: UpdateMemberInput!) { updateMember(input: $input) { errors { code } } }",
        input={"id": member_id, "status": "SUSPENDED"},
    )
    assert await _failure(admin, pos, member_id, reward_id) == ["MEMBER_INACTIVE"]


async def test_unknown_member_and_reward(admin, pos):
    member_id = await enroll(pos)
    reward_id = await create_reward(admin)
    for member, reward in (("TWVtYmVyOjk5OTk", reward_id), (member_id, "bogus")):
        payload = await redeem(pos, member, reward)
        assert [e["code"] for e in payload["errors"]] == ["NOT_FOUND"]


async def test_cancel_gives_points_and_stock_back_once(admin, pos):
    member_id = await enroll(pos)
    await grant(admin, member_id, 300)
    reward_id = await create_reward(admin, stock=2)
    issued = (await redeem(pos, member_id, reward_id))["redemption"]
    cancel = {"idempotencyKey": key(), "redemptionId": issued["id"]}

    cancelled = (await pos.data(CANCEL, input=cancel))["cancelRedemption"]
    replayed = (await pos.data(CANCEL, input=cancel))["cancelRedemption"]
    again = (await pos.data(CANCEL, input={**cancel, "idempotencyKey": key()}))["cancelRedemption"]

    assert cancelled["redemption"]["status"] == "CANCELLED"
    assert cancelled["member"]["points"] == {"available": 300, "redeemed": 0}
    assert replayed == cancelled
    assert [e["code"] for e in again["errors"]] == ["ALREADY_CANCELLED"]
    assert (await admin.data(REWARD, id=reward_id))["reward"]["stock"] == 2
    kinds = [e["node"]["kind"] for e in (await state(admin, member_id))["ledger"]["edges"]]
    assert kinds == ["REDEMPTION_CANCEL", "REDEEM", "ADJUST"]


async def test_a_used_code_cannot_be_cancelled_or_used_again(admin, pos):
    member_id = await enroll(pos)
    await grant(admin, member_id, 300)
    reward_id = await create_reward(admin)
    issued = (await redeem(pos, member_id, reward_id))["redemption"]

    found = await pos.data(
        "query($c: String!) { redemptionByCode(code: $c) { id status member { id } } }",
        c=issued["code"],
    )
    assert found["redemptionByCode"] == {
        "id": issued["id"],
        "status": "ISSUED",
        "member": {"id": member_id},
    }
    used = (await pos.data(USED, input={"code": issued["code"]}))["markRedemptionUsed"]
    assert used["redemption"]["status"] == "USED"
    again = (await pos.data(USED, input={"redemptionId": issued["id"]}))["markRedemptionUsed"]
    assert [e["code"] for e in again["errors"]] == ["INVALID"]
    cancel = (
        await pos.data(CANCEL, input={"idempotencyKey": key(), "redemptionId": issued["id"]})
    )["cancelRedemption"]
    assert [e["code"] for e in cancel["errors"]] == ["INVALID"]
    assert (await state(admin, member_id))["points"]["available"] == 200


async def test_generated_codes_are_unique_and_unguessable(admin, pos):
    member_id = await enroll(pos)
    await grant(admin, member_id, 3000)
    reward_id = await create_reward(admin, costPoints=10)
    codes = [(await redeem(pos, member_id, reward_id))["redemption"]["code"] for _ in range(30)]
    assert len(set(codes)) == 30
    # 16 symbols of a 32-symbol alphabet: 80 bits of randomness
    assert all(re.fullmatch(r"[A-HJ-NP-Z2-9]{4}(-[A-HJ-NP-Z2-9]{4}){3}", c) for c in codes)


async def test_a_pool_code_is_issued_once_and_an_empty_pool_is_out_of_stock(admin, pos):
    member_id = await enroll(pos)
    await grant(admin, member_id, 1000)
    reward_id = await create_reward(admin, kind="CODE_POOL", costPoints=50)
    upload = {"idempotencyKey": key(), "rewardId": reward_id, "codes": ["PARTNER-A", "PARTNER-B"]}
    added = await admin.data(
        "mutation($input: AddRewardCodesInput!) { addRewardCodes(input: $input) "
        "{ added reward { stock } errors { code } } }",
        input=upload,
    )
    retried = await admin.data(
        "mutation($input: AddRewardCodesInput!) { addRewardCodes(input: $input) "
        "{ added reward { stock } errors { code } } }",
        input=upload,
    )
    assert retried == added
    assert added["addRewardCodes"]["added"] == 2
    assert added["addRewardCodes"]["reward"]["stock"] == 2

    first = (await redeem(pos, member_id, reward_id))["redemption"]
    await pos.data(CANCEL, input={"idempotencyKey": key(), "redemptionId": first["id"]})
    second = (await redeem(pos, member_id, reward_id))["redemption"]

    assert {first["code"], second["code"]} == {"PARTNER-A", "PARTNER-B"}
    assert await _failure(admin, pos, member_id, reward_id) == ["OUT_OF_STOCK"]
    duplicate = await admin.data(
        "mutation($input: AddRewardCodesInput!) { addRewardCodes(input: $input) "
        "{ added errors { code } } }",
        input={"idempotencyKey": key(), "rewardId": reward_id, "codes": ["PARTNER-A"]},
    )
    assert duplicate["addRewardCodes"]["errors"] == [{"code": "ALREADY_EXISTS"}]


async def test_catalog_for_a_member_says_why_not(admin, pos, app_client):
    member_id = await enroll(pos)
    await grant(admin, member_id, 150)
    affordable = await create_reward(admin, name="Cookie", costPoints=100)
    await create_reward(admin, name="Mug", costPoints=500)
    await create_reward(admin, name="In store only", costPoints=10, channels=["IN_STORE"])
    await create_reward(admin, name="Retired", costPoints=10, active=False)
    phone = app_client.as_(await member_token(app_client, member_id))
    catalog = """query($only: Boolean!) { rewards(availableOnly: $only, first: 50) {
        edges { node { id name ineligibleReason } } } }"""

    everything = (await phone.data(catalog, only=False))["rewards"]["edges"]
    available = (await phone.data(catalog, only=True))["rewards"]["edges"]
    staff_view = (await pos.data(catalog, only=True))["rewards"]["edges"]

    assert {e["node"]["name"]: e["node"]["ineligibleReason"] for e in everything} == {
        "Cookie": None,
        "Mug": "INSUFFICIENT_POINTS",
        "In store only": "NOT_ELIGIBLE",
        "Retired": "NOT_ELIGIBLE",
    }
    assert [e["node"]["id"] for e in available] == [affordable]
    assert [e["node"]["name"] for e in staff_view] == ["Cookie", "Mug", "In store only"]


async def test_bad_reward_input(admin):
    for fields, field in (
        ({"costPoints": 0}, "costPoints"),
        ({"stock": -1}, "stock"),
        ({"perMemberLimit": 0}, "perMemberLimit"),
        ({"name": " "}, "name"),
        (
            {
                "startsAt": "2026-02-01T00:00:00+00:00",
                "endsAt": "2026-01-01T00:00:00+00:00",
            },
            "endsAt",
        ),
        ({"kind": "CODE_POOL", "stock": 5}, "stock"),
    ):
        data = await admin.data(
            """mutation($input: CreateRewardInput!) { createReward(input: $input) {
                reward { id } errors { code field } } }""",
            input={"name": "x", "costPoints": 10, **fields},
        )
        assert data["createReward"] == {
            "reward": None,
            "errors": [{"code": "INVALID", "field": [field]}],
        }, fields
    rewards = await admin.data("{ rewards { edges { node { id } } } }")
    assert rewards["rewards"]["edges"] == []


async def test_update_reward(admin):
    reward_id = await create_reward(admin, stock=3)
    data = await admin.data(
        """mutation($input: UpdateRewardInput!) { updateReward(input: $input) {
            reward { costPoints stock active channels } errors { code } } }""",
        input={"id": reward_id, "costPoints": 250, "stock": None, "channels": ["ONLINE"]},
    )
    assert data["updateReward"]["reward"] == {
        "costPoints": 250,
        "stock": None,
        "active": True,
        "channels": ["ONLINE"],
    }


async def test_a_member_token_redeems_in_the_app_only(admin, pos, app_client):
    member_id = await enroll(pos)
    await grant(admin, member_id, 300)
    reward_id = await create_reward(admin, channels=["IN_STORE"])
    phone = app_client.as_(await member_token(app_client, member_id))
    body = await phone(REDEEM, input=redeem_input(member_id, reward_id, "IN_STORE"))
    assert body["errors"][0]["extensions"]["code"] == "FORBIDDEN"
    assert (await state(admin, member_id))["points"]["available"] == 300


async def test_null_for_a_required_reward_field_is_invalid(admin):
    reward_id = await create_reward(admin)
    for field, value in (("costPoints", None), ("active", None)):
        data = await admin.data(
            """mutation($input: UpdateRewardInput!) { updateReward(input: $input) {
                reward { id } errors { code field } } }""",
            input={"id": reward_id, field: value},
        )
        assert data["updateReward"]["errors"] == [{"code": "INVALID", "field": [field]}]


async def test_an_out_of_range_window_is_invalid(admin):
    data = await admin.data(
        """mutation($input: CreateRewardInput!) { createReward(input: $input) {
            reward { id } errors { code field } } }""",
        input={"name": "x", "costPoints": 1, "endsAt": "9999-12-31T23:59:59-05:00"},
    )
    assert data["createReward"]["errors"] == [{"code": "INVALID", "field": ["endsAt"]}]
