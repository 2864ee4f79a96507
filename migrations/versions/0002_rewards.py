"""rewards and redemptions

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-23 13:07:46.639768
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import loyalty.db

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "rewards",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column("kind", sa.String(length=24), nullable=False),
        sa.Column("cost_points", sa.BigInteger(), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("stock", sa.BigInteger(), nullable=True),
        sa.Column("per_member_limit", sa.BigInteger(), nullable=True),
        sa.Column(
            "min_tier_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True
        ),
        sa.Column("channels", sa.JSON(), nullable=False),
        sa.Column("starts_at", loyalty.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("ends_at", loyalty.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("created_at", loyalty.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", loyalty.db.UTCDateTime(timezone=True), nullable=False),
        sa.CheckConstraint("cost_points > 0", name=op.f("ck_rewards_cost_positive")),
        sa.CheckConstraint(
            "per_member_limit IS NULL OR per_member_limit > 0",
            name=op.f("ck_rewards_limit_positive"),
        ),
        sa.CheckConstraint(
            "stock IS NULL OR stock >= 0", name=op.f("ck_rewards_stock_non_negative")
        ),
        sa.ForeignKeyConstraint(
            ["min_tier_id"], ["tiers.id"], name=op.f("fk_rewards_min_tier_id_tiers")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_rewards")),
    )
    op.create_table(
        "redemptions",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column(
            "reward_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column(
            "member_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column("points_spent", sa.BigInteger(), nullable=False),
        sa.Column("code", sa.String(length=128), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("channel", sa.String(length=16), nullable=False),
        sa.Column("created_at", loyalty.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("used_at", loyalty.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("cancelled_at", loyalty.db.UTCDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["member_id"], ["members.id"], name=op.f("fk_redemptions_member_id_members")
        ),
        sa.ForeignKeyConstraint(
            ["reward_id"], ["rewards.id"], name=op.f("fk_redemptions_reward_id_rewards")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_redemptions")),
        sa.UniqueConstraint("code", name=op.f("uq_redemptions_code")),
    )
    with op.batch_alter_table("redemptions", schema=None) as batch_op:
        batch_op.create_index("ix_redemptions_member_id_id", ["member_id", "id"], unique=False)
        batch_op.create_index(
            "ix_redemptions_member_id_reward_id", ["member_id", "reward_id"], unique=False
        )

    op.create_table(
        "reward_codes",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column(
            "reward_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column("code", sa.String(length=128), nullable=False),
        sa.Column(
            "redemption_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True
        ),
        sa.Column("created_at", loyalty.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["redemption_id"],
            ["redemptions.id"],
            name=op.f("fk_reward_codes_redemption_id_redemptions"),
        ),
        sa.ForeignKeyConstraint(
            ["reward_id"], ["rewards.id"], name=op.f("fk_reward_codes_reward_id_rewards")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_reward_codes")),
        sa.UniqueConstraint("code", name=op.f("uq_reward_codes_code")),
        sa.UniqueConstraint("redemption_id", name=op.f("uq_reward_codes_redemption_id")),
    )
    with op.batch_alter_table("reward_codes", schema=None) as batch_op:
        batch_op.create_index(
            "ix_reward_codes_reward_id_redemption_id", ["reward_id", "redemption_id"], unique=False
        )

    # In place on SQLite: a batch rebuild of the table would drop its append-only triggers.
    if op.get_bind().dialect.name == "sqlite":
        op.execute(
            "ALTER TABLE ledger_transactions ADD COLUMN redemption_id INTEGER "
            "CONSTRAINT fk_ledger_transactions_redemption_id_redemptions "
            "REFERENCES redemptions (id)"
        )
    else:
        op.add_column(
            "ledger_transactions",
            sa.Column(
                "redemption_id",
                sa.BigInteger(),
                sa.ForeignKey(
                    "redemptions.id",
                    name=op.f("fk_ledger_transactions_redemption_id_redemptions"),
                ),
                nullable=True,
            ),
        )
    op.create_index(
        op.f("ix_ledger_transactions_redemption_id"), "ledger_transactions", ["redemption_id"]
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_ledger_transactions_redemption_id"), "ledger_transactions")
    if op.get_bind().dialect.name == "sqlite":
        # SQLite 3.35+ drops a column in place, keeping the table's triggers.
        op.execute("ALTER TABLE ledger_transactions DROP COLUMN redemption_id")
    else:
        op.drop_constraint(
            op.f("fk_ledger_transactions_redemption_id_redemptions"),
            "ledger_transactions",
            type_="foreignkey",
        )
        op.drop_column("ledger_transactions", "redemption_id")

    with op.batch_alter_table("reward_codes", schema=None) as batch_op:
        batch_op.drop_index("ix_reward_codes_reward_id_redemption_id")

    op.drop_table("reward_codes")
    with op.batch_alter_table("redemptions", schema=None) as batch_op:
        batch_op.drop_index("ix_redemptions_member_id_reward_id")
        batch_op.drop_index("ix_redemptions_member_id_id")

    op.drop_table("redemptions")
    op.drop_table("rewards")
