"""The checked-in SDL matches the code, and every example client document works."""

from datetime import UTC, datetime, timedelta
from pathlib import Path

from graphql import OperationDefinitionNode, OperationType, parse, validate

from loyalty.config import Settings
from loyalty.graphql.schema import build_schema, export_sdl
from tests.conftest import GraphQLClient
from tests.helpers import key

SCHEMA_DIR = Path(__file__).resolve().parent.parent / "schema"
OPERATIONS = sorted((SCHEMA_DIR / "operations").rglob("*.graphql"))


def is_subscription(path: Path) -> bool:
    """Subscriptions run over WebSocket: tests/test_live.py runs those documents."""
    return any(
        isinstance(node, OperationDefinitionNode) and node.operation == OperationType.SUBSCRIPTION
        for node in parse(path.read_text()).definitions
    )


def _document(name: str) -> str:
    return (SCHEMA_DIR / "operations" / name).read_text()


def test_checked_in_sdl_matches_the_code():
    assert (SCHEMA_DIR / "schema.graphql").read_text() == export_sdl(), (
        "schema/schema.graphql is stale: run `loyalty schema export > schema/schema.graphql`"
    )


def test_every_example_document_is_valid():
    schema = build_schema(Settings(debug=True))._schema
    assert OPERATIONS
    for path in OPERATIONS:
        errors = validate(schema, parse(path.read_text()))
        assert not errors, f"{path.name}: {errors}"


