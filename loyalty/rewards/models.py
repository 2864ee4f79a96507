"""Rewards catalog, redemptions and pools of partner codes."""

from datetime import datetime
from enum import StrEnum

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    CheckConstraint,
    ForeignKey,
    Index,
    String,
    Text,
)
from sqlalchemy.orm import Mapped, mapped_column

from loyalty.db import Base, BigIntPK, UTCDateTime, utcnow


class RewardKind(StrEnum):
    GENERATED_CODE = "GENERATED_CODE"
    """A fresh unguessable coupon code per redemption."""
    CODE_POOL = "CODE_POOL"
    """A code drawn from codes the admin uploaded; stock is the number of unused codes."""


class RedemptionStatus(StrEnum):
    ISSUED = "ISSUED"
    USED = "USED"
    CANCELLED = "CANCELLED"


class Reward(Base):
    __tablename__ = "rewards"
    __table_args__ = (
        CheckConstraint("cost_points > 0", name="cost_positive"),
        CheckConstraint("stock IS NULL OR stock >= 0", name="stock_non_negative"),
        CheckConstraint("per_member_limit IS NULL OR per_member_limit > 0", name="limit_positive"),
    )

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    description: Mapped[str | None] = mapped_column(Text)
    kind: Mapped[str] = mapped_column(String(24), default=RewardKind.GENERATED_CODE)
    cost_points: Mapped[int] = mapped_column(BigInteger)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    stock: Mapped[int | None] = mapped_column(BigInteger)
    """Units left to issue; null means unlimited."""
    per_member_limit: Mapped[int | None] = mapped_column(BigInteger)
    min_tier_id: Mapped[int | None] = mapped_column(ForeignKey("tiers.id"))
    channels: Mapped[list[str]] = mapped_column(JSON, default=list)
    """Channels it can be redeemed in; empty means every channel."""
    segment_ids: Mapped[list[int] | None] = mapped_column(JSON)
    """Only members in one of these segments may redeem it; None means every member."""
    starts_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    ends_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Redemption(Base):
    __tablename__ = "redemptions"
    __table_args__ = (
        Index("ix_redemptions_member_id_id", "member_id", "id"),
        Index("ix_redemptions_member_id_reward_id", "member_id", "reward_id"),
    )

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    reward_id: Mapped[int] = mapped_column(ForeignKey("rewards.id"))
    member_id: Mapped[int] = mapped_column(ForeignKey("members.id"))
    points_spent: Mapped[int] = mapped_column(BigInteger)
    code: Mapped[str] = mapped_column(String(128), unique=True)
    status: Mapped[str] = mapped_column(String(16), default=RedemptionStatus.ISSUED)
    channel: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    cancelled_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class RewardCode(Base):
    """An uploaded partner code; ``redemption_id`` is set once, when it is issued."""

    __tablename__ = "reward_codes"
    __table_args__ = (
        Index("ix_reward_codes_reward_id_redemption_id", "reward_id", "redemption_id"),
    )

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    reward_id: Mapped[int] = mapped_column(ForeignKey("rewards.id"))
    code: Mapped[str] = mapped_column(String(128), unique=True)
    redemption_id: Mapped[int | None] = mapped_column(ForeignKey("redemptions.id"), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
