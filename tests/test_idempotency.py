"""Retries: the stored result is replayed, conflicting reuse is refused, and concurrent
identical requests produce one purchase. Runs on SQLite (where concurrent writers queue on
the write lock) and on PostgreSQL (where they race on real connections)."""

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import pytest
from sqlalchemy import func, select

from loyalty.idempotency.models import IdempotencyKey
from loyalty.ledger.models import LedgerTransaction
from loyalty.purchases.models import Purchase
from tests.conftest import GraphQLClient, make_key
from tests.helpers import (
    ADJUST,
    MEMBER,
    RECORD_PURCHASE,
    REDEEM,
    create_reward,
    enroll,
    grant,
    key,
    purchase_input,
    redeem_input,
    refund_input,
)


async def count(db, model) -> int:
    async with db.transaction() as session:
        return await session.scalar(select(func.count()).select_from(model))


async def test_same_key_twice_replays_the_original_result(pos, db):
    member_id = await enroll(pos)
    purchase = purchase_input(member_id, "42.10")

    first = await pos.data(RECORD_PURCHASE, input=purchase)
    second = await pos.data(RECORD_PURCHASE, input=purchase)

    assert first == second
    assert first["recordPurchase"]["pointsAwarded"] == 42
    assert await count(db, Purchase) == 1
    assert await count(db, LedgerTransaction) == 1


async def test_same_key_with_different_input_is_a_conflict_and_writes_nothing(pos, admin, db):
    member_id = await enroll(pos)
    purchase = purchase_input(member_id, "10.00")
    await pos.data(RECORD_PURCHASE, input=purchase)

    changed = {**purchase, "total": {"amount": "99.00", "currency": "USD"}}
    payload = (await pos.data(RECORD_PURCHASE, input=changed))["recordPurchase"]

    assert payload["purchase"] is None
    assert [e["code"] for e in payload["errors"]] == ["IDEMPOTENCY_CONFLICT"]
    member = (await admin.data(MEMBER, id=member_id))["member"]
    assert member["points"]["available"] == 10
    assert await count(db, Purchase) == 1


async def test_keys_are_scoped_per_caller(client, pos, db):
    other_till = GraphQLClient(client, await make_key(db, "pos", "till 2"))
    member_id = await enroll(pos)
    shared_key = key()

    first = await pos.data(
        RECORD_PURCHASE, input=purchase_input(member_id, idempotencyKey=shared_key)
    )
    second = await other_till.data(
        RECORD_PURCHASE, input=purchase_input(member_id, idempotencyKey=shared_key)
    )

    assert first["recordPurchase"]["errors"] == second["recordPurchase"]["errors"] == []
    assert first["recordPurchase"]["purchase"]["id"] != second["recordPurchase"]["purchase"]["id"]


async def test_a_failed_attempt_does_not_burn_the_key(admin, pos):
    member_id = await enroll(pos)
    debit = {"idempotencyKey": key(), "memberId": member_id, "points": -30, "reason": "fix"}

    refused = (await admin.data(ADJUST, input=debit))["adjustPoints"]
    assert [e["code"] for e in refused["errors"]] == ["INSUFFICIENT_POINTS"]

    await pos.data(RECORD_PURCHASE, input=purchase_input(member_id, "50.00"))
    retried = (await admin.data(ADJUST, input=debit))["adjustPoints"]
    assert retried["errors"] == []
    assert retried["member"]["points"]["available"] == 20


async def test_adjustment_retry_replays(admin, pos, db):
    member_id = await enroll(pos)
    credit = {"idempotencyKey": key(), "memberId": member_id, "points": 15, "reason": "goodwill"}

    first = await admin.data(ADJUST, input=credit)
    second = await admin.data(ADJUST, input=credit)

    assert first == second
    assert first["adjustPoints"]["entry"]["balanceAfter"] == 15
    assert await count(db, LedgerTransaction) == 1


