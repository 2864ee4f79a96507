"""The outbox: every mutation and job that changes something writes its events exactly once,
in the same transaction; a rolled-back change, or an idempotent replay, writes none. The
jobs' events (built in SQL) have the same shape as the services' (built in Python)."""

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import BigInteger, literal, select

from loyalty.db import utcnow
from loyalty.events.birthdays import birthday_bonus
from loyalty.held_writes import WRITES_PER_STATEMENT
from loyalty.ids import decode_id, encode_id
from loyalty.ledger.jobs import expire_points, release_pending
from loyalty.outbox import service as outbox_service
from loyalty.outbox.models import Event
from loyalty.outbox.service import global_id_sql
from loyalty.tiers.evaluation import evaluate_tiers
from tests.helpers import (
    ADJUST,
    CANCEL,
    REDEEM,
    create_reward,
    enroll,
    key,
    purchase_input,
    record,
    redeem_input,
)
from tests.test_events import LONG_AGO, create_rule, send
from tests.test_tiers import make_tier

PROGRAM = """mutation($input: UpdateProgramInput!) { updateProgram(input: $input) {
  errors { code } } }"""
UPDATE_MEMBER = """mutation($input: UpdateMemberInput!) { updateMember(input: $input) {
  errors { code } } }"""
REFUND = """mutation($input: RefundPurchaseInput!) { refundPurchase(input: $input) {
  pointsClawedBack errors { code } } }"""
USED = """mutation($input: MarkRedemptionUsedInput!) { markRedemptionUsed(input: $input) {
  errors { code } } }"""
CODE = "query($id: ID!) { member(id: $id) { referralCode } }"
SET_TIER = """mutation($input: SetMemberTierInput!) { setMemberTier(input: $input) {
  errors { code } } }"""
RECORD = """mutation($input: RecordPurchaseInput!) { recordPurchase(input: $input) {
  errors { code } } }"""


class Outbox:
    """Reads the events written since the last call."""

    def __init__(self, db: Any) -> None:
        self.db = db
        self.seen = 0

    async def new(self) -> list[Event]:
        async with self.db.read_session() as session:
            rows = list(
                (
                    await session.scalars(
                        select(Event).where(Event.id > self.seen).order_by(Event.id)
                    )
                ).all()
            )
        if rows:
            self.seen = rows[-1].id
        return rows

    async def types(self) -> list[str]:
        return [event.type for event in await self.new()]


def member_key(member_id: str) -> int:
    key_ = decode_id("Member", member_id)
    assert key_ is not None
    return key_


