"""``loyalty ledger verify``: passes on a sound ledger, fails and names what a corruption broke."""

import pytest
from sqlalchemy.exc import DBAPIError

from tests.cli import arun_cli
from tests.conftest import execute_sql
from tests.helpers import enroll, record

pytestmark = pytest.mark.corrupts_ledger


async def _ledger_with_history(pos) -> str:
    member_id = await enroll(pos)
    await record(pos, member_id, "10.00")
    await record(pos, member_id, "20.00")
    return member_id


async def test_verify_passes_on_a_sound_ledger(pos, database_url):
    await _ledger_with_history(pos)
    result = await arun_cli(database_url, "ledger", "verify")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "every invariant holds" in result.stdout


async def test_a_tampered_stored_balance_is_named(pos, db, database_url):
    await _ledger_with_history(pos)
    await execute_sql(db, "UPDATE members SET points_available = 500 WHERE id = 1")

    result = await arun_cli(database_url, "ledger", "verify")

    assert result.returncode == 1
    assert (
        "invariant 3 (stored balance differs from the ledger): member 1 stores available=500"
        in (result.stdout)
    )


async def test_the_ledger_refuses_updates_and_deletes(pos, db):
    await _ledger_with_history(pos)
    for statement in (
        "UPDATE ledger_entries SET points = points + 1 WHERE id = 1",
        "DELETE FROM ledger_entries WHERE id = 1",
        "UPDATE ledger_transactions SET kind = 'BONUS' WHERE id = 1",
        "DELETE FROM ledger_transactions WHERE id = 2",
    ):
        with pytest.raises(DBAPIError, match="append-only"):
            await execute_sql(db, statement)


async def test_an_edited_entry_is_found_once_the_guard_is_off(pos, db, database_url, backend):
    await _ledger_with_history(pos)
    if backend == "postgres":
        guard_off = "ALTER TABLE ledger_entries DISABLE TRIGGER ledger_entries_no_update"
        guard_on = "ALTER TABLE ledger_entries ENABLE TRIGGER ledger_entries_no_update"
    else:
        guard_off, guard_on = "DROP TRIGGER ledger_entries_no_update", None
    await execute_sql(db, guard_off)
    try:
        await execute_sql(db, "UPDATE ledger_entries SET points = 11 WHERE id = 1")
        result = await arun_cli(database_url, "ledger", "verify")
    finally:
        if guard_on:
            await execute_sql(db, guard_on)

    assert result.returncode == 1
    report = result.stdout
    assert "invariant 1 (append-only guard missing): trigger ledger_entries_no_update" in report
    assert (
        "invariant 2 (unbalanced transaction): transaction 1 has 2 postings summing to 1" in report
    )
    assert "invariant 3 (balanceAfter is not the running sum): entry 1" in report
    assert "purchase 1 (order" in report


async def test_an_unbalanced_transaction_and_a_negative_balance_are_named(pos, db, database_url):
    member_id = await _ledger_with_history(pos)
    assert member_id
    await execute_sql(
        db,
        "INSERT INTO ledger_transactions (kind, member_id, occurred_at, created_at) "
        "VALUES ('ADJUST', 1, '2026-01-01 00:00:00', '2026-01-01 00:00:00')",
    )
    await execute_sql(
        db,
        "INSERT INTO ledger_entries (transaction_id, account, member_id, points, balance_after) "
        "VALUES (3, 'MEMBER_AVAILABLE', 1, -100, -70)",
    )

    result = await arun_cli(database_url, "ledger", "verify")

    assert result.returncode == 1
    assert "transaction 3 has 1 postings summing to -100" in result.stdout
    assert "invariant 4 (balance went below zero): entry" in result.stdout


async def test_a_rule_budget_or_award_out_of_step_with_the_ledger_is_named(
    admin, pos, db, database_url
):
    rule = await admin.data(
        """mutation { createEarningRule(input: {name: "Bonus", startsAt: "2020-01-01T00:00:00Z",
        effect: {kind: FIXED_BONUS, value: "5"}, limits: {budget: 100}}) {
        earningRule { id } errors { code } } }"""
    )
    assert rule["createEarningRule"]["errors"] == []
    await _ledger_with_history(pos)
    await execute_sql(db, "UPDATE earning_rules SET budget_used = 3")
    await execute_sql(db, "UPDATE rule_awards SET points = 6 WHERE id = 1")

    result = await arun_cli(database_url, "ledger", "verify")

    assert result.returncode == 1
    assert (
        "invariant 4 (rule budget differs from its awards): rule 1 records 3 budget points "
        "used, its budgeted awards add up to 11" in result.stdout
    )
    assert (
        "invariant 3 (rule award differs from its BONUS posting): award 1 of rule 1 says 6 "
        "points to member 1, its posting (BONUS) credits 5 to member 1" in result.stdout
    )
