"""Every table, imported in one place so Alembic and tests see the whole metadata."""

from loyalty.analytics.models import StatsDay, StatsMemberMonth, StatsMonth, StatsRollup
from loyalty.audit.models import AuditEntry
from loyalty.auth.models import ApiKey, InstanceSecret
from loyalty.db import Base
from loyalty.events.models import MemberEvent
from loyalty.feedback.models import Feedback
from loyalty.idempotency.models import IdempotencyKey
from loyalty.ledger.models import LedgerEntry, LedgerTransaction, LotConsumption, PointLot
from loyalty.members.models import Member
from loyalty.outbox.models import Event, Webhook, WebhookDelivery
from loyalty.program.models import Program
from loyalty.purchases.models import Purchase, PurchaseRefund
from loyalty.referrals.models import Referral
from loyalty.rewards.models import Redemption, Reward, RewardCode
from loyalty.rules.models import EarningRule, EarningRuleVersion, RuleAward
from loyalty.segments.models import MemberRfm, Segment
from loyalty.tiers.models import Tier, TierChange

__all__ = [
    "ApiKey",
    "AuditEntry",
    "Base",
    "EarningRule",
    "EarningRuleVersion",
    "Event",
    "Feedback",
    "IdempotencyKey",
    "InstanceSecret",
    "LedgerEntry",
    "LedgerTransaction",
    "LotConsumption",
    "Member",
    "MemberEvent",
    "MemberRfm",
    "PointLot",
    "Program",
    "Purchase",
    "PurchaseRefund",
    "Redemption",
    "Referral",
    "Reward",
    "RewardCode",
    "RuleAward",
    "Segment",
    "StatsDay",
    "StatsMemberMonth",
    "StatsMonth",
    "StatsRollup",
    "Tier",
    "TierChange",
    "Webhook",
    "WebhookDelivery",
]
