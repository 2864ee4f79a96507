"""The stats-rollup job keeps programStats exact, on both databases: after a refresh every
figure equals the live computation, and so it does after a backdated purchase, a refund, an
expiry and an adjustment land (booked after the cutoff), after a change of time zone, and for
requests the rollup cannot serve (partial days, filters)."""

from datetime import UTC, datetime, timedelta

from sqlalchemy import delete, func, select, update

from loyalty.analytics.models import StatsMemberMonth, StatsMonth, StatsRollup
from loyalty.analytics.rollup import refresh
from loyalty.ledger.jobs import expire_points
from tests.cli import arun_cli
from tests.conftest import execute_sql
from tests.helpers import ADJUST, enroll, key, record
from tests.test_program_stats import FROM, REFUND, STATS, TO, at, seed_history

REQUESTS = [
    # whole months: distinct members from the month groups
    {"from": "2026-02-01T00:00:00-05:00", "to": "2026-05-01T00:00:00-04:00", "groupBy": "MONTH"},
    {"from": "2026-03-01T00:00:00-05:00", "to": "2026-04-01T00:00:00-04:00"},
    {"from": "2026-01-01T00:00:00-05:00", "to": "2027-01-01T00:00:00-05:00", "groupBy": "MONTH"},
    # whole days: points and liability from the days, purchases live
    {"from": FROM, "to": TO, "groupBy": "DAY"},
    {"from": "2026-03-02T00:00:00-05:00", "to": "2026-03-16T00:00:00-04:00", "groupBy": "WEEK"},
    {"from": "2026-02-01T00:00:00-05:00", "to": "2026-05-01T00:00:00-04:00", "channel": "ONLINE"},
    # not at midnights: all live
    {"from": "2026-03-06T06:00:00-05:00", "to": "2026-03-09T18:00:00-04:00", "groupBy": "DAY"},
]


async def answers(admin) -> list[dict]:
    return [(await admin.data(STATS, **request))["programStats"] for request in REQUESTS]


async def live_answers(admin, db) -> list[dict]:
    """The same requests computed from the raw rows: the rollup is forgotten, then restored."""
    async with db.transaction() as session:
        rollup = await session.get(StatsRollup, 1)
        saved = None if rollup is None else (rollup.time_zone, rollup.cutoff, rollup.refreshed_at)
        await session.execute(delete(StatsRollup))
    try:
        return await answers(admin)
    finally:
        if saved is not None:
            async with db.transaction() as session:
                zone, cutoff, refreshed_at = saved
                session.add(
                    StatsRollup(id=1, time_zone=zone, cutoff=cutoff, refreshed_at=refreshed_at)
                )


async def refreshed(db) -> None:
    async with db.transaction() as session:
        await refresh(session, now=datetime.now(UTC), margin=timedelta(0))


async def test_the_rollup_is_exact_before_and_after_late_rows(admin, pos, db):
    await seed_history(admin, pos, db)
    before = await answers(admin)
    await refreshed(db)
    async with db.transaction() as session:
        assert await session.scalar(select(func.count()).select_from(StatsMemberMonth)) > 0
    assert await answers(admin) == before

    # Booked after the cutoff: a backdated purchase of a member with March purchases and one of
    # a new member, a refund, an expiry run in March and an adjustment.
    march = (await admin.data(STATS, **REQUESTS[1]))["programStats"]["totals"]
    e = await enroll(pos)
    members = await _member_ids(admin)
    await record(pos, members[0], "15.00", occurredAt="2026-03-20T12:00:00-04:00")
    await record(pos, e, "5.00", occurredAt="2026-03-31T23:30:00-04:00")
    late = await record(pos, e, "8.00", occurredAt="2026-04-01T00:00:00-04:00")
    refund = {
        "idempotencyKey": key(),
        "purchaseId": late["purchase"]["id"],
        "amount": {"amount": "3.00", "currency": "USD"},
    }
    assert (await pos.data(REFUND, input=refund))["refundPurchase"]["errors"] == []
    await expire_points(db, now=at("2026-03-12T20:00:00-04:00"))
    adjust = {"idempotencyKey": key(), "memberId": e, "points": 40, "reason": "goodwill"}
    assert (await admin.data(ADJUST, input=adjust))["adjustPoints"]["errors"] == []

    after = await answers(admin)
    assert after != before
    assert after == await live_answers(admin, db)
    now = (await admin.data(STATS, **REQUESTS[1]))["programStats"]["totals"]
    assert now["activeMembers"] == march["activeMembers"] + 1
    assert now["purchases"] == march["purchases"] + 2

    # A second refresh seals them: still the same figures.
    await refreshed(db)
    assert await answers(admin) == after


async def test_the_figures_come_from_the_rollup(admin, pos, db):
    """Proof that whole months read the rollup: skewing it skews the answer, until a refresh."""
    await seed_history(admin, pos, db)
    await refreshed(db)
    exact = await answers(admin)
    async with db.transaction() as session:
        await session.execute(update(StatsMonth).values(purchases=StatsMonth.purchases + 100))
    assert (await answers(admin))[1] != exact[1]
    await refreshed(db)
    assert await answers(admin) == exact


async def test_a_rollup_of_another_time_zone_is_ignored(admin, pos, db):
    await seed_history(admin, pos, db)
    await refreshed(db)
    await execute_sql(db, "UPDATE program SET time_zone = 'Europe/Paris'")
    assert await answers(admin) == await live_answers(admin, db)


async def test_the_job_runs_from_the_cli(admin, pos, db, database_url):
    await seed_history(admin, pos, db)
    before = await answers(admin)
    ran = await arun_cli(database_url, "jobs", "run", "stats-rollup")
    assert ran.returncode == 0, ran.stdout + ran.stderr
    assert ran.stdout.startswith("stats-rollup as of ")
    # Everything was booked within the job's safety margin: the rollup is empty, still exact.
    assert await answers(admin) == before
    ran = await arun_cli(
        database_url, "jobs", "run", "stats-rollup", "--now", "2026-03-09T00:00:00+00:00"
    )
    assert ran.returncode == 0, ran.stdout + ran.stderr
    assert await answers(admin) == before


async def _member_ids(admin) -> list[str]:
    data = await admin.data("query { members(first: 10) { edges { node { id } } } }")
    return [edge["node"]["id"] for edge in data["members"]["edges"]]
