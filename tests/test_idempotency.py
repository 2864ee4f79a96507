"""Retries: the stored result is replayed, conflicting reuse is refused, and concurrent
identical requests produce one purchase. Runs on SQLite (where concurrent writers queue on
the write lock) and on PostgreSQL (where they race on real connections)."""

import asyncio

from sqlalchemy import func, select

from loyalty.ledger.models import LedgerTransaction
from loyalty.purchases.models import Purchase
from tests.conftest import GraphQLClient, make_key
from tests.helpers import ADJUST, MEMBER, RECORD_PURCHASE, enroll, key, purchase_input


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