async def test_twenty_concurrent_identical_requests_make_one_purchase(pos, db):
    member_id = await enroll(pos)
    purchase = purchase_input(member_id, "17.00")

    responses = await asyncio.gather(
        *(pos.data(RECORD_PURCHASE, input=purchase) for _ in range(20))
    )

    payloads = [r["recordPurchase"] for r in responses]
    assert all(p["errors"] == [] for p in payloads)
    assert len({p["purchase"]["id"] for p in payloads}) == 1
    assert await count(db, Purchase) == 1
    assert await count(db, LedgerTransaction) == 1


async def test_concurrent_purchases_of_one_member_all_count(pos, admin):
    member_id = await enroll(pos)

    responses = await asyncio.gather(
        *(pos.data(RECORD_PURCHASE, input=purchase_input(member_id, "3.00")) for _ in range(30))
    )

    assert all(r["recordPurchase"]["errors"] == [] for r in responses)
    member = (await admin.data(MEMBER, id=member_id))["member"]
    assert member["points"]["available"] == 90
    balances = sorted(e["node"]["balanceAfter"] for e in member["ledger"]["edges"])
    assert balances == list(range(63, 91, 3))


# --- replays answer with the first response's figures, whatever happened since -------------

REFUND = """mutation($input: RefundPurchaseInput!) { refundPurchase(input: $input) {
  purchase { id pointsAwarded pointsRefunded pointsUnrecovered refunded { amount } status }
  pointsClawedBack errors { code field } } }"""
RECORD = """mutation($input: RecordPurchaseInput!) { recordPurchase(input: $input) {
  purchase { id pointsAwarded pointsRefunded pointsUnrecovered refunded { amount } status }
  pointsAwarded member { id points { available pending } } errors { code field } } }"""
REDEMPTION = "redemption { id code status pointsSpent usedAt cancelledAt }"
REDEEM_REWARD = f"""mutation($input: RedeemRewardInput!) {{ redeemReward(input: $input) {{
  {REDEMPTION} member {{ id points {{ available }} }} errors {{ code field }} }} }}"""
CANCEL_REDEMPTION = f"""mutation($input: CancelRedemptionInput!) {{
  cancelRedemption(input: $input) {{
  {REDEMPTION} member {{ id points {{ available }} }} errors {{ code field }} }} }}"""
MARK_USED = """mutation($input: MarkRedemptionUsedInput!) { markRedemptionUsed(input: $input) {
  errors { code } } }"""
ADD_CODES = """mutation($input: AddRewardCodesInput!) { addRewardCodes(input: $input) {
  reward { id stock } added errors { code field } } }"""
RECORD_EVENT = """mutation($input: RecordEventInput!) { recordEvent(input: $input) {
  event { id type pointsAwarded } pointsAwarded member { id points { available } }
  errors { code field } } }"""
EVENT_RULE = """mutation($input: CreateEarningRuleInput!) { createEarningRule(input: $input) {
  errors { code } } }"""
SUBMIT_FEEDBACK = """mutation($input: SubmitFeedbackInput!) { submitFeedback(input: $input) {
  feedback { id kind score } errors { code field } } }"""
ERASE = """mutation($input: EraseMemberInput!) { eraseMember(input: $input) {
  member { id status points { available pending } } errors { code field } } }"""


async def ok(client, document: str, **variables) -> dict:
    """The mutation's payload, asserting it succeeded."""
    (payload,) = (await client.data(document, **variables)).values()
    assert payload["errors"] == [], payload["errors"]
    return payload


async def buy(pos, member_id: str, amount: str = "20.00") -> str:
    return (await ok(pos, RECORD, input=purchase_input(member_id, amount)))["purchase"]["id"]


def adjust_input(member_id: str, points: int) -> dict:
    return {"idempotencyKey": key(), "memberId": member_id, "points": points, "reason": "t"}