async def test_each_mutation_writes_its_events_once(admin, pos, db):
    outbox = Outbox(db)
    await admin.data(PROGRAM, input={"referrerPoints": 50, "refereePoints": 20})
    await make_tier(admin, "Base", 0, 0)
    await make_tier(admin, "Gold", 1, 100)
    await outbox.new()

    member = await enroll(pos, email="ann@example.com")
    [enrolled] = await outbox.new()
    assert enrolled.type == "member.enrolled"
    assert enrolled.member_id == member_key(member)
    assert enrolled.data["member"]["id"] == member
    assert enrolled.data["member"]["email"] == "ann@example.com"
    assert enrolled.data["member"]["tier"]["id"]
    assert uuid.UUID(enrolled.event_id).version == 7, "time-ordered ids"

    await admin.data(UPDATE_MEMBER, input={"id": member, "firstName": "Ann"})
    [updated] = await outbox.new()
    assert (updated.type, updated.data["member"]["firstName"]) == ("member.updated", "Ann")

    bought = await record(pos, member, "150.00")
    events = await outbox.new()
    assert [e.type for e in events] == ["purchase.recorded", "points.earned", "tier.changed"]
    recorded, earned, tier = events
    assert recorded.data["purchase"]["id"] == bought["purchase"]["id"]
    assert recorded.data["purchase"]["total"] == {"amount": "150.00", "currency": "USD"}
    assert earned.data["points"] == 150
    assert earned.data["purchase"] == {"id": bought["purchase"]["id"]}
    assert earned.data["member"]["points"]["available"] == 150
    assert earned.data["entry"]["kind"] == "EARN"
    assert decode_id("LedgerEntry", earned.data["entry"]["id"])
    assert (tier.data["from"]["name"], tier.data["to"]["name"]) == ("Base", "Gold")

    adjusted = await admin.data(
        ADJUST, input={"idempotencyKey": key(), "memberId": member, "points": -5, "reason": "x"}
    )
    [event] = await outbox.new()
    assert (event.type, event.data["points"]) == ("points.adjusted", -5)
    assert event.data["entry"]["id"] == adjusted["adjustPoints"]["entry"]["id"]

    reward = await create_reward(admin, costPoints=40)
    await outbox.new()
    issued = (await pos.data(REDEEM, input=redeem_input(member, reward)))["redeemReward"]
    assert await outbox.types() == ["points.redeemed", "redemption.issued"]
    await pos.data(USED, input={"code": issued["redemption"]["code"]})
    assert await outbox.types() == ["redemption.used"]

    second = (await pos.data(REDEEM, input=redeem_input(member, reward)))["redeemReward"]
    await outbox.new()
    await pos.data(
        CANCEL, input={"idempotencyKey": key(), "redemptionId": second["redemption"]["id"]}
    )
    events = await outbox.new()
    assert [e.type for e in events] == ["points.refunded", "redemption.cancelled"]
    assert events[0].data["entry"]["kind"] == "REDEMPTION_CANCEL"
    assert events[1].data["redemption"]["status"] == "CANCELLED"

    refund = {
        "idempotencyKey": key(),
        "purchaseId": bought["purchase"]["id"],
        "amount": {"amount": "50.00", "currency": "USD"},
    }
    assert (await pos.data(REFUND, input=refund))["refundPurchase"]["errors"] == []
    events = await outbox.new()
    assert [e.type for e in events] == ["points.refunded", "purchase.refunded"]
    assert events[0].data["points"] == -50
    assert events[1].data["pointsClawedBack"] == 50

    code = (await pos.data(CODE, id=member))["member"]["referralCode"]
    friend = await enroll(pos, referralCode=code)
    await outbox.new()
    await record(pos, friend, "10.00")
    types = await outbox.types()
    assert types == [
        "purchase.recorded",
        "points.earned",
        "points.earned",
        "points.earned",
        "referral.rewarded",
    ]


async def test_a_rolled_back_or_replayed_change_writes_no_event(admin, pos, db):
    outbox = Outbox(db)
    member = await enroll(pos)
    reward = await create_reward(admin, costPoints=40)
    await outbox.new()

    refused = (await pos.data(REDEEM, input=redeem_input(member, reward)))["redeemReward"]
    assert refused["errors"][0]["code"] == "INSUFFICIENT_POINTS"
    duplicate = await pos(
        "mutation($input: EnrollMemberInput!) { enrollMember(input: $input) { errors { code } } }",
        input={"externalId": "dup"},
    )
    assert duplicate["data"]["enrollMember"]["errors"] == []
    await outbox.new()
    again = await pos(
        "mutation($input: EnrollMemberInput!) { enrollMember(input: $input) { errors { code } } }",
        input={"externalId": "dup"},
    )
    assert again["data"]["enrollMember"]["errors"] == [{"code": "ALREADY_EXISTS"}]
    assert await outbox.new() == []

    purchase = purchase_input(member, "30.00")
    await pos.data(RECORD, input=purchase)
    assert await outbox.types() == ["purchase.recorded", "points.earned"]
    await pos.data(RECORD, input=purchase)
    assert await outbox.new() == [], "an idempotent replay changes nothing and emits nothing"


