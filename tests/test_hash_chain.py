"""The ledger's hash chain: every way of posting extends the member's chain, and ``ledger
verify`` names the first transaction edited or deleted behind the triggers' back."""

import asyncio
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import BigInteger, String, literal, select, text

from loyalty.events.birthdays import birthday_bonus
from loyalty.ledger.chain import (
    Same,
    chain_rows,
    hash_sql,
    parse_postings,
    postings_sql,
    postings_text,
    stamp,
    transaction_hash,
)
from loyalty.ledger.jobs import expire_points, release_pending
from loyalty.ledger.models import Account, EntryKind, LedgerEntry, LedgerTransaction
from loyalty.ledger.service import Movement, post
from tests.cli import arun_cli
from tests.conftest import execute_sql
from tests.helpers import (
    ADJUST,
    CANCEL,
    create_reward,
    enroll,
    grant,
    key,
    record,
    redeem,
    refund_input,
)

PROGRAM = """mutation($input: UpdateProgramInput!) { updateProgram(input: $input) {
  errors { code field } } }"""
RULE = """mutation($input: CreateEarningRuleInput!) { createEarningRule(input: $input) {
  earningRule { id } errors { code field message } } }"""
REFUND = """mutation($input: RefundPurchaseInput!) { refundPurchase(input: $input) {
  pointsClawedBack errors { code field message } } }"""


async def test_python_and_sql_hash_the_same_canonical_text(db):
    occurred = datetime(2026, 3, 1, 12, 30, 5, 123456, tzinfo=UTC)
    values = {
        "id": 7,
        "kind": "ADJUST",
        "member_id": 3,
        "occurred_at": occurred,
        "created_at": occurred + timedelta(seconds=1),
        "reason": "fix | 12:3, ünïcode ✓",
        "purchase_id": None,
        "redemption_id": 9,
        "qualifying_points": -5,
        "qualifying_at": None,
        "postings": [("PROGRAM_ADJUSTMENT", -10), ("MEMBER_AVAILABLE", 10)],
        "prev_hash": "ab" * 32,
    }
    in_sql = {
        **{name: literal(value) for name, value in values.items()},
        "occurred_at": literal(stamp(values["occurred_at"])),
        "created_at": literal(stamp(values["created_at"])),
        "purchase_id": literal(None, BigInteger()),
        "qualifying_at": literal(None, String()),
        "postings": postings_sql(
            [("PROGRAM_ADJUSTMENT", -1, literal(10)), ("MEMBER_AVAILABLE", 1, literal(10))]
        ),
    }
    async with db.transaction() as session:
        from_sql = await session.scalar(select(hash_sql(in_sql)))
        postings = await session.scalar(select(in_sql["postings"]))

    assert postings == postings_text(values["postings"])
    assert from_sql == transaction_hash(values)
    assert await _hash_with_same(db, values, in_sql) == from_sql
    assert transaction_hash({**values, "reason": "fix | 12:3, ünïcode ✗"}) != from_sql
    assert transaction_hash({**values, "purchase_id": ""}) != transaction_hash(values)


async def _hash_with_same(db, values, in_sql) -> str:
    """The hash with every field but the id, member and postings given as ``Same`` (the
    set-based jobs' form): the constant fields are written in Python, the same bytes."""
    mixed = {
        name: value if name in {"id", "member_id", "postings"} else Same(values[name])
        for name, value in in_sql.items()
    }
    async with db.transaction() as session:
        return await session.scalar(select(hash_sql(mixed)))


async def _chains(db) -> dict[int, list[tuple[int, str, str | None, str | None]]]:
    async with db.write_engine.connect() as connection:
        rows = await connection.execute(
            text("SELECT member_id, id, kind, prev_hash, hash FROM ledger_transactions ORDER BY id")
        )
        chains: dict[int, list[tuple[int, str, str | None, str | None]]] = {}
        for member_id, *rest in rows:
            chains.setdefault(member_id, []).append(tuple(rest))
        return chains


