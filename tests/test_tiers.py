"""Tiers: configuration, upgrade in the purchase transaction, the evaluate-tiers job with
retention and window edges, admin overrides, deletion, the member's view and the preview."""

from datetime import UTC, datetime, timedelta

import pytest

from loyalty.tiers.evaluation import evaluate_tiers
from tests.cli import arun_cli
from tests.helpers import ADJUST, enroll, key, record

CREATE_TIER = """
mutation($input: CreateTierInput!) {
  createTier(input: $input) {
    tier { id name rank threshold multiplier benefits retentionDays }
    errors { code field message }
  }
}
"""

MEMBER_TIER = """
query($id: ID!) {
  member(id: $id) {
    tier { name }
    tierExpiresAt
    tierProgress { current { name } next { name } qualifyingPoints pointsToNext windowEndsAt }
    tierHistory(first: 20) { edges { node { from { name } to { name } fromName toName reason
                                            qualifyingPoints note } } }
  }
}
"""


async def make_tier(admin, name, rank, threshold, multiplier="1", retention=0) -> str:
    data = await admin.data(
        CREATE_TIER,
        input={
            "name": name,
            "rank": rank,
            "threshold": threshold,
            "multiplier": multiplier,
            "retentionDays": retention,
            "benefits": [f"{name} perks"],
        },
    )
    assert data["createTier"]["errors"] == [], data["createTier"]["errors"]
    return data["createTier"]["tier"]["id"]


async def ladder(admin, silver_retention=0) -> dict[str, str]:
    return {
        "Bronze": await make_tier(admin, "Bronze", 1, 0),
        "Silver": await make_tier(admin, "Silver", 2, 100, "2", silver_retention),
        "Gold": await make_tier(admin, "Gold", 3, 1000, "3", silver_retention),
    }


async def view(admin, member_id) -> dict:
    return (await admin.data(MEMBER_TIER, id=member_id))["member"]


async def test_tiers_are_listed_by_rank_with_their_settings(admin, app_client):
    await make_tier(admin, "Gold", 3, 1000, "1.5", 90)
    await make_tier(admin, "Bronze", 1, 0)
    tiers = await app_client.data("{ tiers { name rank threshold multiplier retentionDays } }")
    assert tiers["tiers"] == [
        {"name": "Bronze", "rank": 1, "threshold": 0, "multiplier": "1", "retentionDays": 0},
        {"name": "Gold", "rank": 3, "threshold": 1000, "multiplier": "1.5", "retentionDays": 90},
    ]


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"rank": 1, "threshold": 50}, "rank"),
        ({"rank": 2, "threshold": -1}, "threshold"),
        ({"rank": 2, "threshold": 50, "multiplier": "0.5"}, "multiplier"),
        ({"rank": 2, "threshold": 50, "multiplier": "abc"}, "multiplier"),
        ({"rank": 5, "threshold": 0}, "threshold"),
        ({"rank": 2, "threshold": 50, "retentionDays": -3}, "retentionDays"),
        ({"rank": 2, "threshold": 50, "name": ""}, "name"),
    ],
    ids=[
        "duplicate rank",
        "negative threshold",
        "multiplier below 1",
        "malformed multiplier",
        "threshold not rising with rank",
        "negative retention",
        "empty name",
    ],
)
async def test_bad_tier_input_is_refused(admin, fields, field):
    await make_tier(admin, "Bronze", 1, 0)
    data = await admin.data(CREATE_TIER, input={"name": "New", **fields})
    assert data["createTier"]["tier"] is None
    assert [(e["code"], e["field"]) for e in data["createTier"]["errors"]] == [("INVALID", [field])]
    assert len((await admin.data("{ tiers { id } }"))["tiers"]) == 1


async def test_crossing_a_threshold_upgrades_in_the_same_purchase(admin, pos):
    await ladder(admin)
    member_id = await enroll(pos)
    assert (await view(admin, member_id))["tier"] == {"name": "Bronze"}

    crossing = await record(pos, member_id, "150.00")
    after = await record(pos, member_id, "10.00")

    assert crossing["pointsAwarded"] == 150, "the crossing purchase earns at the old tier"
    assert after["pointsAwarded"] == 20, "the next purchase earns at the new tier's multiplier"
    member = await view(admin, member_id)
    assert member["tier"] == {"name": "Silver"}
    history = [e["node"] for e in member["tierHistory"]["edges"]]
    assert history[0]["reason"] == "QUALIFIED"
    assert (history[0]["fromName"], history[0]["toName"]) == ("Bronze", "Silver")
    assert history[0]["qualifyingPoints"] == 150
    assert member["tierProgress"] == {
        "current": {"name": "Silver"},
        "next": {"name": "Gold"},
        "qualifyingPoints": 170,
        "pointsToNext": 830,
        "windowEndsAt": member["tierProgress"]["windowEndsAt"],
    }