@dataclass(frozen=True)
class Replayed:
    """One idempotent mutation: ``first`` sets up and returns its document and input,
    ``change`` alters what the first response reported, ``other`` is another input."""

    first: Callable[[Any, Any, str], Awaitable[tuple[str, dict]]]
    change: Callable[[Any, Any, str, dict], Awaitable[None]]
    other: Callable[[dict], dict]


async def record_first(admin, pos, member_id):
    return RECORD, purchase_input(member_id, "20.00")


async def record_change(admin, pos, member_id, response):
    await ok(pos, REFUND, input=refund_input(response["purchase"]["id"], "5.00"))
    await buy(pos, member_id)


async def refund_first(admin, pos, member_id):
    return REFUND, refund_input(await buy(pos, member_id), "5.00")


async def refund_change(admin, pos, member_id, response):
    await ok(pos, REFUND, input=refund_input(response["purchase"]["id"], "15.00"))


async def adjust_first(admin, pos, member_id):
    return ADJUST, adjust_input(member_id, 7)


async def adjust_change(admin, pos, member_id, response):
    await ok(admin, ADJUST, input=adjust_input(member_id, -3))
    await buy(pos, member_id)


async def redeem_first(admin, pos, member_id):
    await grant(admin, member_id, 500)
    return REDEEM_REWARD, redeem_input(member_id, await create_reward(admin, stock=5))


async def redeem_change(admin, pos, member_id, response):
    await ok(pos, MARK_USED, input={"redemptionId": response["redemption"]["id"]})
    await buy(pos, member_id)


async def cancel_first(admin, pos, member_id):
    await grant(admin, member_id, 500)
    issued = await ok(pos, REDEEM, input=redeem_input(member_id, await create_reward(admin)))
    return CANCEL_REDEMPTION, {"idempotencyKey": key(), "redemptionId": issued["redemption"]["id"]}


async def cancel_change(admin, pos, member_id, response):
    await buy(pos, member_id)


async def codes_first(admin, pos, member_id):
    reward_id = await create_reward(admin, kind="CODE_POOL", costPoints=50)
    await grant(admin, member_id, 500)
    return ADD_CODES, {"idempotencyKey": key(), "rewardId": reward_id, "codes": [key(), key()]}


async def codes_change(admin, pos, member_id, response):
    await ok(pos, REDEEM, input=redeem_input(member_id, response["reward"]["id"]))


async def event_first(admin, pos, member_id):
    rule = {"name": "install", "effect": {"kind": "FIXED_BONUS", "value": "30"}}
    await ok(admin, EVENT_RULE, input={**rule, "conditions": {"eventType": "app_installed"}})
    return RECORD_EVENT, {"idempotencyKey": key(), "memberId": member_id, "type": "app_installed"}


async def event_change(admin, pos, member_id, response):
    await ok(admin, ADJUST, input=adjust_input(member_id, -10))
    await buy(pos, member_id)


async def feedback_first(admin, pos, member_id):
    purchase_id = await buy(pos, member_id)
    feedback = {"memberId": member_id, "kind": "NPS", "score": 9, "purchaseId": purchase_id}
    return SUBMIT_FEEDBACK, {"idempotencyKey": key(), **feedback}


async def feedback_change(admin, pos, member_id, response):
    feedback = {"memberId": member_id, "kind": "CSAT", "score": 2, "comment": "slow"}
    await ok(pos, SUBMIT_FEEDBACK, input={"idempotencyKey": key(), **feedback})


async def erase_first(admin, pos, member_id):
    await buy(pos, member_id)
    return ERASE, {"idempotencyKey": key(), "memberId": member_id, "reason": "request"}


async def erase_change(admin, pos, member_id, response):
    await ok(admin, ERASE, input={"idempotencyKey": key(), "memberId": member_id, "reason": "x"})


