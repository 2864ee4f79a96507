"""Every table, imported in one place so Alembic and tests see the whole metadata."""

from loyalty.auth.models import ApiKey, InstanceSecret
from loyalty.db import Base
from loyalty.idempotency.models import IdempotencyKey
from loyalty.ledger.models import LedgerEntry, LedgerTransaction, LotConsumption, PointLot
from loyalty.members.models import Member
from loyalty.program.models import Program
from loyalty.purchases.models import Purchase
from loyalty.rewards.models import Redemption, Reward, RewardCode
from loyalty.tiers.models import Tier, TierChange

__all__ = [
    "ApiKey",
    "Base",
    "IdempotencyKey",
    "InstanceSecret",
    "LedgerEntry",
    "LedgerTransaction",
    "LotConsumption",
    "Member",
    "PointLot",
    "Program",
    "Purchase",
    "Redemption",
    "Reward",
    "RewardCode",
    "Tier",
    "TierChange",
]
