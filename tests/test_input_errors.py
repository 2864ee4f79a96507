"""Several bad fields in one input: every one is reported at once, in the order the fields
are checked, each under the path the contract gives it, and nothing is written."""

from typing import Any

from loyalty.ids import encode_id
from tests.helpers import (
    CREATE_REWARD,
    RECORD_PURCHASE,
    create_reward,
    enroll,
    key,
    purchase_input,
    record,
)

UPDATE_PROGRAM = """
mutation P($input: UpdateProgramInput!) {
  updateProgram(input: $input) { program { name } errors { code field message } }
}
"""

PROGRAM = "{ program { name currency pointsPerUnit pendingDays pointsExpireAfterDays timeZone } }"


def fields_of(payload: dict[str, Any]) -> list[tuple[str, list[str] | None]]:
    assert all(error["message"].strip() for error in payload["errors"]), payload["errors"]
    return [(error["code"], error["field"]) for error in payload["errors"]]


async def test_every_bad_program_setting_is_reported_at_once(admin):
    before = (await admin.data(PROGRAM))["program"]

    payload = (
        await admin.data(
            UPDATE_PROGRAM,
            input={
                "name": "",
                "currency": "EURO",
                "pointsPerUnit": "abc",
                "pendingDays": -1,
                "timeZone": "Mars/Olympus",
                "referralLimit": -5,
                "expiryWarningDays": None,
            },
        )
    )["updateProgram"]

    assert fields_of(payload) == [
        ("INVALID", ["name"]),
        ("INVALID", ["currency"]),
        ("INVALID", ["pointsPerUnit"]),
        ("INVALID", ["pendingDays"]),
        ("INVALID", ["timeZone"]),
        ("INVALID", ["referralLimit"]),
        ("INVALID", ["expiryWarningDays"]),
    ]
    assert payload["program"] is None
    assert (await admin.data(PROGRAM))["program"] == before


async def test_settings_that_clash_with_the_program_are_reported_together(admin, pos):
    await record(pos, await enroll(pos))
    before = (await admin.data(PROGRAM))["program"]

    payload = (
        await admin.data(
            UPDATE_PROGRAM,
            input={"currency": "EUR", "pendingDays": 10, "pointsExpireAfterDays": 5},
        )
    )["updateProgram"]

    assert fields_of(payload) == [("INVALID", ["currency"]), ("INVALID", ["pointsExpireAfterDays"])]
    assert (await admin.data(PROGRAM))["program"] == before


REFUND = """
mutation R($input: RefundPurchaseInput!) {
  refundPurchase(input: $input) {
    purchase { id } pointsClawedBack errors { code field message }
  }
}
"""


async def test_a_refund_reports_its_amount_and_its_currency_at_once(pos):
    purchase = (await record(pos, await enroll(pos)))["purchase"]

    payload = (
        await pos.data(
            REFUND,
            input={
                "idempotencyKey": key(),
                "purchaseId": purchase["id"],
                "amount": {"amount": "-1", "currency": "dollars"},
            },
        )
    )["refundPurchase"]

    assert fields_of(payload) == [
        ("INVALID", ["amount", "amount"]),
        ("INVALID", ["amount", "currency"]),
    ]
    assert (payload["purchase"], payload["pointsClawedBack"]) == (None, None)


CREATE_TIER = """
mutation T($input: CreateTierInput!) {
  createTier(input: $input) { tier { id } errors { code field message } }
}
"""

UPDATE_TIER = """
mutation T($input: UpdateTierInput!) {
  updateTier(input: $input) { tier { id } errors { code field message } }
}
"""

TIERS = "{ tiers { name rank threshold multiplier benefits retentionDays } }"


async def test_every_bad_tier_field_is_reported_at_once(admin):
    payload = (
        await admin.data(
            CREATE_TIER,
            input={
                "name": "",
                "rank": -1,
                "threshold": -5,
                "multiplier": "0.5",
                "benefits": ["", "Free coffee", "b" * 201],
                "retentionDays": 4000,
            },
        )
    )["createTier"]

    assert fields_of(payload) == [
        ("INVALID", ["name"]),
        ("INVALID", ["rank"]),
        ("INVALID", ["threshold"]),
        ("INVALID", ["multiplier"]),
        ("INVALID", ["benefits", "0"]),
        ("INVALID", ["benefits", "2"]),
        ("INVALID", ["retentionDays"]),
    ]
    assert payload["tier"] is None
    assert (await admin.data(TIERS))["tiers"] == []


