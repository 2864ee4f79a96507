"""A page of members with tier and balances costs a constant number of SQL statements."""

from contextlib import contextmanager
from decimal import Decimal

from sqlalchemy import event, update

from loyalty.members.models import Member
from loyalty.tiers.models import Tier
from tests.helpers import enroll

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
