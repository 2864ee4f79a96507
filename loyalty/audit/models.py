"""The audit log: who changed what, when, under which request. Append-only, like the ledger."""

from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import JSON, BigInteger, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from loyalty.db import Base, BigIntPK, UTCDateTime, utcnow


class ActorKind(StrEnum):
    API_KEY = "API_KEY"
    MEMBER_TOKEN = "MEMBER_TOKEN"
    CLI = "CLI"


class AuditEntry(Base):
    """One change. No foreign keys: the entry must outlive (and not pin) what it names, so the
    actor's name is a copy taken at the time."""

    __tablename__ = "audit_log"
    __table_args__ = (
        Index("ix_audit_log_member_id_id", "member_id", "id"),
        Index("ix_audit_log_actor_key_id_id", "actor_key_id", "id"),
        Index("ix_audit_log_operation_id", "operation", "id"),
    )

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    occurred_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    actor_kind: Mapped[str] = mapped_column(String(16))
    actor_role: Mapped[str | None] = mapped_column(String(16))
    actor_key_id: Mapped[int | None] = mapped_column(BigInteger)
    actor_name: Mapped[str | None] = mapped_column(String(100))
    member_id: Mapped[int | None] = mapped_column(BigInteger)
    """The member the change concerns (for a member token's write, the member itself)."""
    operation: Mapped[str] = mapped_column(String(64))
    target_ids: Mapped[list[str]] = mapped_column(JSON)
    summary: Mapped[dict[str, Any]] = mapped_column(JSON)
    request_id: Mapped[str | None] = mapped_column(String(128))