async def test_every_bad_tier_change_is_reported_at_once(admin):
    created = (
        await admin.data(CREATE_TIER, input={"name": "Silver", "rank": 1, "threshold": 100})
    )["createTier"]
    before = (await admin.data(TIERS))["tiers"]

    payload = (
        await admin.data(
            UPDATE_TIER,
            input={
                "id": created["tier"]["id"],
                "name": "",
                "threshold": None,
                "multiplier": "200",
                "benefits": ["Free coffee", " "],
            },
        )
    )["updateTier"]

    assert fields_of(payload) == [
        ("INVALID", ["name"]),
        ("INVALID", ["threshold"]),
        ("INVALID", ["multiplier"]),
        ("INVALID", ["benefits", "1"]),
    ]
    assert (await admin.data(TIERS))["tiers"] == before


ENROLL_MEMBER = """
mutation E($input: EnrollMemberInput!) {
  enrollMember(input: $input) { member { id } errors { code field message } }
}
"""

UPDATE_MEMBER = """
mutation U($input: UpdateMemberInput!) {
  updateMember(input: $input) {
    member { id email status consents { marketingEmail } } errors { code field message }
  }
}
"""

MEMBER = "query M($id: ID!) { member(id: $id) { email phone firstName status } }"


async def test_every_bad_enrollment_field_is_reported_at_once(pos, admin):
    payload = (
        await pos.data(
            ENROLL_MEMBER,
            input={
                "externalId": " ",
                "email": "not-an-email",
                "phone": "12",
                "firstName": "f" * 101,
                "dateOfBirth": "1850-01-01",
            },
        )
    )["enrollMember"]

    assert fields_of(payload) == [
        ("INVALID", ["externalId"]),
        ("INVALID", ["email"]),
        ("INVALID", ["phone"]),
        ("INVALID", ["firstName"]),
        ("INVALID", ["dateOfBirth"]),
    ]
    assert payload["member"] is None
    assert (await admin.data("{ members(first: 1) { edges { node { id } } } }"))["members"][
        "edges"
    ] == []


async def test_every_bad_profile_change_is_reported_at_once(pos, admin):
    member_id = await enroll(pos, email="kept@example.com")
    before = (await admin.data(MEMBER, id=member_id))["member"]

    payload = (
        await admin.data(
            UPDATE_MEMBER,
            input={
                "id": member_id,
                "email": "nope",
                "lastName": "\x00",
                "status": None,
                "consents": {"marketingEmail": None, "marketingSms": True},
            },
        )
    )["updateMember"]

    assert fields_of(payload) == [
        ("INVALID", ["email"]),
        ("INVALID", ["lastName"]),
        ("INVALID", ["status"]),
        ("INVALID", ["consents", "marketingEmail"]),
    ]
    assert (await admin.data(MEMBER, id=member_id))["member"] == before


UPDATE_REWARD = """
mutation U($input: UpdateRewardInput!) {
  updateReward(input: $input) { reward { id } errors { code field message } }
}
"""

REWARDS = "{ rewards(first: 10) { edges { node { name costPoints stock startsAt endsAt } } } }"


async def test_every_bad_reward_field_is_reported_at_once(admin):
    payload = (
        await admin.data(
            CREATE_REWARD,
            input={
                "name": " ",
                "costPoints": 0,
                "description": "d" * 2001,
                "stock": -1,
                "perMemberLimit": 0,
                "kind": "CODE_POOL",
            },
        )
    )["createReward"]

    assert fields_of(payload) == [
        ("INVALID", ["name"]),
        ("INVALID", ["description"]),
        ("INVALID", ["costPoints"]),
        ("INVALID", ["stock"]),
        ("INVALID", ["perMemberLimit"]),
    ]
    assert payload["reward"] is None
    assert (await admin.data(REWARDS))["rewards"]["edges"] == []


