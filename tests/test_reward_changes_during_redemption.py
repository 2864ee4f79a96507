"""An admin's change to a reward, committed while a redemption is under way, is honoured:
the redemption never sells at the old price. PostgreSQL, over real connections."""

import asyncio

import pytest
from sqlalchemy import text

from loyalty.ids import decode_id
from tests.helpers import create_reward, enroll, grant, redeem

pytestmark = pytest.mark.postgres_only

BALANCE = "query($id: ID!) { member(id: $id) { points { available } } }"


async def _redeem_while_the_reward_changes(db, pos, member_id: str, reward_id: str, change: str):
    """Hold an uncommitted admin change, start the redemption, wait until it waits for the
    change's row lock, then commit the change and let the redemption finish."""
    async with db.write_engine.connect() as admin, db.write_engine.connect() as watcher:
        transaction = await admin.begin()
        await admin.execute(text(change), {"id": decode_id("Reward", reward_id)})
        redemption = asyncio.create_task(redeem(pos, member_id, reward_id))
        for _ in range(200):
            waiting = await watcher.scalar(
                text(
                    "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
                    "AND datname = current_database()"
                )
            )
            await watcher.rollback()
            if waiting:
                break
            await asyncio.sleep(0.02)
        assert waiting, "the redemption never waited for the admin's change"
        await transaction.commit()
        return await redemption


async def test_an_unlimited_reward_is_charged_at_the_new_price(admin, pos, db):
    member_id = await enroll(pos)
    await grant(admin, member_id, 500)
    reward_id = await create_reward(admin, costPoints=100)

    payload = await _redeem_while_the_reward_changes(
        db, pos, member_id, reward_id, "UPDATE rewards SET cost_points = 300 WHERE id = :id"
    )

    assert payload["errors"] == []
    assert payload["redemption"]["pointsSpent"] == 300
    assert payload["member"]["points"]["available"] == 200


async def test_a_limited_reward_changed_meanwhile_is_refused_and_nothing_is_written(admin, pos, db):
    member_id = await enroll(pos)
    await grant(admin, member_id, 500)
    reward_id = await create_reward(admin, costPoints=100, stock=5)

    payload = await _redeem_while_the_reward_changes(
        db, pos, member_id, reward_id, "UPDATE rewards SET cost_points = 300 WHERE id = :id"
    )

    assert [e["code"] for e in payload["errors"]] == ["NOT_ELIGIBLE"]
    assert (await admin.data(BALANCE, id=member_id))["member"]["points"]["available"] == 500
    stock = await admin.data("query($id: ID!) { reward(id: $id) { stock } }", id=reward_id)
    assert stock["reward"]["stock"] == 5
