"""foundation: program, members, ledger, purchases, auth

Revision ID: 0001
Revises:
Create Date: 2026-11-23 12:54:50.139422
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import loyalty.db

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "api_keys",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("role", sa.String(length=16), nullable=False),
        sa.Column("prefix", sa.String(length=16), nullable=False),
        sa.Column("secret_hash", sa.String(length=64), nullable=False),
        sa.Column("created_at", loyalty.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("last_used_at", loyalty.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("revoked_at", loyalty.db.UTCDateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_api_keys")),
        sa.UniqueConstraint("secret_hash", name=op.f("uq_api_keys_secret_hash")),
    )
    op.create_table(
        "idempotency_keys",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("scope", sa.String(length=64), nullable=False),
        sa.Column("key", sa.String(length=255), nullable=False),
        sa.Column("operation", sa.String(length=64), nullable=False),
        sa.Column("request_hash", sa.String(length=64), nullable=False),
        sa.Column("result", sa.JSON(), nullable=True),
        sa.Column("created_at", loyalty.db.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_idempotency_keys")),
        sa.UniqueConstraint("scope", "key", name="uq_idempotency_keys_scope_key"),
    )
    op.create_table(
        "instance_secrets",
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("value", sa.String(length=200), nullable=False),
        sa.Column("created_at", loyalty.db.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_instance_secrets")),
    )
    op.create_table(
        "program",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("points_per_unit", sa.Numeric(precision=12, scale=4), nullable=False),
        sa.Column("pending_days", sa.Integer(), nullable=False),
        sa.Column("points_expire_after_days", sa.Integer(), nullable=True),
        sa.Column("tier_window_days", sa.Integer(), nullable=False),
        sa.Column("updated_at", loyalty.db.UTCDateTime(timezone=True), nullable=False),
        sa.CheckConstraint("id = 1", name=op.f("ck_program_single_row")),
        sa.CheckConstraint("pending_days >= 0", name=op.f("ck_program_pending_days_non_negative")),
        sa.CheckConstraint(
            "points_per_unit >= 0", name=op.f("ck_program_points_per_unit_non_negative")
        ),
        sa.CheckConstraint(
            "tier_window_days > 0", name=op.f("ck_program_tier_window_days_positive")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_program")),
    )
    op.create_table(
        "tiers",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("rank", sa.Integer(), nullable=False),
        sa.Column("threshold", sa.Integer(), nullable=False),
        sa.Column("multiplier", sa.Numeric(precision=8, scale=4), nullable=False),
        sa.Column("benefits", sa.JSON(), nullable=False),
        sa.Column("created_at", loyalty.db.UTCDateTime(timezone=True), nullable=False),
        sa.CheckConstraint("multiplier >= 1", name=op.f("ck_tiers_multiplier_at_least_one")),
        sa.CheckConstraint("threshold >= 0", name=op.f("ck_tiers_threshold_non_negative")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_tiers")),
        sa.UniqueConstraint("rank", name=op.f("uq_tiers_rank")),
    )
    op.create_table(
        "members",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("external_id", sa.String(length=128), nullable=False),
        sa.Column("email", sa.String(length=254), nullable=True),
        sa.Column("phone", sa.String(length=32), nullable=True),
        sa.Column("first_name", sa.String(length=100), nullable=True),
        sa.Column("last_name", sa.String(length=100), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("enrollment_channel", sa.String(length=16), nullable=True),
        sa.Column("enrolled_at", loyalty.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", loyalty.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("tier_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True),
        sa.Column("points_available", sa.BigInteger(), nullable=False),
        sa.Column("points_pending", sa.BigInteger(), nullable=False),
        sa.Column("lifetime_earned", sa.BigInteger(), nullable=False),
        sa.Column("points_redeemed", sa.BigInteger(), nullable=False),
        sa.Column("points_expired", sa.BigInteger(), nullable=False),
        sa.CheckConstraint(
            "lifetime_earned >= 0", name=op.f("ck_members_lifetime_earned_non_negative")
        ),
        sa.CheckConstraint("points_available >= 0", name=op.f("ck_members_available_non_negative")),
        sa.CheckConstraint("points_expired >= 0", name=op.f("ck_members_expired_non_negative")),
        sa.CheckConstraint("points_pending >= 0", name=op.f("ck_members_pending_non_negative")),
        sa.CheckConstraint("points_redeemed >= 0", name=op.f("ck_members_redeemed_non_negative")),
        sa.ForeignKeyConstraint(["tier_id"], ["tiers.id"], name=op.f("fk_members_tier_id_tiers")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_members")),
        sa.UniqueConstraint("external_id", name=op.f("uq_members_external_id")),
    )
    with op.batch_alter_table("members", schema=None) as batch_op:
        batch_op.create_index("ix_members_email", ["email"], unique=False)
        batch_op.create_index("ix_members_phone", ["phone"], unique=False)
        batch_op.create_index(batch_op.f("ix_members_tier_id"), ["tier_id"], unique=False)

    op.create_table(
        "purchases",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("order_id", sa.String(length=128), nullable=False),
        sa.Column(
            "member_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column("channel", sa.String(length=16), nullable=False),
        sa.Column("store_id", sa.String(length=64), nullable=True),
        sa.Column("total_amount", sa.Numeric(precision=18, scale=4), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("lines", sa.JSON(), nullable=False),
        sa.Column("occurred_at", loyalty.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("created_at", loyalty.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("points_awarded", sa.BigInteger(), nullable=False),
        sa.Column("points_refunded", sa.BigInteger(), nullable=False),
        sa.Column("status", sa.String(length=24), nullable=False),
        sa.ForeignKeyConstraint(
            ["member_id"], ["members.id"], name=op.f("fk_purchases_member_id_members")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_purchases")),
        sa.UniqueConstraint("order_id", name=op.f("uq_purchases_order_id")),
    )
    with op.batch_alter_table("purchases", schema=None) as batch_op:
        batch_op.create_index("ix_purchases_member_id_id", ["member_id", "id"], unique=False)

    op.create_table(
        "ledger_transactions",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("kind", sa.String(length=24), nullable=False),
        sa.Column(
            "member_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column("occurred_at", loyalty.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("created_at", loyalty.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("reason", sa.String(length=500), nullable=True),
        sa.Column(
            "purchase_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True
        ),
        sa.ForeignKeyConstraint(
            ["member_id"], ["members.id"], name=op.f("fk_ledger_transactions_member_id_members")
        ),
        sa.ForeignKeyConstraint(
            ["purchase_id"],
            ["purchases.id"],
            name=op.f("fk_ledger_transactions_purchase_id_purchases"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ledger_transactions")),
    )
    with op.batch_alter_table("ledger_transactions", schema=None) as batch_op:
        batch_op.create_index(
            "ix_ledger_transactions_member_id_id", ["member_id", "id"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_ledger_transactions_purchase_id"), ["purchase_id"], unique=False
        )

    op.create_table(
        "ledger_entries",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column(
            "transaction_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column("account", sa.String(length=32), nullable=False),
        sa.Column("member_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True),
        sa.Column("points", sa.BigInteger(), nullable=False),
        sa.Column("balance_after", sa.BigInteger(), nullable=True),
        sa.ForeignKeyConstraint(
            ["member_id"], ["members.id"], name=op.f("fk_ledger_entries_member_id_members")
        ),
        sa.ForeignKeyConstraint(
            ["transaction_id"],
            ["ledger_transactions.id"],
            name=op.f("fk_ledger_entries_transaction_id_ledger_transactions"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ledger_entries")),
    )
    with op.batch_alter_table("ledger_entries", schema=None) as batch_op:
        batch_op.create_index("ix_ledger_entries_member_id_id", ["member_id", "id"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_ledger_entries_transaction_id"), ["transaction_id"], unique=False
        )

    _create_append_only_guards()
    op.bulk_insert(
        sa.table(
            "program",
            sa.column("id", sa.Integer),
            sa.column("name", sa.String),
            sa.column("currency", sa.String),
            sa.column("points_per_unit", sa.Numeric),
            sa.column("pending_days", sa.Integer),
            sa.column("tier_window_days", sa.Integer),
            sa.column("updated_at", loyalty.db.UTCDateTime),
        ),
        [
            {
                "id": 1,
                "name": "Loyalty",
                "currency": "USD",
                "points_per_unit": 1,
                "pending_days": 0,
                "tier_window_days": 365,
                "updated_at": loyalty.db.utcnow(),
            }
        ],
    )


def downgrade() -> None:
    _drop_append_only_guards()
    with op.batch_alter_table("ledger_entries", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_ledger_entries_transaction_id"))
        batch_op.drop_index("ix_ledger_entries_member_id_id")

    op.drop_table("ledger_entries")
    with op.batch_alter_table("ledger_transactions", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_ledger_transactions_purchase_id"))
        batch_op.drop_index("ix_ledger_transactions_member_id_id")

    op.drop_table("ledger_transactions")
    with op.batch_alter_table("purchases", schema=None) as batch_op:
        batch_op.drop_index("ix_purchases_member_id_id")

    op.drop_table("purchases")
    with op.batch_alter_table("members", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_members_tier_id"))
        batch_op.drop_index("ix_members_phone")
        batch_op.drop_index("ix_members_email")

    op.drop_table("members")
    op.drop_table("tiers")
    op.drop_table("program")
    op.drop_table("instance_secrets")
    op.drop_table("idempotency_keys")
    op.drop_table("api_keys")


LEDGER_TABLES = ("ledger_transactions", "ledger_entries")


def _create_append_only_guards() -> None:
    """Triggers that refuse UPDATE and DELETE on the ledger: corrections are new entries."""
    if op.get_bind().dialect.name == "postgresql":
        op.execute(
            "CREATE FUNCTION ledger_append_only() RETURNS trigger LANGUAGE plpgsql AS $$ "
            "BEGIN RAISE EXCEPTION 'the ledger is append-only: % on % refused', "
            "TG_OP, TG_TABLE_NAME; END $$"
        )
        for table in LEDGER_TABLES:
            for action in ("update", "delete"):
                op.execute(
                    f"CREATE TRIGGER {table}_no_{action} BEFORE {action.upper()} ON {table} "
                    "FOR EACH ROW EXECUTE FUNCTION ledger_append_only()"
                )
        return
    for table in LEDGER_TABLES:
        for action in ("update", "delete"):
            op.execute(
                f"CREATE TRIGGER {table}_no_{action} BEFORE {action.upper()} ON {table} "
                f"BEGIN SELECT RAISE(ABORT, 'the ledger is append-only: {action} on {table} "
                "refused'); END"
            )


def _drop_append_only_guards() -> None:
    postgres = op.get_bind().dialect.name == "postgresql"
    for table in LEDGER_TABLES:
        for action in ("update", "delete"):
            op.execute(
                f"DROP TRIGGER IF EXISTS {table}_no_{action}" + (f" ON {table}" if postgres else "")
            )
    if postgres:
        op.execute("DROP FUNCTION IF EXISTS ledger_append_only()")