async def test_every_example_document_runs_for_its_client(admin, pos, app_client):
    ran: set[str] = set()

    async def run(client: GraphQLClient, name: str, **variables) -> dict:
        data = await client.data(_document(name), **variables)
        for payload in data.values():
            if isinstance(payload, dict) and "errors" in payload:
                assert payload["errors"] == [], (name, payload["errors"])
        ran.add(name)
        return data

    # given an admin who set up the program and its tiers
    await run(
        admin,
        "admin/configure_tiers.graphql",
        input={"name": "Member", "rank": 1, "threshold": 0, "benefits": ["Birthday treat"]},
    )
    gold = await run(
        admin,
        "admin/configure_tiers.graphql",
        input={
            "name": "Gold",
            "rank": 2,
            "threshold": 1000,
            "multiplier": "1.5",
            "retentionDays": 90,
        },
    )
    await run(
        admin,
        "admin/update_tier.graphql",
        input={"id": gold["createTier"]["tier"]["id"], "threshold": 800},
    )
    await run(
        admin,
        "admin/preview_tier_change.graphql",
        input={"tiers": [{"rank": 1, "threshold": 0}, {"rank": 2, "threshold": 500}]},
    )
    await run(
        admin,
        "admin/update_program.graphql",
        input={"name": "Corner Café", "pointsPerUnit": "2", "currency": "USD"},
    )
    await run(app_client, "app/program.graphql")

    # when a till enrolls a customer, looks them up and records a receipt
    enrolled = await run(
        pos, "pos/enroll_member.graphql", input={"externalId": "card-0001", "channel": "IN_STORE"}
    )
    member_id = enrolled["enrollMember"]["member"]["id"]
    await run(pos, "pos/lookup_member.graphql", externalId="card-0001")
    receipt = await run(
        pos,
        "pos/record_purchase.graphql",
        input={
            "idempotencyKey": key(),
            "memberExternalId": "card-0001",
            "orderId": "R-1001",
            "channel": "IN_STORE",
            "storeId": "store-7",
            "total": {"amount": "12.40", "currency": "USD"},
            "lines": [
                {
                    "sku": "LATTE",
                    "category": "coffee",
                    "quantity": 2,
                    "unitPrice": {"amount": "6.20", "currency": "USD"},
                }
            ],
        },
    )
    assert receipt["recordPurchase"]["pointsAwarded"] == 24

    # and the admin corrects and searches
    await run(
        admin,
        "admin/adjust_points.graphql",
        input={"idempotencyKey": key(), "memberId": member_id, "points": 6, "reason": "welcome"},
    )
    await run(admin, "admin/search_members.graphql", search="card")
    await run(admin, "admin/update_member.graphql", input={"id": member_id, "email": "c@ex.com"})

    # then the member's phone sees it all
    issued = await run(app_client, "app/issue_member_token.graphql", input={"memberId": member_id})
    phone = app_client.as_(issued["issueMemberToken"]["token"])
    progress = (await run(phone, "app/tier_progress.graphql"))["me"]["tierProgress"]
    assert (progress["current"]["name"], progress["pointsToNext"]) == ("Member", 776)
    me = (await run(phone, "app/me.graphql"))["me"]
    assert me["points"]["available"] == 30
    assert [e["node"]["kind"] for e in me["ledger"]["edges"]] == ["ADJUST", "EARN"]

    # and rewards: the admin adds two, the phone sees what it can afford and redeems it
    created = await run(
        admin,
        "admin/create_reward.graphql",
        input={"name": "Free cookie", "costPoints": 10, "stock": 50, "perMemberLimit": 2},
    )
    cookie = created["createReward"]["reward"]["id"]
    await run(admin, "admin/create_reward.graphql", input={"name": "Mug", "costPoints": 500})
    offer = await run(phone, "app/rewards_i_can_redeem.graphql")
    assert [e["node"]["name"] for e in offer["rewards"]["edges"]] == ["Free cookie"]
    redeemed = await run(
        phone,
        "app/redeem.graphql",
        input={
            "idempotencyKey": key(),
            "memberId": member_id,
            "rewardId": cookie,
            "channel": "MOBILE_APP",
        },
    )
    code = redeemed["redeemReward"]["redemption"]["code"]
    await run(pos, "pos/lookup_code.graphql", code=code)
    await run(pos, "pos/use_code.graphql", input={"code": code})
    at_till = await run(
        pos,
        "pos/redeem_at_till.graphql",
        input={
            "idempotencyKey": key(),
            "memberId": member_id,
            "rewardId": cookie,
            "channel": "IN_STORE",
        },
    )
    await run(
        pos,
        "pos/cancel_redemption.graphql",
        input={
            "idempotencyKey": key(),
            "redemptionId": at_till["redeemReward"]["redemption"]["id"],
        },
    )

    # and a return at the till, the phone's expiry view and finance's report
    refunded = await run(
        pos,
        "pos/refund.graphql",
        input={
            "idempotencyKey": key(),
            "purchaseId": receipt["recordPurchase"]["purchase"]["id"],
            "amount": {"amount": "6.20", "currency": "USD"},
        },
    )
    assert refunded["refundPurchase"]["pointsClawedBack"] == 12
    await run(phone, "app/points_expiring_soon.graphql")
    await run(admin, "admin/liability_report.graphql")

    # and a campaign: double points on pastries at weekends (since a fortnight ago), then edited
    weekend = await run(
        admin,
        "admin/create_double_points_weekend.graphql",
        categories=["pastries"],
        startsAt=(datetime.now(UTC) - timedelta(days=14)).isoformat(),
        perMemberPerDay=200,
        budget=50_000,
    )
    rule = weekend["createEarningRule"]["earningRule"]
    assert (rule["effect"], rule["conditions"]["daysOfWeek"]) == (
        {"kind": "MULTIPLY", "value": "2"},
        ["SATURDAY", "SUNDAY"],
    )
    await run(
        admin,
        "admin/update_earning_rule.graphql",
        input={"id": rule["id"], "name": "Pastry weekend", "limits": {"perMemberPerDay": 300}},
    )
    listed = await run(admin, "admin/earning_rules.graphql")
    [edge] = listed["earningRules"]["edges"]
    assert [v["version"] for v in edge["node"]["versions"]] == [1, 2]

    # the till quotes a basket bought last Saturday (the campaign doubles its pastries)
    today = datetime.now(UTC).date()
    saturday = today - timedelta(days=(today.weekday() - 5) % 7 or 7)
    quoted = await run(
        pos,
        "pos/preview_purchase.graphql",
        input={
            "memberId": member_id,
            "orderId": "R-1002",
            "channel": "IN_STORE",
            "total": {"amount": "7.00", "currency": "USD"},
            "occurredAt": f"{saturday.isoformat()}T12:00:00+00:00",
            "lines": [
                {
                    "sku": "CROISSANT",
                    "category": "pastries",
                    "quantity": 2,
                    "unitPrice": {"amount": "3.50", "currency": "USD"},
                }
            ],
        },
    )
    preview = quoted["previewPurchase"]
    assert preview["pointsAwarded"] == 28
    assert [(i["points"], i["description"], i["rule"]) for i in preview["pointsBreakdown"]] == [
        (14, "Base points", None),
        (14, "Double points weekend", {"id": rule["id"], "name": "Pastry weekend"}),
    ]

    # and the app: the member installed it (no event rule rewards that here), shares the code
    event = await run(
        app_client,
        "app/record_event.graphql",
        input={"idempotencyKey": key(), "memberId": member_id, "type": "app_installed"},
    )
    assert event["recordEvent"]["event"]["type"] == "app_installed"
    shared = (await run(phone, "app/referral_share.graphql"))["me"]
    assert shared["referralCode"]
    assert shared["referralCounts"] == {"enrolled": 0, "rewarded": 0}

    # the member rates the visit in the app; the admin reads it and the day's figures
    rated = await run(
        phone,
        "app/submit_feedback.graphql",
        input={"idempotencyKey": key(), "memberId": member_id, "kind": "CSAT", "score": 5},
    )
    assert rated["submitFeedback"]["feedback"]["score"] == 5
    said = await run(admin, "admin/feedback.graphql", first=10, kind="CSAT")
    assert [e["node"]["score"] for e in said["feedback"]["edges"]] == [5]
    now = datetime.now(UTC)
    stats = await run(
        admin,
        "admin/program_stats.graphql",
        **{
            "from": (now - timedelta(days=1)).isoformat(),
            "to": (now + timedelta(hours=1)).isoformat(),
            "groupBy": "DAY",
        },
    )
    totals = stats["programStats"]["totals"]
    assert (totals["feedbackCount"], totals["csatAverage"]) == (1, 5.0)

    # the member agrees to emails; the admin targets regulars who did, with a campaign
    await run(
        phone,
        "app/update_consents.graphql",
        input={"id": member_id, "consents": {"marketingEmail": True}},
    )
    segment = await run(
        admin,
        "admin/create_segment.graphql",
        input={
            "name": "Email regulars",
            "filter": {
                "minPurchases": 1,
                "minLifetimeSpend": {"amount": "5.00", "currency": "USD"},
                "marketingConsent": "EMAIL",
            },
        },
    )
    segment_id = segment["createSegment"]["segment"]["id"]
    assert segment["createSegment"]["segment"]["memberCount"] == 1
    listed = await run(admin, "admin/segment_members.graphql", id=segment_id)
    assert [e["node"]["id"] for e in listed["segment"]["members"]["edges"]] == [member_id]
    await run(
        admin,
        "admin/segment_campaign.graphql",
        rule={
            "name": "Regulars double points",
            "effect": {"kind": "MULTIPLY", "value": "2"},
            "conditions": {"segmentIds": [segment_id]},
        },
        reward={"name": "Regulars coffee", "costPoints": 5, "segmentIds": [segment_id]},
    )

    # the CRM is told of every purchase; its maintenance window pauses the endpoint
    hooked = await run(
        admin,
        "admin/create_webhook.graphql",
        input={"url": "https://8.8.8.8/loyalty", "events": ["purchase.recorded"]},
    )
    assert hooked["createWebhook"]["secret"].startswith("whsec_")
    hook_id = hooked["createWebhook"]["webhook"]["id"]
    paused = await run(
        admin, "admin/update_webhook.graphql", input={"id": hook_id, "active": False}
    )
    assert paused["updateWebhook"]["webhook"]["active"] is False
    log = await run(admin, "admin/webhook_deliveries.graphql", id=hook_id, first=10)
    assert log["webhook"]["id"] == hook_id and log["webhookDeliveries"]["edges"] == []

    # the member asks for their data, then to be forgotten
    exported = await run(admin, "admin/export_member_data.graphql", memberId=member_id)
    assert exported["exportMemberData"]["export"]["member"]["id"] == member_id
    erased = await run(
        admin,
        "admin/erase_member.graphql",
        input={"idempotencyKey": key(), "memberId": member_id, "reason": "GDPR request 42"},
    )
    assert erased["eraseMember"]["member"]["status"] == "ERASED"

    assert ran == {
        str(p.relative_to(SCHEMA_DIR / "operations")) for p in OPERATIONS if not is_subscription(p)
    }
