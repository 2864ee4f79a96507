"""Credentials: API keys (stored as hashes) and the generated token-signing secret."""

from datetime import datetime
from enum import StrEnum

from sqlalchemy import String
from sqlalchemy.orm import Mapped, mapped_column

from loyalty.db import Base, BigIntPK, UTCDateTime, utcnow


class Role(StrEnum):
    ADMIN = "admin"
    POS = "pos"
    APP = "app"
    MEMBER = "member"


API_KEY_ROLES = (Role.ADMIN, Role.POS, Role.APP)


class ApiKey(Base):
    __tablename__ = "api_keys"

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    name: Mapped[str] = mapped_column(String(100))
    role: Mapped[str] = mapped_column(String(16))
    prefix: Mapped[str] = mapped_column(String(16))
    secret_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    rate_limit: Mapped[str | None] = mapped_column(String(64))
    """A ``limits`` rate such as ``600/minute``; null: the key is not limited."""


class InstanceSecret(Base):
    __tablename__ = "instance_secrets"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
