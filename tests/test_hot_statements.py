"""Hot statements (sent straight to asyncpg on PostgreSQL) behave as the session's own: they
run in its transaction, return what the session would, and a failure leaves nothing behind."""

import uuid
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import bindparam, func, insert, select

from loyalty.db import Database, columns_of, utcnow
from loyalty.hot_statements import HotStatement
from loyalty.idempotency.models import IdempotencyKey
from loyalty.ids import decode_id
from loyalty.members.models import Channel, Member
from loyalty.outbox.service import event_id
from loyalty.purchases import service as purchases
from loyalty.purchases.models import Purchase
from loyalty.purchases.service import MoneyIn, PurchaseIn
from tests.helpers import enroll, key, record

_MEMBER = select(*columns_of(Member)).where(Member.__table__.c.id == bindparam("member"))
MEMBER = HotStatement(lambda _: _MEMBER)
KEYS = IdempotencyKey.__table__
CLAIM = HotStatement(lambda _: insert(KEYS).returning(KEYS.c.id))


async def count(db: Database, *what: Any) -> list[int]:
    async with db.transaction() as session:
        return [int(await session.scalar(select(func.count()).select_from(t)) or 0) for t in what]


async def test_a_hot_statement_returns_what_the_session_would(db: Database, pos):
    member = await enroll(pos)
    assert (await record(pos, member, "12.00"))["errors"] == []
    params = {"member": decode_id("Member", member)}
    async with db.transaction() as session:
        fast = dict((await MEMBER.rows(session, params))[0])
        slow = dict((await session.execute(_MEMBER, params)).one()._mapping)
    assert fast == slow
    assert {name: type(value) for name, value in fast.items()} == {
        name: type(value) for name, value in slow.items()
    }
    assert fast["enrolled_at"].utcoffset() == timedelta(0)
    assert fast["points_available"] == 12


async def test_a_hot_write_rolls_back_with_its_transaction(db: Database):
    """The first statement of a transaction may be a hot one: it still runs inside it."""
    before = await count(db, KEYS)
    with pytest.raises(RuntimeError):
        async with db.transaction() as session:
            await CLAIM.rows(session, claim_values())
            raise RuntimeError("the mutation failed after its first write")
    assert await count(db, KEYS) == before


async def test_a_failed_hot_statement_leaves_nothing_and_the_database_serves_on(db: Database):
    values = claim_values()
    async with db.transaction() as session:
        await CLAIM.rows(session, values)
    before = await count(db, KEYS)
    with pytest.raises(Exception, match=r"(?i)unique"):
        async with db.transaction() as session:
            await CLAIM.rows(session, claim_values())
            await CLAIM.rows(session, values)
    assert await count(db, KEYS) == before
    async with db.transaction() as session:
        await CLAIM.rows(session, claim_values())
    assert await count(db, KEYS) == [before[0] + 1]


async def test_a_purchase_whose_transaction_fails_later_writes_nothing(db: Database, pos):
    member = decode_id("Member", await enroll(pos))
    before = await count(db, Purchase.__table__, KEYS)
    with pytest.raises(RuntimeError):
        async with db.transaction() as session:
            result = await purchases.record_purchase(
                session,
                scope="test",
                idempotency_key=key(),
                purchase=PurchaseIn(
                    order_id=f"order-{key()[:12]}",
                    channel=Channel.IN_STORE,
                    total=MoneyIn("30.00", "USD"),
                    member_id=member,
                ),
            )
            assert result.points_awarded == 30
            raise RuntimeError("something after the purchase failed")
    assert await count(db, Purchase.__table__, KEYS) == before
    async with db.transaction() as session:
        row = (await MEMBER.rows(session, {"member": member}))[0]
    assert (row["points_available"], row["lifetime_earned"]) == (0, 0)


def test_event_ids_are_version_7_uuids_in_the_order_they_are_made():
    now = utcnow()
    ids = [event_id(now + timedelta(milliseconds=n)) for n in range(50)]
    assert all(uuid.UUID(made).version == 7 for made in ids)
    assert ids == sorted(ids)
    assert len(set(event_id(now) for _ in range(1000))) == 1000


def claim_values() -> dict[str, Any]:
    return {
        "scope": "test",
        "key": key(),
        "operation": "test",
        "request_hash": "0" * 64,
        "result": {"stored": ["as", "JSON"]},
        "created_at": utcnow(),
    }