async def test_every_kind_of_posting_extends_the_members_chain(admin, pos, db, database_url):
    now = datetime.now(UTC)
    assert (await admin.data(PROGRAM, input={"pendingDays": 14, "pointsExpireAfterDays": 30}))[
        "updateProgram"
    ]["errors"] == []
    for rule in (
        {"name": "Bonus", "effect": {"kind": "FIXED_BONUS", "value": "3"}},
        {
            "name": "Birthday",
            "effect": {"kind": "FIXED_BONUS", "value": "50"},
            "conditions": {"eventType": "birthday"},
        },
    ):
        created = await admin.data(RULE, input={"startsAt": "2020-01-01T00:00:00Z", **rule})
        assert created["createEarningRule"]["errors"] == []
    ann = await enroll(pos, dateOfBirth="1990-06-15")
    bob = await enroll(pos, dateOfBirth="1990-06-15")

    # purchases (EARN + BONUS, pending), one settled; a refund; adjustments; a redemption
    settled = await record(pos, ann, "40.00", occurredAt=(now - timedelta(days=20)).isoformat())
    fresh = await record(pos, ann, "30.00")
    assert settled["errors"] == fresh["errors"] == []
    await record(pos, bob, "10.00")
    refunded = await pos.data(
        REFUND,
        input=refund_input(fresh["purchase"]["id"], "10.00"),
    )
    assert refunded["refundPurchase"]["errors"] == []
    await grant(admin, ann, 300)
    reward = await create_reward(admin, costPoints=100)
    redeemed = await redeem(pos, ann, reward)
    assert redeemed["errors"] == []
    cancelled = await pos.data(
        CANCEL, input={"idempotencyKey": key(), "redemptionId": redeemed["redemption"]["id"]}
    )
    assert cancelled["cancelRedemption"]["errors"] == []
    taken = await admin.data(
        ADJUST,
        input={"idempotencyKey": key(), "memberId": ann, "points": -7, "reason": "typo"},
    )
    assert taken["adjustPoints"]["errors"] == []

    # the set-based jobs
    assert (await release_pending(db, now=now + timedelta(days=15))).members == 2
    assert (await birthday_bonus(db, now=datetime(now.year, 6, 15, 9, tzinfo=UTC))).members == 2
    assert (await expire_points(db, now=now + timedelta(days=400))).members == 2
    await record(pos, ann, "5.00")

    chains = await _chains(db)
    kinds = {kind for chain in chains.values() for _, kind, _, _ in chain}
    assert kinds >= {
        "EARN",
        "BONUS",
        "REFUND_CLAWBACK",
        "ADJUST",
        "REDEEM",
        "REDEMPTION_CANCEL",
        "RELEASE",
        "EXPIRE",
    }
    for chain in chains.values():
        heads = [None] + [digest for _, _, _, digest in chain[:-1]]
        assert [prev for _, _, prev, _ in chain] == heads
        assert all(digest and len(digest) == 64 for _, _, _, digest in chain)
    verified = await arun_cli(database_url, "ledger", "verify")
    assert verified.returncode == 0, verified.stdout


async def test_concurrent_postings_of_one_member_chain_in_order(admin, pos, db, database_url):
    member = await enroll(pos)
    await grant(admin, member, 1000)

    # adjustments lock the member with their balance update alone: each must still link to
    # the transaction committed by whoever held the lock before it
    await asyncio.gather(
        *(grant(admin, member, points) for points in (-5, 7, -3, 11, -2, 13, -1, 17)),
        *(record(pos, member, "3.00") for _ in range(4)),
    )

    [chain] = (await _chains(db)).values()
    assert len(chain) == 13
    assert [prev for _, _, prev, _ in chain] == [None] + [h for _, _, _, h in chain[:-1]]
    verified = await arun_cli(database_url, "ledger", "verify")
    assert verified.returncode == 0, verified.stdout


def _credit(points: int) -> Movement:
    return Movement(
        kind=EntryKind.ADJUST,
        member_id=1,
        counter_account=Account.PROGRAM_ADJUSTMENT,
        occurred_at=datetime.now(UTC),
        available=points,
        lifetime_earned=points,
        reason=f"credit {points}",
    )


