"""``loyalty program init``: a fresh install gets its currency and a base tier, so members
enroll into a tier; running it again changes nothing."""

from tests.cli import arun_cli
from tests.helpers import enroll, record

PROGRAM = "{ program { name currency } tiers { name rank threshold } }"
MEMBER_TIER = """query($id: ID!) { member(id: $id) {
  tier { name } tierHistory { edges { node { toName reason note } } } } }"""


async def test_init_sets_the_program_and_members_enroll_into_the_base_tier(
    database_url, admin, pos
):
    # given a fresh install (no tiers, placeholder program)
    assert (await admin.data(PROGRAM))["tiers"] == []

    # when the operator runs init
    done = await arun_cli(
        database_url, "program", "init", "--currency", "EUR", "--name", "Café Bleu"
    )

    # then the program is set, a base tier exists and a new member is in it
    assert done.returncode == 0, done.stderr
    assert "Created base tier 'Member' (rank 0, threshold 0)." in done.stdout
    assert await admin.data(PROGRAM) == {
        "program": {"name": "Café Bleu", "currency": "EUR"},
        "tiers": [{"name": "Member", "rank": 0, "threshold": 0}],
    }
    member_id = await enroll(pos, "card-1")
    member = (await admin.data(MEMBER_TIER, id=member_id))["member"]
    assert member["tier"] == {"name": "Member"}

    # and a second run keeps everything as it is
    again = await arun_cli(database_url, "program", "init", "--currency", "EUR")
    assert again.returncode == 0, again.stderr
    assert "Kept base tier 'Member'" in again.stdout
    assert (await admin.data(PROGRAM))["program"]["name"] == "Café Bleu"
    assert len((await admin.data(PROGRAM))["tiers"]) == 1


async def test_members_enrolled_before_init_are_placed_in_the_base_tier(database_url, admin, pos):
    member_id = await enroll(pos, "early-bird")
    assert (await admin.data(MEMBER_TIER, id=member_id))["member"]["tier"] is None

    done = await arun_cli(database_url, "program", "init", "--currency", "USD")

    assert done.returncode == 0, done.stderr
    assert "Placed 1 member(s) without a tier in it." in done.stdout
    member = (await admin.data(MEMBER_TIER, id=member_id))["member"]
    assert member["tier"] == {"name": "Member"}
    assert [e["node"] for e in member["tierHistory"]["edges"]] == [
        {"toName": "Member", "reason": "ADMIN", "note": "Base tier set by `loyalty program init`."}
    ]


async def test_an_existing_base_tier_is_kept(database_url, admin):
    created = await admin.data(
        """mutation { createTier(input: {name: "Bronze", rank: 1, threshold: 0}) {
             errors { code } } }"""
    )
    assert created["createTier"]["errors"] == []

    done = await arun_cli(database_url, "program", "init", "--currency", "USD", "--base-tier", "X")

    assert done.returncode == 0, done.stderr
    assert "Kept base tier 'Bronze' (rank 1, threshold 0)." in done.stdout
    assert [t["name"] for t in (await admin.data(PROGRAM))["tiers"]] == ["Bronze"]


async def test_bad_or_late_currency_is_one_error_line(database_url, pos):
    bad = await arun_cli(database_url, "program", "init", "--currency", "euro")
    assert bad.returncode == 2
    assert bad.stderr.startswith("error: ") and len(bad.stderr.strip().splitlines()) == 1

    await record(pos, await enroll(pos, "buyer"), "10.00")
    late = await arun_cli(database_url, "program", "init", "--currency", "EUR")
    assert late.returncode == 2
    assert "The currency cannot change once purchases are recorded in it." in late.stderr
