"""tiers: retention, qualifying points, history

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-23 13:14:24.344360
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import loyalty.db

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "tier_changes",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column(
            "member_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column(
            "from_tier_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True
        ),
        sa.Column(
            "to_tier_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True
        ),
        sa.Column("from_name", sa.String(length=100), nullable=True),
        sa.Column("to_name", sa.String(length=100), nullable=True),
        sa.Column("reason", sa.String(length=16), nullable=False),
        sa.Column("qualifying_points", sa.BigInteger(), nullable=True),
        sa.Column("note", sa.String(length=500), nullable=True),
        sa.Column("at", loyalty.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["from_tier_id"],
            ["tiers.id"],
            name=op.f("fk_tier_changes_from_tier_id_tiers"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["member_id"], ["members.id"], name=op.f("fk_tier_changes_member_id_members")
        ),
        sa.ForeignKeyConstraint(
            ["to_tier_id"],
            ["tiers.id"],
            name=op.f("fk_tier_changes_to_tier_id_tiers"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_tier_changes")),
    )
    op.create_index("ix_tier_changes_member_id_id", "tier_changes", ["member_id", "id"])

    # Plain ADD COLUMNs: a batch rebuild on SQLite would drop the ledger's append-only triggers.
    op.add_column(
        "ledger_transactions",
        sa.Column("qualifying_points", sa.BigInteger(), server_default="0", nullable=False),
    )
    op.add_column(
        "ledger_transactions",
        sa.Column("qualifying_at", loyalty.db.UTCDateTime(timezone=True), nullable=True),
    )
    op.create_index(
        "ix_ledger_transactions_qualifying_at", "ledger_transactions", ["qualifying_at"]
    )
    _backfill_qualifying_points()
    op.add_column(
        "members", sa.Column("tier_since", loyalty.db.UTCDateTime(timezone=True), nullable=True)
    )
    op.add_column(
        "members",
        sa.Column("tier_retained_until", loyalty.db.UTCDateTime(timezone=True), nullable=True),
    )
    op.add_column(
        "tiers", sa.Column("retention_days", sa.Integer(), server_default="0", nullable=False)
    )


def downgrade() -> None:
    _drop_column("tiers", "retention_days")
    _drop_column("members", "tier_retained_until")
    _drop_column("members", "tier_since")
    op.drop_index("ix_ledger_transactions_qualifying_at", "ledger_transactions")
    _drop_column("ledger_transactions", "qualifying_at")
    _drop_column("ledger_transactions", "qualifying_points")
    op.drop_index("ix_tier_changes_member_id_id", "tier_changes")
    op.drop_table("tier_changes")


def _drop_column(table: str, column: str) -> None:
    """In place (SQLite 3.35+ too), keeping the table's triggers."""
    op.execute(f"ALTER TABLE {table} DROP COLUMN {column}")


def _backfill_qualifying_points() -> None:
    """Earlier purchase earnings qualify. The ledger refuses updates, so its guard is lifted
    for this one statement, inside the migration's transaction."""
    postgres = op.get_bind().dialect.name == "postgresql"
    if postgres:
        op.execute("ALTER TABLE ledger_transactions DISABLE TRIGGER ledger_transactions_no_update")
    else:
        op.execute("DROP TRIGGER ledger_transactions_no_update")
    op.execute(
        "UPDATE ledger_transactions SET qualifying_at = occurred_at, qualifying_points = ("
        "SELECT COALESCE(SUM(e.points), 0) FROM ledger_entries e "
        "WHERE e.transaction_id = ledger_transactions.id AND e.member_id IS NOT NULL) "
        "WHERE kind = 'EARN' AND purchase_id IS NOT NULL"
    )
    if postgres:
        op.execute("ALTER TABLE ledger_transactions ENABLE TRIGGER ledger_transactions_no_update")
    else:
        op.execute(
            "CREATE TRIGGER ledger_transactions_no_update BEFORE UPDATE ON ledger_transactions "
            "BEGIN SELECT RAISE(ABORT, 'the ledger is append-only: update on "
            "ledger_transactions refused'); END"
        )