async def test_adjustments_qualify_only_when_flagged(admin, pos):
    await ladder(admin)
    member_id = await enroll(pos)
    plain = {"idempotencyKey": key(), "memberId": member_id, "points": 500, "reason": "gift"}
    await admin.data(ADJUST, input=plain)
    assert (await view(admin, member_id))["tier"] == {"name": "Bronze"}
    flagged = {**plain, "idempotencyKey": key(), "qualifying": True}
    await admin.data(
        """mutation($input: AdjustPointsInput!) { adjustPoints(input: $input) {
             errors { code } } }""",
        input=flagged,
    )
    member = await view(admin, member_id)
    assert member["tier"] == {"name": "Silver"}
    assert member["tierProgress"]["qualifyingPoints"] == 500


async def test_window_edge_a_point_earned_exactly_window_days_ago_no_longer_counts(admin, pos, db):
    ids = await ladder(admin)
    await admin.data(
        "mutation { updateProgram(input: {maxBackdateDays: 500}) { errors { code } } }"
    )
    member_id = await enroll(pos)
    earned_at = datetime.now(UTC).replace(microsecond=0) - timedelta(days=400)
    await record(pos, member_id, "150.00", occurredAt=earned_at.isoformat())
    assert (await view(admin, member_id))["tier"] == {"name": "Bronze"}, "too old to upgrade"

    one_second_inside = earned_at + timedelta(days=365) - timedelta(seconds=1)
    report = await evaluate_tiers(db, now=one_second_inside)
    assert report.upgraded == 1
    assert (await view(admin, member_id))["tier"] == {"name": "Silver"}

    exactly_out = earned_at + timedelta(days=365)
    report = await evaluate_tiers(db, now=exactly_out)
    assert report.downgraded == 1, "Silver has no retention: down at once"
    assert (await view(admin, member_id))["tier"] == {"name": "Bronze"}
    assert ids


async def test_retention_keeps_the_tier_then_the_job_downgrades_once(admin, pos, db):
    await ladder(admin, silver_retention=30)
    member_id = await enroll(pos)
    await record(pos, member_id, "150.00")
    assert (await view(admin, member_id))["tier"] == {"name": "Silver"}
    start = datetime.now(UTC)

    below = start + timedelta(days=366)
    first = await evaluate_tiers(db, now=below)
    again = await evaluate_tiers(db, now=below)
    assert (first.retention_started, again.retention_started) == (1, 0)
    held = await view(admin, member_id)
    assert held["tier"] == {"name": "Silver"}
    assert datetime.fromisoformat(held["tierExpiresAt"]) == below + timedelta(days=30)

    still_held = await evaluate_tiers(db, now=below + timedelta(days=29))
    assert still_held.downgraded == 0
    expired = await evaluate_tiers(db, now=below + timedelta(days=30))
    twice = await evaluate_tiers(db, now=below + timedelta(days=30))
    assert (expired.downgraded, twice.downgraded) == (1, 0)
    member = await view(admin, member_id)
    assert member["tier"] == {"name": "Bronze"}
    reasons = [e["node"]["reason"] for e in member["tierHistory"]["edges"]]
    assert reasons == ["EXPIRED", "QUALIFIED"]


async def test_earning_back_above_the_threshold_ends_retention(admin, pos, db):
    await ladder(admin, silver_retention=30)
    member_id = await enroll(pos)
    await record(pos, member_id, "150.00")
    below = datetime.now(UTC) + timedelta(days=366)
    await evaluate_tiers(db, now=below)
    assert (await view(admin, member_id))["tierExpiresAt"] is not None

    await record(pos, member_id, "120.00")  # 240 points at Silver: back above 100 now
    member = await view(admin, member_id)
    assert member["tier"] == {"name": "Silver"}
    expires = datetime.fromisoformat(member["tierExpiresAt"])
    assert expires > datetime.now(UTC) + timedelta(days=364), "window + retention from now"


async def test_admin_override_and_deletion(admin, pos):
    ids = await ladder(admin)
    member_id = await enroll(pos)
    data = await admin.data(
        """mutation($input: SetMemberTierInput!) { setMemberTier(input: $input) {
             member { tier { name } } errors { code } } }""",
        input={"memberId": member_id, "tierId": ids["Gold"], "reason": "VIP partner"},
    )
    assert data["setMemberTier"]["member"]["tier"] == {"name": "Gold"}

    delete = """mutation($input: DeleteTierInput!) { deleteTier(input: $input) {
                  membersMoved errors { code field } } }"""
    refused = await admin.data(delete, input={"id": ids["Gold"]})
    assert refused["deleteTier"]["errors"] == [{"code": "INVALID", "field": ["moveMembersTo"]}]
    moved = await admin.data(delete, input={"id": ids["Gold"], "moveMembersTo": ids["Silver"]})
    assert moved["deleteTier"] == {"membersMoved": 1, "errors": []}

    member = await view(admin, member_id)
    assert member["tier"] == {"name": "Silver"}
    history = [e["node"] for e in member["tierHistory"]["edges"]]
    assert [(h["reason"], h["fromName"], h["toName"]) for h in history] == [
        ("RULE_CHANGE", "Gold", "Silver"),
        ("ADMIN", "Bronze", "Gold"),
    ]
    assert history[1]["note"] == "VIP partner"
    assert history[1]["from"] == {"name": "Bronze"} and history[0]["from"] is None


