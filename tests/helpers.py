"""GraphQL documents and small helpers the tests share."""

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import uvicorn
from starlette.types import ASGIApp

ENROLL = """
mutation Enroll($input: EnrollMemberInput!) {
  enrollMember(input: $input) {
    member { id externalId email phone firstName lastName status tier { name } }
    errors { code field message }
  }
}
"""

RECORD_PURCHASE = """
mutation Record($input: RecordPurchaseInput!) {
  recordPurchase(input: $input) {
    purchase { id orderId channel storeId total { amount currency } pointsAwarded status }
    pointsAwarded
    member { id points { available pending lifetimeEarned redeemed expired } }
    errors { code field message }
  }
}
"""

ADJUST = """
mutation Adjust($input: AdjustPointsInput!) {
  adjustPoints(input: $input) {
    entry { id kind points balanceAfter reason }
    member { id points { available lifetimeEarned } }
    errors { code field message }
  }
}
"""

MEMBER = """
query Member($id: ID!) {
  member(id: $id) {
    id externalId status
    points { available pending lifetimeEarned redeemed expired }
    ledger(first: 10) { edges { node { kind points balanceAfter } } }
  }
}
"""


def key() -> str:
    return uuid.uuid4().hex


async def enroll(client: Any, external_id: str | None = None, **fields: Any) -> str:
    data = await client.data(
        ENROLL, input={"externalId": external_id or f"m-{key()[:12]}", **fields}
    )
    payload = data["enrollMember"]
    assert payload["errors"] == [], payload["errors"]
    return payload["member"]["id"]


def purchase_input(member_id: str, amount: str = "25.00", **overrides: Any) -> dict[str, Any]:
    return {
        "idempotencyKey": key(),
        "memberId": member_id,
        "orderId": f"order-{key()[:16]}",
        "channel": "IN_STORE",
        "storeId": "store-1",
        "total": {"amount": amount, "currency": "USD"},
        **overrides,
    }


async def record(client: Any, member_id: str, amount: str = "25.00", **overrides: Any) -> dict:
    data = await client.data(RECORD_PURCHASE, input=purchase_input(member_id, amount, **overrides))
    return data["recordPurchase"]


def refund_input(
    purchase_id: str, amount: str, currency: str = "USD", idempotency_key: str | None = None
) -> dict[str, Any]:
    return {
        "idempotencyKey": idempotency_key or key(),
        "purchaseId": purchase_id,
        "amount": {"amount": amount, "currency": currency},
    }


CREATE_REWARD = """
mutation Create($input: CreateRewardInput!) {
  createReward(input: $input) {
    reward { id name costPoints stock perMemberLimit channels kind active }
    errors { code field message }
  }
}
"""

REDEEM = """
mutation Redeem($input: RedeemRewardInput!) {
  redeemReward(input: $input) {
    redemption { id code status pointsSpent reward { id name stock } member { id } }
    member { id points { available redeemed } }
    errors { code field message }
  }
}
"""

CANCEL = """
mutation Cancel($input: CancelRedemptionInput!) {
  cancelRedemption(input: $input) {
    redemption { id status cancelledAt }
    member { id points { available redeemed } }
    errors { code field message }
  }
}
"""


async def create_reward(admin: Any, **fields: Any) -> str:
    data = await admin.data(
        CREATE_REWARD, input={"name": f"reward {key()[:6]}", "costPoints": 100, **fields}
    )
    payload = data["createReward"]
    assert payload["errors"] == [], payload["errors"]
    return payload["reward"]["id"]


async def grant(admin: Any, member_id: str, points: int) -> None:
    data = await admin.data(
        ADJUST,
        input={"idempotencyKey": key(), "memberId": member_id, "points": points, "reason": "t"},
    )
    assert data["adjustPoints"]["errors"] == [], data["adjustPoints"]["errors"]


def redeem_input(member_id: str, reward_id: str, channel: str = "IN_STORE") -> dict[str, Any]:
    return {
        "idempotencyKey": key(),
        "memberId": member_id,
        "rewardId": reward_id,
        "channel": channel,
    }


async def redeem(client: Any, member_id: str, reward_id: str, channel: str = "IN_STORE") -> dict:
    data = await client.data(REDEEM, input=redeem_input(member_id, reward_id, channel))
    return data["redeemReward"]


LONE_SURROGATE = "LONE-SURROGATE"


async def post_with_lone_surrogate(client: Any, query: str, **variables: Any) -> dict[str, Any]:
    """Send a request whose JSON carries a lone surrogate (\\ud800) where ``LONE_SURROGATE``
    stands: valid JSON text, but no Python client would encode such a string itself."""
    body = json.dumps({"query": query, "variables": variables}).replace(LONE_SURROGATE, "\\ud800")
    response = await client.http.post(
        "/graphql",
        content=body.encode(),
        headers={"Authorization": f"Bearer {client.token}", "Content-Type": "application/json"},
    )
    assert response.status_code == 200, response.text
    result: dict[str, Any] = response.json()
    return result


@asynccontextmanager
async def serving(app: ASGIApp) -> AsyncIterator[int]:
    """``app`` served by a real uvicorn in this process, for the block; yields its port."""
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning", lifespan="off")
    )
    server.install_signal_handlers = lambda: None  # type: ignore[method-assign]
    task = asyncio.create_task(server.serve())
    while not server.started:  # noqa: ASYNC110 (uvicorn offers no event to wait on)
        await asyncio.sleep(0.01)
    try:
        yield server.servers[0].sockets[0].getsockname()[1]
    finally:
        server.should_exit = True
        await task
