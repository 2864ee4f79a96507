"""A member's data as one JSON document: the right of access and of portability.

Every section is the member's rows of one table, every column of it, so a column added later
is exported without anyone remembering to: keys are camelCase, instants ISO-8601 in UTC,
amounts decimal strings, and row and reference ids the API's opaque IDs. Other members appear
by id only (a referral names the other side, never their data). ``docs/privacy.md`` describes
each section.
"""

from datetime import date, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import RowMapping, Table, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from loyalty.audit.models import AuditEntry
from loyalty.db import utcnow
from loyalty.events.models import MemberEvent
from loyalty.feedback.models import Feedback
from loyalty.ids import encode_id
from loyalty.ledger.models import LedgerEntry, LedgerTransaction, PointLot
from loyalty.members.models import Member
from loyalty.members.service import get_member
from loyalty.purchases.models import Purchase, PurchaseRefund
from loyalty.referrals.models import Referral
from loyalty.rewards.models import Redemption
from loyalty.tiers.models import TierChange

EXPORT_VERSION = 1

ROW_TYPES = {
    "members": "Member",
    "purchases": "Purchase",
    "redemptions": "Redemption",
    "member_events": "MemberEvent",
    "feedback": "Feedback",
    "referrals": "Referral",
    "ledger_entries": "LedgerEntry",
}
"""Tables whose rows the API knows by an opaque ID of this type."""

REFERENCES = {
    "member_id": "Member",
    "referrer_id": "Member",
    "referee_id": "Member",
    "purchase_id": "Purchase",
    "redemption_id": "Redemption",
    "reward_id": "Reward",
    "event_id": "MemberEvent",
    "tier_id": "Tier",
    "from_tier_id": "Tier",
    "to_tier_id": "Tier",
    "actor_key_id": "ApiKey",
}
"""Columns that point at a row the API names by an opaque ID."""

LEFT_OUT = {
    "members": {
        "referral_pending",
        "marketing_email",
        "marketing_sms",
        "marketing_push",
        "consents_updated_at",
    },
    "audit_log": {"actor_key_id"},
}
"""Internal bookkeeping that says nothing about the person (and the key ids of staff)."""


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part.title() for part in rest)


def _value(column: str, value: Any) -> Any:
    if value is None:
        return None
    if column in REFERENCES and isinstance(value, int):
        return encode_id(REFERENCES[column], value)
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return format(value, "f")
    return value


def _row(table: Table, row: RowMapping) -> dict[str, Any]:
    left_out = LEFT_OUT.get(table.name, set())
    shaped = {
        _camel(column): _value(column, value)
        for column, value in row.items()
        if column not in left_out
    }
    if table.name in ROW_TYPES:
        shaped["id"] = encode_id(ROW_TYPES[table.name], row["id"])
    return shaped


async def _rows(session: AsyncSession, table: Table, *conditions: Any) -> list[dict[str, Any]]:
    result = await session.execute(select(table).where(*conditions).order_by(table.c.id))
    return [_row(table, row) for row in result.mappings()]


async def export_member(session: AsyncSession, *, member_id: int) -> dict[str, Any]:
    """Everything stored about the member (``NOT_FOUND`` for an unknown id)."""
    member = await get_member(session, member_id=member_id)
    purchases = Purchase.__table__
    own_purchases = select(purchases.c.id).where(purchases.c.member_id == member.id)
    transactions = LedgerTransaction.__table__
    entries = LedgerEntry.__table__
    ledger = await session.execute(
        select(
            entries.c.id,
            transactions.c.kind,
            entries.c.account,
            entries.c.points,
            entries.c.balance_after,
            transactions.c.occurred_at,
            transactions.c.created_at,
            transactions.c.reason,
            transactions.c.purchase_id,
            transactions.c.redemption_id,
        )
        .join(transactions, transactions.c.id == entries.c.transaction_id)
        .where(entries.c.member_id == member.id)
        .order_by(entries.c.id)
    )
    return {
        "version": EXPORT_VERSION,
        "generatedAt": utcnow().isoformat(),
        "member": _row(Member.__table__, (await _member_row(session, member.id))),
        "consents": {
            "marketingEmail": member.marketing_email,
            "marketingSms": member.marketing_sms,
            "marketingPush": member.marketing_push,
            "updatedAt": _value("updated_at", member.consents_updated_at),
        },
        "ledger": [_row(entries, row) for row in ledger.mappings()],
        "pointLots": await _rows(session, PointLot.__table__, PointLot.member_id == member.id),
        "purchases": await _rows(session, purchases, purchases.c.member_id == member.id),
        "refunds": await _rows(
            session, PurchaseRefund.__table__, PurchaseRefund.purchase_id.in_(own_purchases)
        ),
        "redemptions": await _rows(
            session, Redemption.__table__, Redemption.member_id == member.id
        ),
        "events": await _rows(session, MemberEvent.__table__, MemberEvent.member_id == member.id),
        "feedback": await _rows(session, Feedback.__table__, Feedback.member_id == member.id),
        "referrals": await _rows(
            session,
            Referral.__table__,
            or_(Referral.referrer_id == member.id, Referral.referee_id == member.id),
        ),
        "tierHistory": await _rows(
            session, TierChange.__table__, TierChange.member_id == member.id
        ),
        "audit": await _rows(session, AuditEntry.__table__, AuditEntry.member_id == member.id),
    }


async def _member_row(session: AsyncSession, member_id: int) -> RowMapping:
    table = Member.__table__
    return (await session.execute(select(table).where(table.c.id == member_id))).mappings().one()
