"""The double-entry points ledger.

A ``LedgerTransaction`` is one points movement; its ``LedgerEntry`` rows (postings) sum to zero
across a member's accounts and the program's accounts. Member postings carry ``balance_after``,
the running balance of that member account. Program accounts keep no running balance, so no
single row becomes a hot spot that every purchase has to lock.
"""

from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import BigInteger, CheckConstraint, ForeignKey, Index, String, text
from sqlalchemy.orm import Mapped, mapped_column

from loyalty.db import Base, BigIntPK, UTCDateTime, utcnow


class EntryKind(StrEnum):
    EARN = "EARN"
    BONUS = "BONUS"
    REDEEM = "REDEEM"
    REDEMPTION_CANCEL = "REDEMPTION_CANCEL"
    REFUND_CLAWBACK = "REFUND_CLAWBACK"
    EXPIRE = "EXPIRE"
    ADJUST = "ADJUST"
    RELEASE = "RELEASE"
    """Pending points of settled purchases become available (member accounts only)."""
    FORFEIT = "FORFEIT"
    """The points an erased member still held, taken back so the liability falls."""


EARNING_KINDS = (EntryKind.EARN, EntryKind.BONUS, EntryKind.REFUND_CLAWBACK)
"""Kinds whose member postings make up lifetimeEarned (with positive ADJUST postings)."""
REDEEMING_KINDS = (EntryKind.REDEEM, EntryKind.REDEMPTION_CANCEL)
"""Kinds whose member postings, negated, make up redeemed."""


class Account(StrEnum):
    MEMBER_AVAILABLE = "MEMBER_AVAILABLE"
    MEMBER_PENDING = "MEMBER_PENDING"
    PROGRAM_ISSUANCE = "PROGRAM_ISSUANCE"
    PROGRAM_ADJUSTMENT = "PROGRAM_ADJUSTMENT"
    PROGRAM_REDEMPTION = "PROGRAM_REDEMPTION"
    PROGRAM_EXPIRY = "PROGRAM_EXPIRY"
    PROGRAM_FORFEIT = "PROGRAM_FORFEIT"


def _where(condition: str) -> dict[str, Any]:
    """A partial-index predicate on both databases."""
    return {"postgresql_where": text(condition), "sqlite_where": text(condition)}


class LedgerTransaction(Base):
    __tablename__ = "ledger_transactions"
    __table_args__ = (
        Index("ix_ledger_transactions_member_id_id", "member_id", "id"),
        # What was booked since the stats rollup's cutoff (BRIN: nearly free per insert).
        Index("ix_ledger_transactions_created_at", "created_at", postgresql_using="brin"),
        # Qualifying points per member in a window, from the index alone (evaluate-tiers).
        # The indexes are partial: the jobs' many RELEASE and EXPIRE rows stay out of them.
        Index(
            "ix_ledger_transactions_member_id_qualifying_at",
            "member_id",
            "qualifying_at",
            "qualifying_points",
            **_where("qualifying_at IS NOT NULL"),
        ),
        Index(
            "ix_ledger_transactions_purchase_id",
            "purchase_id",
            **_where("purchase_id IS NOT NULL"),
        ),
        Index(
            "ix_ledger_transactions_redemption_id",
            "redemption_id",
            **_where("redemption_id IS NOT NULL"),
        ),
    )

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    kind: Mapped[str] = mapped_column(String(24))
    member_id: Mapped[int] = mapped_column(ForeignKey("members.id"))
    occurred_at: Mapped[datetime] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    reason: Mapped[str | None] = mapped_column(String(500))
    purchase_id: Mapped[int | None] = mapped_column(ForeignKey("purchases.id"))
    redemption_id: Mapped[int | None] = mapped_column(ForeignKey("redemptions.id"))
    qualifying_points: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    """Signed points this movement adds to tier qualification (earned from purchases, net of
    clawbacks; bonuses and adjustments only when flagged)."""
    qualifying_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    """When those points count for the rolling tier window: the purchase's occurredAt."""
    prev_hash: Mapped[str | None] = mapped_column(String(64))
    """The hash of the member's previous transaction (None for the first): see ``chain``."""
    hash: Mapped[str | None] = mapped_column(String(64))
    """SHA-256 (hex) of this transaction's canonical text, ``prev_hash`` included."""


class LedgerEntry(Base):
    __tablename__ = "ledger_entries"
    __table_args__ = (Index("ix_ledger_entries_member_id_id", "member_id", "id"),)

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    transaction_id: Mapped[int] = mapped_column(ForeignKey("ledger_transactions.id"), index=True)
    account: Mapped[str] = mapped_column(String(32))
    member_id: Mapped[int | None] = mapped_column(ForeignKey("members.id"))
    points: Mapped[int] = mapped_column(BigInteger)
    balance_after: Mapped[int | None] = mapped_column(BigInteger)


class LotState(StrEnum):
    PENDING = "PENDING"
    AVAILABLE = "AVAILABLE"


class PointLot(Base):
    """The points one credit brought in, so debits can take the oldest first and expiry can
    take what is left of a lot when it expires. The remaining amounts of a member's lots add
    up to the member's available and pending points (``ledger verify`` checks it)."""

    __tablename__ = "point_lots"
    __table_args__ = (
        CheckConstraint("remaining >= 0 AND remaining <= amount", name="remaining_within_amount"),
        Index("ix_point_lots_member_id_state_earned_at", "member_id", "state", "earned_at", "id"),
        Index("ix_point_lots_purchase_id", "purchase_id"),
    )

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    member_id: Mapped[int] = mapped_column(ForeignKey("members.id"))
    transaction_id: Mapped[int | None] = mapped_column(ForeignKey("ledger_transactions.id"))
    purchase_id: Mapped[int | None] = mapped_column(ForeignKey("purchases.id"))
    amount: Mapped[int] = mapped_column(BigInteger)
    remaining: Mapped[int] = mapped_column(BigInteger)
    expired: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    """What expiry took; remaining = amount - consumptions - expired."""
    state: Mapped[str] = mapped_column(String(16))
    earned_at: Mapped[datetime] = mapped_column(UTCDateTime)
    releases_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    warned_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    """When ``warn-expiring`` announced the lot's expiry (``points.expiring``): once per lot."""


class LotConsumption(Base):
    """How much of a lot a debit took (negative: a cancellation gave it back). Expiry is not
    a consumption: it is recorded on the lot itself (``PointLot.expired``)."""

    __tablename__ = "lot_consumptions"

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    lot_id: Mapped[int] = mapped_column(ForeignKey("point_lots.id"), index=True)
    transaction_id: Mapped[int] = mapped_column(ForeignKey("ledger_transactions.id"), index=True)
    amount: Mapped[int] = mapped_column(BigInteger)
