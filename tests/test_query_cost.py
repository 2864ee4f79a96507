"""A page of members with tier and balances costs a constant number of SQL statements."""

from contextlib import contextmanager
from decimal import Decimal

import pytest
from sqlalchemy import event, update

from loyalty.members.models import Member
from loyalty.tiers.models import Tier
from tests.helpers import create_reward, enroll, record, redeem

PAGE = """
query Page($first: Int!) {
  members(first: $first) {
    edges { node { id externalId tier { name multiplier } points { available lifetimeEarned } } }
  }
}
"""


@contextmanager
def counting_statements(db):
    statements: list[str] = []

    def count(conn, cursor, statement, *args):  # type: ignore[no-untyped-def]
        statements.append(statement)

    engines = [db.write_engine.sync_engine]
    if db.dialect == "sqlite":  # on PostgreSQL the read engine shares the write engine's events
        engines.append(db.read_engine.sync_engine)
    for engine in engines:
        event.listen(engine, "before_cursor_execute", count)
    try:
        yield statements
    finally:
        for engine in engines:
            event.remove(engine, "before_cursor_execute", count)


async def test_a_page_of_100_members_costs_as_many_queries_as_a_page_of_2(admin, pos, db):
    async with db.transaction() as session:
        tiers = [
            Tier(name=f"T{rank}", rank=rank, threshold=rank * 100, multiplier=Decimal(1))
            for rank in range(1, 4)
        ]
        session.add_all(tiers)
    for _ in range(100):
        await enroll(pos)
    async with db.transaction() as session:
        for index, tier in enumerate(tiers):
            await session.execute(
                update(Member).where(Member.id % 3 == index).values(tier_id=tier.id)
            )
    await admin.data(PAGE, first=1)  # the key's last-used time is recorded once, not per page

    with counting_statements(db) as small:
        small_page = await admin.data(PAGE, first=2)
    with counting_statements(db) as large:
        large_page = await admin.data(PAGE, first=100)

    assert len(small_page["members"]["edges"]) == 2
    assert len(large_page["members"]["edges"]) == 100
    assert {e["node"]["tier"]["name"] for e in large_page["members"]["edges"]} == {"T1", "T2", "T3"}
    queries = [s for s in large if s.lstrip().upper().startswith("SELECT")]
    assert len(queries) == len([s for s in small if s.lstrip().upper().startswith("SELECT")])
    assert len(queries) <= 3, queries  # the API key, the members, their tiers


EVERY_MEMBER_FIELD = """
query Page($first: Int!) {
  members(first: $first) {
    edges { node {
      id tier { name } points { available pending expiringSoon(days: 30) }
      tierProgress { current { name } next { name } qualifyingPoints pointsToNext }
      tierExpiresAt
      tierHistory(first: 3) { edges { node { reason to { name } } } }
      expiringPoints(first: 3) { amount expiresAt }
      pendingReleases { amount releasesAt }
      ledger(first: 3) { edges { node { kind points purchase { orderId } } } }
      purchases(first: 3) { edges { node { orderId pointsBreakdown { points } } } }
      redemptions(first: 3) { edges { node { code reward { name } } } }
      events(first: 3) { edges { node { type } } }
      referralCode referralCounts { enrolled rewarded }
    } }
  }
}
"""

README_QUICK_START = """
query Page($first: Int!) {
  program { name currency pointsPerUnit }
  members(first: $first) {
    edges { node { externalId tier { name } points { available lifetimeEarned }
                   ledger(first: 3) { edges { node { kind points balanceAfter } } } } }
  }
}
"""


def _selects(statements: list[str]) -> int:
    return len([s for s in statements if s.lstrip().upper().startswith(("SELECT", "WITH"))])


async def _members_with_history(admin, pos, count: int) -> None:
    reward = await create_reward(admin, costPoints=5)
    for _ in range(count):
        member_id = await enroll(pos)
        await record(pos, member_id, "20.00")
        await redeem(pos, member_id, reward)
    await admin.data(PAGE, first=1)  # the key's last-used time is recorded once, not per page


@pytest.mark.parametrize("document", [EVERY_MEMBER_FIELD, README_QUICK_START])
async def test_every_per_member_field_costs_the_same_for_2_or_20_members(admin, pos, db, document):
    await _members_with_history(admin, pos, 20)
    with counting_statements(db) as small:
        small_page = await admin.data(document, first=2)
    with counting_statements(db) as large:
        large_page = await admin.data(document, first=20)
    assert len(small_page["members"]["edges"]) == 2
    assert len(large_page["members"]["edges"]) == 20
    if document is EVERY_MEMBER_FIELD:
        node = large_page["members"]["edges"][-1]["node"]
        assert node["purchases"]["edges"] and node["redemptions"]["edges"]
        assert node["ledger"]["edges"][0]["node"]["kind"] == "REDEEM"
    assert _selects(large) == _selects(small), large
