"""Earning rules: campaigns that add points on top of the base rate, kept as versions.

An edit never changes a version in place: it closes the current version (``valid_to``) and
opens the next, so a purchase recorded late is evaluated with the versions in force at its
``occurredAt``. ``rule_awards`` records what each rule gave each member, which is what the
per-member caps and the campaign budget are counted from.
"""

from datetime import datetime
from decimal import Decimal
from enum import StrEnum
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    CheckConstraint,
    ForeignKey,
    Index,
    Integer,
    Numeric,
    Select,
    String,
    UniqueConstraint,
    select,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column

from loyalty.db import Base, BigIntPK, UTCDateTime, utcnow


class EffectKind(StrEnum):
    MULTIPLY = "MULTIPLY"
    """Multiply the base points of the matching lines (the rule adds base × (value − 1))."""
    FIXED_BONUS = "FIXED_BONUS"
    """Add ``value`` points per purchase or event."""
    POINTS_PER_UNIT = "POINTS_PER_UNIT"
    """Add ``value`` points per unit (quantity) of the matching lines."""
    POINTS_PER_CURRENCY = "POINTS_PER_CURRENCY"
    """Add ``value`` points per 1.00 spent on the matching lines."""


class EarningRule(Base):
    __tablename__ = "earning_rules"
    __table_args__ = (CheckConstraint("budget_used >= 0", name="budget_used_non_negative"),)

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    version: Mapped[int] = mapped_column(Integer, default=1)
    """The number of the current version."""
    budget_used: Mapped[int] = mapped_column(BigInteger, default=0)
    """Points the rule has awarded, net of refunds: what the campaign budget is checked against."""
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    archived_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class EarningRuleVersion(Base):
    __tablename__ = "earning_rule_versions"
    __table_args__ = (UniqueConstraint("rule_id", "version"),)

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    rule_id: Mapped[int] = mapped_column(ForeignKey("earning_rules.id"))
    version: Mapped[int] = mapped_column(Integer)
    valid_from: Mapped[datetime | None] = mapped_column(UTCDateTime)
    """When this version took over from the previous one (None: the first version)."""
    valid_to: Mapped[datetime | None] = mapped_column(UTCDateTime)
    """When the next version (or the archiving) replaced it; None while current."""
    name: Mapped[str] = mapped_column(String(200))
    starts_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    ends_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    priority: Mapped[int] = mapped_column(Integer, default=0)
    exclusive: Mapped[bool] = mapped_column(Boolean, default=False)
    conditions: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    effect_kind: Mapped[str] = mapped_column(String(24))
    effect_value: Mapped[Decimal] = mapped_column(Numeric(18, 4))
    limits: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


CURRENT_VERSION = (EarningRuleVersion.rule_id == EarningRule.id) & (
    EarningRuleVersion.version == EarningRule.version
)
"""Joins a rule and the version its ``version`` names: the one in force."""


def live_versions() -> Select[EarningRuleVersion]:
    """The version in force of each rule not archived."""
    return (
        select(EarningRuleVersion)
        .join(EarningRule, CURRENT_VERSION)
        .where(EarningRule.archived_at.is_(None))
    )


class RuleAward(Base):
    """Points one rule gave one member (negative: a refund took them back and freed the cap)."""

    __tablename__ = "rule_awards"
    __table_args__ = (
        Index(
            "ix_rule_awards_member_id_rule_id_awarded_for", "member_id", "rule_id", "awarded_for"
        ),
        Index(
            "ix_rule_awards_purchase_id",
            "purchase_id",
            postgresql_where=text("purchase_id IS NOT NULL"),
            sqlite_where=text("purchase_id IS NOT NULL"),
        ),
        Index(
            "ix_rule_awards_entry_id",
            "entry_id",
            postgresql_where=text("entry_id IS NOT NULL"),
            sqlite_where=text("entry_id IS NOT NULL"),
        ),
    )

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    rule_id: Mapped[int] = mapped_column(ForeignKey("earning_rules.id"))
    version_id: Mapped[int] = mapped_column(ForeignKey("earning_rule_versions.id"))
    member_id: Mapped[int] = mapped_column(ForeignKey("members.id"))
    purchase_id: Mapped[int | None] = mapped_column(ForeignKey("purchases.id"))
    event_id: Mapped[int | None] = mapped_column(ForeignKey("member_events.id"))
    entry_id: Mapped[int | None] = mapped_column(ForeignKey("ledger_entries.id"))
    """The member's BONUS posting this award is (None for a refund's release of the cap)."""
    awarded_for: Mapped[datetime] = mapped_column(UTCDateTime)
    """The purchase's or event's occurredAt: the day, week and month the caps count it in."""
    points: Mapped[int] = mapped_column(BigInteger)
    budgeted: Mapped[bool] = mapped_column(Boolean, default=False)
    """The points count against the rule's budget (``budget_used``), so a refund gives back."""
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