REPLAYED = {
    "recordPurchase": Replayed(
        record_first, record_change, lambda i: {**i, "total": {"amount": "21", "currency": "USD"}}
    ),
    "refundPurchase": Replayed(
        refund_first, refund_change, lambda i: {**i, "amount": {"amount": "6", "currency": "USD"}}
    ),
    "adjustPoints": Replayed(adjust_first, adjust_change, lambda i: {**i, "points": 8}),
    "redeemReward": Replayed(redeem_first, redeem_change, lambda i: {**i, "channel": "ONLINE"}),
    "cancelRedemption": Replayed(cancel_first, cancel_change, lambda i: {**i, "redemptionId": "x"}),
    "addRewardCodes": Replayed(codes_first, codes_change, lambda i: {**i, "codes": ["OTHER"]}),
    "recordEvent": Replayed(event_first, event_change, lambda i: {**i, "type": "review_written"}),
    "submitFeedback": Replayed(feedback_first, feedback_change, lambda i: {**i, "score": 8}),
    "eraseMember": Replayed(erase_first, erase_change, lambda i: {**i, "reason": "other"}),
}


def reported(payload: dict) -> dict:
    """What a replay must repeat: everything but ``member``, which shows the present state
    (except for eraseMember, where the member is the result)."""
    kept = {name: value for name, value in payload.items() if name != "member"}
    return kept if len(kept) > 1 else payload


@pytest.mark.parametrize("operation", REPLAYED)
async def test_a_replay_reports_what_the_first_call_did(operation, admin, pos):
    case = REPLAYED[operation]
    member_id = await enroll(pos)
    document, input = await case.first(admin, pos, member_id)
    client = admin if operation in ("adjustPoints", "addRewardCodes", "eraseMember") else pos

    first = await ok(client, document, input=input)
    await case.change(admin, pos, member_id, first)
    replay = await ok(client, document, input=input)

    assert reported(replay) == reported(first)


@pytest.mark.parametrize("operation", REPLAYED)
async def test_another_request_under_a_used_key_is_a_conflict(operation, admin, pos):
    case = REPLAYED[operation]
    member_id = await enroll(pos)
    document, input = await case.first(admin, pos, member_id)
    client = admin if operation in ("adjustPoints", "addRewardCodes", "eraseMember") else pos
    first = await ok(client, document, input=input)

    (refused,) = (await client.data(document, input=case.other(input))).values()

    assert [e["code"] for e in refused["errors"]] == ["IDEMPOTENCY_CONFLICT"]
    assert (await ok(client, document, input=input)) == first


async def test_a_purchase_replay_shows_the_purchase_as_recorded_and_the_member_as_now(pos):
    member_id = await enroll(pos)
    input = purchase_input(member_id, "20.00")
    first = await ok(pos, RECORD, input=input)
    await record_change(None, pos, member_id, first)

    replay = await ok(pos, RECORD, input=input)

    assert replay["purchase"]["status"] == "COMPLETED"
    assert replay["purchase"]["refunded"]["amount"] == first["purchase"]["refunded"]["amount"]
    assert first["member"]["points"]["available"] == 20
    assert replay["member"]["points"]["available"] == 20 - 5 + 20


async def test_a_key_stored_before_figures_were_kept_replays_the_rows_as_they_are(pos, db):
    member_id = await enroll(pos)
    input = purchase_input(member_id, "20.00")
    first = await ok(pos, RECORD, input=input)
    async with db.transaction() as session:
        stored = await session.scalar(
            select(IdempotencyKey).where(IdempotencyKey.key == input["idempotencyKey"])
        )
        names = ("purchase_id", "member_id", "points_awarded")  # the result's old shape
        stored.result = {name: stored.result[name] for name in names}
    await ok(pos, REFUND, input=refund_input(first["purchase"]["id"], "5.00"))

    replay = await ok(pos, RECORD, input=input)

    assert replay["pointsAwarded"] == first["pointsAwarded"]
    assert replay["purchase"]["id"] == first["purchase"]["id"]
    assert replay["purchase"]["status"] == "PARTIALLY_REFUNDED"