async def test_a_posting_that_waited_for_the_member_links_to_the_one_it_waited_for(pos, db):
    await enroll(pos)
    started = asyncio.Event()

    async def second() -> None:
        started.set()
        async with db.transaction() as session:
            await post(session, _credit(2))

    async with db.transaction() as session:
        await post(session, _credit(1))
        waiting = asyncio.create_task(second())
        await started.wait()
        # let the second posting reach the member's row lock (or SQLite's write lock)
        await asyncio.sleep(0.3)
    await waiting

    [chain] = (await _chains(db)).values()
    assert [prev for _, _, prev, _ in chain] == [None, chain[0][3]]


async def _three_purchases(pos) -> None:
    member = await enroll(pos)
    for amount in ("10.00", "20.00", "30.00"):
        assert (await record(pos, member, amount))["errors"] == []


async def _without_guards(db, backend: str, statements: list[str]) -> None:
    """Run ``statements`` with the ledger's append-only triggers off (put back on PostgreSQL,
    whose database the next tests reuse)."""
    tables = ("ledger_transactions", "ledger_entries")
    if backend == "postgres":
        for table in tables:
            await execute_sql(db, f"ALTER TABLE {table} DISABLE TRIGGER ALL")
    else:
        for table in tables:
            for action in ("update", "delete"):
                await execute_sql(db, f"DROP TRIGGER {table}_no_{action}")
    try:
        for statement in statements:
            await execute_sql(db, statement)
    finally:
        if backend == "postgres":
            for table in tables:
                await execute_sql(db, f"ALTER TABLE {table} ENABLE TRIGGER ALL")


async def _chain_report(database_url: str) -> list[str]:
    result = await arun_cli(database_url, "ledger", "verify")
    assert result.returncode == 1, result.stdout
    return [line for line in result.stdout.splitlines() if "hash chain broken" in line]


@pytest.mark.corrupts_ledger
@pytest.mark.parametrize(
    "edit",
    [
        "UPDATE ledger_entries SET points = points + 5 WHERE transaction_id = 2",
        "UPDATE ledger_transactions SET occurred_at = created_at - INTERVAL_DAY WHERE id = 2",
        "UPDATE ledger_transactions SET reason = 'goodwill' WHERE id = 2",
    ],
)
async def test_an_edited_transaction_is_named(pos, db, database_url, backend, edit):
    await _three_purchases(pos)
    day = "created_at - INTERVAL '1 day'" if backend == "postgres" else "'2026-01-01 00:00:00'"
    await _without_guards(db, backend, [edit.replace("created_at - INTERVAL_DAY", day)])

    assert await _chain_report(database_url) == [
        "- invariant 1 (hash chain broken): transaction 2: hash mismatch "
        "(its content was changed) (member 1)"
    ]


@pytest.mark.corrupts_ledger
async def test_a_deleted_transaction_breaks_the_next_link(pos, db, database_url, backend):
    await _three_purchases(pos)
    await _without_guards(
        db,
        backend,
        [
            "DELETE FROM point_lots WHERE transaction_id = 2",
            "DELETE FROM ledger_entries WHERE transaction_id = 2",
            "DELETE FROM ledger_transactions WHERE id = 2",
        ],
    )

    assert await _chain_report(database_url) == [
        "- invariant 1 (hash chain broken): transaction 3: previous-hash link broken "
        "(the member's transaction before it was deleted or changed) (member 1)"
    ]


@pytest.mark.corrupts_ledger
async def test_an_edit_with_a_recomputed_hash_breaks_the_next_link(pos, db, database_url, backend):
    await _three_purchases(pos)
    async with db.write_engine.connect() as connection:
        first = (
            await connection.execute(
                chain_rows(
                    LedgerTransaction.__table__, LedgerEntry.__table__, after=(0, 0), limit=1
                )
            )
        ).one()
    forged = transaction_hash(
        {**first._mapping, "reason": "forged", "postings": parse_postings(first.postings)}
    )
    await _without_guards(
        db,
        backend,
        [f"UPDATE ledger_transactions SET reason = 'forged', hash = '{forged}' WHERE id = 1"],
    )

    assert await _chain_report(database_url) == [
        "- invariant 1 (hash chain broken): transaction 2: previous-hash link broken "
        "(the member's transaction before it was deleted or changed) (member 1)"
    ]