async def test_raising_a_threshold_never_demotes_at_once(admin, pos, db):
    ids = await ladder(admin, silver_retention=10)
    member_id = await enroll(pos)
    await record(pos, member_id, "150.00")
    await admin.data(
        """mutation($input: UpdateTierInput!) { updateTier(input: $input) { errors { code } } }""",
        input={"id": ids["Silver"], "threshold": 500},
    )
    report = await evaluate_tiers(db, now=datetime.now(UTC))
    assert (report.downgraded, report.retention_started) == (0, 1)
    assert (await view(admin, member_id))["tier"] == {"name": "Silver"}


async def test_preview_counts_moves_without_changing_anything(admin, pos):
    await ladder(admin)
    for amount in ("50.00", "150.00", "150.00", "1200.00"):
        member_id = await enroll(pos)
        await record(pos, member_id, amount)
    preview = """query($input: PreviewTierChangeInput!) { previewTierChange(input: $input) {
                   tiers { rank name members movedUp movedDown stayed } errors { code } } }"""
    proposal = {
        "tiers": [
            {"rank": 1, "name": "Bronze", "threshold": 0},
            {"rank": 2, "name": "Silver", "threshold": 200},
            {"rank": 3, "name": "Gold", "threshold": 1000},
        ]
    }
    data = await admin.data(preview, input=proposal)
    assert data["previewTierChange"]["tiers"] == [
        {"rank": 1, "name": "Bronze", "members": 3, "movedUp": 0, "movedDown": 2, "stayed": 1},
        {"rank": 2, "name": "Silver", "members": 0, "movedUp": 0, "movedDown": 0, "stayed": 0},
        {"rank": 3, "name": "Gold", "members": 1, "movedUp": 0, "movedDown": 0, "stayed": 1},
    ]
    tiers_now = await admin.data("{ tiers { threshold } }")
    assert [t["threshold"] for t in tiers_now["tiers"]] == [0, 100, 1000]
    bad = await admin.data(
        preview, input={"tiers": [{"rank": 1, "threshold": 5}, {"rank": 2, "threshold": 5}]}
    )
    assert bad["previewTierChange"]["errors"] == [{"code": "INVALID"}]


async def test_the_job_runs_from_the_cli(admin, pos, database_url):
    await ladder(admin)
    member_id = await enroll(pos)
    await record(pos, member_id, "150.00")
    later = (datetime.now(UTC) + timedelta(days=400)).isoformat()
    result = await arun_cli(database_url, "jobs", "run", "evaluate-tiers", "--now", later)
    assert result.returncode == 0, result.stderr
    assert "1 down" in result.stdout
    refused = await arun_cli(database_url, "jobs", "run", "evaluate-tiers", "--now", "tomorrow")
    assert refused.returncode != 0


async def test_null_for_a_required_tier_field_is_invalid(admin):
    ids = await ladder(admin)
    for field in ("rank", "threshold", "retentionDays"):
        data = await admin.data(
            """mutation($input: UpdateTierInput!) { updateTier(input: $input) {
                 tier { id } errors { code field } } }""",
            input={"id": ids["Silver"], field: None},
        )
        assert data["updateTier"]["errors"] == [{"code": "INVALID", "field": [field]}]


async def test_moving_a_tier_to_a_taken_rank_is_invalid_and_changes_nothing(admin):
    """Found by fuzzing: the ladder check used to autoflush the taken rank first (INTERNAL)."""
    ids = await ladder(admin)
    data = await admin.data(
        """mutation($input: UpdateTierInput!) { updateTier(input: $input) {
             tier { id } errors { code field } } }""",
        input={"id": ids["Gold"], "rank": 1},
    )
    assert data["updateTier"] == {"tier": None, "errors": [{"code": "INVALID", "field": ["rank"]}]}
    tiers = await admin.data("{ tiers { name rank } }")
    assert [(t["name"], t["rank"]) for t in tiers["tiers"]] == [
        ("Bronze", 1),
        ("Silver", 2),
        ("Gold", 3),
    ]


async def test_far_away_instants_are_invalid_not_internal(admin, pos):
    member_id = await enroll(pos)
    body = await admin(
        "query($id: ID!, $at: DateTime!) { member(id: $id) { pointsAsOf(at: $at) { available } } }",
        id=member_id,
        at="0001-01-01T00:00:00+05:00",
    )
    assert body["errors"][0]["extensions"]["code"] == "INVALID"
    body = await admin(
        "query($at: DateTime) { pointsLiability(asOf: $at) { total } }",
        at="9999-12-31T23:59:59-05:00",
    )
    assert body["errors"][0]["extensions"]["code"] == "INVALID"


async def test_evaluate_tiers_with_no_tiers_moves_nobody(pos, db):
    member_id = await enroll(pos)
    await record(pos, member_id, "50.00")
    report = await evaluate_tiers(db, now=datetime.now(UTC))
    assert (report.upgraded, report.downgraded) == (0, 0)
