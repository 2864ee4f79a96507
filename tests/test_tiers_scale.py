"""evaluate-tiers over 100,000 members on PostgreSQL, checked against an independent count."""

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import text

from loyalty.tiers.evaluation import evaluate_tiers
from tests.tiers_data import THRESHOLDS, generate_members_with_earnings, insert_tiers

pytestmark = pytest.mark.postgres_only

MEMBERS = 100_000


async def test_evaluate_tiers_over_100k_members_matches_an_independent_count(db):
    now = datetime.now(UTC).replace(microsecond=0)
    async with db.transaction() as session:
        await insert_tiers(session)
        await generate_members_with_earnings(session, members=MEMBERS, per_member=3, now=now)

    report = await evaluate_tiers(db, now=now)

    async with db.transaction() as session:
        expected = dict(
            (
                await session.execute(
                    text(
                        """
                        SELECT CASE WHEN q >= :gold THEN 'Gold' WHEN q >= :silver THEN 'Silver'
                                    ELSE 'Bronze' END AS tier, COUNT(*)
                        FROM (SELECT m.id, COALESCE(SUM(t.qualifying_points), 0) AS q
                              FROM members m LEFT JOIN ledger_transactions t
                                ON t.member_id = m.id AND t.qualifying_at > :since
                               AND t.qualifying_at <= :now
                              GROUP BY m.id) per_member
                        GROUP BY 1
                        """
                    ),
                    {
                        "gold": THRESHOLDS["Gold"],
                        "silver": THRESHOLDS["Silver"],
                        "since": now - timedelta(days=365),
                        "now": now,
                    },
                )
            ).all()
        )
        actual = dict(
            (
                await session.execute(
                    text(
                        "SELECT t.name, COUNT(*) FROM members m JOIN tiers t ON t.id = m.tier_id "
                        "GROUP BY t.name"
                    )
                )
            ).all()
        )
    assert report.members == MEMBERS
    assert report.upgraded == MEMBERS
    assert actual == expected
    assert set(actual) == {"Bronze", "Silver", "Gold"}

    again = await evaluate_tiers(db, now=now)
    assert (again.upgraded, again.downgraded, again.retention_started) == (0, 0, 0)
