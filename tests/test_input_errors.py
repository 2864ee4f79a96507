"""Several bad fields in one input: every one is reported at once, in the order the fields
are checked, each under the path the contract gives it, and nothing is written."""

from typing import Any

from tests.helpers import enroll, key, record

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