async def test_jobs_write_their_events_set_based_in_the_same_shape(admin, pos, db):
    outbox = Outbox(db)
    await admin.data(PROGRAM, input={"pendingDays": 7, "pointsExpireAfterDays": 30})
    await make_tier(admin, "Base", 0, 0)
    await make_tier(admin, "Silver", 1, 20)
    members = [await enroll(pos) for _ in range(3)]
    for member in members:
        await record(pos, member, "25.00")
    await outbox.new()
    now = utcnow()

    await release_pending(db, now=now + timedelta(days=8))
    released = await outbox.new()
    assert sorted(e.member_id for e in released) == sorted(map(member_key, members))
    for event in released:
        assert event.type == "points.released"
        assert event.data["points"] == 25
        assert event.data["entry"]["kind"] == "RELEASE"
        assert event.data["entry"]["points"] == 25
        assert decode_id("LedgerEntry", event.data["entry"]["id"])
        assert (
            event.data["member"]["id"]
            == members[[member_key(m) for m in members].index(event.member_id)]
        )
        assert event.data["member"]["points"]["available"] == 25
        assert event.data["member"]["points"]["pending"] == 0
        assert event.data["purchase"] is None
    assert len({e.event_id for e in released}) == 3
    assert {uuid.UUID(e.event_id).version for e in released} == {7}, "made in SQL the same way"

    await release_pending(db, now=now + timedelta(days=8))
    assert await outbox.new() == [], "a rerun finds nothing due and emits nothing"

    await expire_points(db, now=now + timedelta(days=31))
    expired = await outbox.new()
    assert [(e.type, e.data["points"]) for e in expired] == [("points.expired", -25)] * 3
    assert all(e.data["member"]["points"]["expired"] == 25 for e in expired)

    await evaluate_tiers(db, now=now + timedelta(days=400))
    changed = await outbox.new()
    assert {e.type for e in changed} == {"tier.changed"}
    assert len(changed) == 3
    for event in changed:
        assert event.data["from"]["name"] == "Silver"
        assert decode_id("Tier", event.data["from"]["id"])
        assert event.data["to"]["name"] == "Base"
        assert event.data["reason"] == "EXPIRED"
        assert (
            event.data["member"]["id"]
            == members[[member_key(m) for m in members].index(event.member_id)]
        )


async def test_recorded_events_birthdays_and_tier_overrides_write_their_events(admin, pos, db):
    outbox = Outbox(db)
    await create_rule(admin, "Install the app", 30, "app_installed")
    await create_rule(admin, "Happy birthday", 100, "birthday", startsAt=LONG_AGO)
    base = await make_tier(admin, "Base", 0, 0)
    await make_tier(admin, "Gold", 1, 1000)
    born = [await enroll(pos, dateOfBirth="1990-06-15") for _ in range(2)]
    other = await enroll(pos, dateOfBirth="1990-06-16")
    await outbox.new()

    await send(pos, other, "app_installed")
    [earned] = await outbox.new()
    assert (earned.type, earned.data["points"], earned.data["entry"]["kind"]) == (
        "points.earned",
        30,
        "BONUS",
    )

    await birthday_bonus(db, now=datetime(2025, 6, 15, 9, tzinfo=UTC))
    birthdays = await outbox.new()
    assert sorted(e.member_id for e in birthdays) == sorted(map(member_key, born))
    for event in birthdays:
        assert event.type == "points.earned"
        assert event.data["points"] == 100
        assert event.data["entry"]["kind"] == "BONUS"
        assert event.data["entry"]["reason"] == "Birthday bonus: Happy birthday"
        assert event.data["member"]["points"]["available"] == 100
    await birthday_bonus(db, now=datetime(2025, 6, 15, 10, tzinfo=UTC))
    assert await outbox.new() == [], "once a year, and so is its event"

    gold = (await admin.data("{ tiers { id name } }"))["tiers"][1]["id"]
    moved = await admin.data(SET_TIER, input={"memberId": other, "tierId": gold, "reason": "VIP"})
    assert moved["setMemberTier"]["errors"] == []
    [changed] = await outbox.new()
    assert changed.type == "tier.changed"
    assert changed.data["from"] == {"id": base, "name": "Base"}
    assert changed.data["to"] == {"id": gold, "name": "Gold"}
    assert changed.data["reason"] == "ADMIN"


async def test_global_ids_built_in_sql_match_the_api(db):
    keys = [1, 22, 333, 4444, 55555, 666666, 123456789012345678]
    async with db.transaction() as session:
        built = [
            await session.scalar(select(global_id_sql(name, literal(pk, BigInteger()))))
            for name in ("Member", "LedgerEntry", "Tier")
            for pk in keys
        ]
    assert built == [
        encode_id(name, pk) for name in ("Member", "LedgerEntry", "Tier") for pk in keys
    ]


async def test_many_events_of_one_transaction_are_all_written_in_order(db):
    """More held writes than one statement carries go in several, in the order they were made."""
    count = 2 * WRITES_PER_STATEMENT + 7
    async with db.transaction() as session:
        for n in range(count):
            await outbox_service.emit(
                session, outbox_service.MEMBER_UPDATED, member_id=None, data={"n": n}
            )
    async with db.transaction() as session:
        written = (await session.scalars(select(Event).order_by(Event.id))).all()
    assert [event.data["n"] for event in written] == list(range(count))