async def test_a_reward_change_reports_its_field_and_reference_errors_together(admin):
    reward_id = await create_reward(admin, kind="CODE_POOL")
    before = (await admin.data(REWARDS))["rewards"]

    payload = (
        await admin.data(
            UPDATE_REWARD,
            input={"id": reward_id, "costPoints": None, "active": None},
        )
    )["updateReward"]
    assert fields_of(payload) == [("INVALID", ["costPoints"]), ("INVALID", ["active"])]

    payload = (
        await admin.data(
            UPDATE_REWARD,
            input={
                "id": reward_id,
                "stock": 5,
                "minTierId": encode_id("Tier", 999_999),
                "startsAt": "2030-01-02T00:00:00+00:00",
                "endsAt": "2030-01-01T00:00:00+00:00",
            },
        )
    )["updateReward"]
    assert fields_of(payload) == [
        ("INVALID", ["stock"]),
        ("NOT_FOUND", ["minTierId"]),
        ("INVALID", ["endsAt"]),
    ]
    assert (await admin.data(REWARDS))["rewards"] == before


CREATE_WEBHOOK = """
mutation W($input: CreateWebhookInput!) {
  createWebhook(input: $input) { webhook { id } secret errors { code field message } }
}
"""


async def test_every_bad_webhook_field_is_reported_at_once(admin):
    payload = (
        await admin.data(
            CREATE_WEBHOOK,
            input={"url": "http://", "events": ["nope.x"], "description": "d" * 501},
        )
    )["createWebhook"]

    assert fields_of(payload) == [
        ("INVALID", ["url"]),
        ("INVALID", ["events"]),
        ("INVALID", ["description"]),
    ]
    assert (payload["webhook"], payload["secret"]) == (None, None)
    assert (await admin.data("{ webhooks { edges { node { id } } } }"))["webhooks"]["edges"] == []


CREATE_SEGMENT = """
mutation S($input: CreateSegmentInput!) {
  createSegment(input: $input) { segment { id } errors { code field message } }
}
"""


async def test_every_bad_segment_field_is_reported_at_once(admin):
    payload = (
        await admin.data(
            CREATE_SEGMENT,
            input={
                "name": "",
                "filter": {
                    "tierIds": [],
                    "minAvailablePoints": 10,
                    "maxAvailablePoints": 5,
                    "minPurchases": 0,
                    "purchasesWithinDays": 30,
                    "minLifetimeSpend": {"amount": "-1", "currency": "USD"},
                    "minRecency": 9,
                },
            },
        )
    )["createSegment"]

    assert fields_of(payload) == [
        ("INVALID", ["name"]),
        ("INVALID", ["filter", "tierIds"]),
        ("INVALID", ["filter", "maxAvailablePoints"]),
        ("INVALID", ["filter", "minPurchases"]),
        ("INVALID", ["filter", "minLifetimeSpend", "amount"]),
        ("INVALID", ["filter", "minRecency"]),
    ]
    assert payload["segment"] is None
    assert (await admin.data("{ segments { edges { node { id } } } }"))["segments"]["edges"] == []


PREVIEW = """
query P($input: PreviewPurchaseInput!) {
  previewPurchase(input: $input) { pointsAwarded errors { code field message } }
}
"""


async def test_every_bad_receipt_field_is_reported_at_once(pos):
    member_id = await enroll(pos)
    given = purchase_input(
        member_id,
        "abc",
        orderId=" ",
        storeId="s" * 65,
        lines=[
            {"sku": "s" * 65, "quantity": 0},
            {"sku": "ok", "unitPrice": {"amount": "1.00", "currency": "dollars"}},
        ],
    )
    expected = [
        ("INVALID", ["orderId"]),
        ("INVALID", ["storeId"]),
        ("INVALID", ["total", "amount"]),
        ("INVALID", ["lines", "1", "unitPrice", "currency"]),
        ("INVALID", ["lines", "0", "sku"]),
        ("INVALID", ["lines", "0", "quantity"]),
    ]

    recorded = (await pos.data(RECORD_PURCHASE, input=given))["recordPurchase"]
    assert fields_of(recorded) == expected
    assert recorded["purchase"] is None
    del given["idempotencyKey"]
    previewed = (await pos.data(PREVIEW, input=given))["previewPurchase"]
    assert fields_of(previewed) == expected
