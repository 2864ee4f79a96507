"""programStats rollup (stats-rollup job) and the indexes that find what was booked since

Revision ID: 0017
Revises: 0016
Create Date: 2026-11-30 05:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import loyalty.db

revision: str = "0017"
down_revision: str | None = "0016"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# programStats reads the rows booked since the rollup's cutoff by created_at. On PostgreSQL the
# indexes are BRIN: almost nothing per insert, and created_at follows the insertion order.
BOOKED_INDEXES = (
    ("ix_purchases_created_at", "purchases"),
    ("ix_ledger_transactions_created_at", "ledger_transactions"),
)


def upgrade() -> None:
    op.create_table(
        "stats_rollup",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("time_zone", sa.String(64), nullable=False),
        sa.Column("cutoff", loyalty.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("refreshed_at", loyalty.db.UTCDateTime(timezone=True), nullable=False),
    )
    op.create_table(
        "stats_member_months",
        sa.Column("member_id", sa.BigInteger(), primary_key=True),
        sa.Column("month", sa.Integer(), primary_key=True),
        sa.Column("purchases", sa.Integer(), nullable=False),
        sa.Column("revenue", sa.Numeric(18, 4), nullable=False),
    )
    op.create_table(
        "stats_months",
        sa.Column("month", sa.Integer(), primary_key=True),
        sa.Column("prev_month", sa.Integer(), primary_key=True),
        sa.Column("next_month", sa.Integer(), primary_key=True),
        sa.Column("members", sa.BigInteger(), nullable=False),
        sa.Column("singles", sa.BigInteger(), nullable=False),
        sa.Column("purchases", sa.BigInteger(), nullable=False),
        sa.Column("revenue", sa.Numeric(20, 4), nullable=False),
    )
    op.create_table(
        "stats_days",
        sa.Column("day", sa.Integer(), primary_key=True),
        sa.Column("purchases", sa.BigInteger(), nullable=False),
        sa.Column("revenue", sa.Numeric(20, 4), nullable=False),
        sa.Column("issued", sa.BigInteger(), nullable=False),
        sa.Column("redeemed", sa.BigInteger(), nullable=False),
        sa.Column("expired", sa.BigInteger(), nullable=False),
        sa.Column("booked", sa.BigInteger(), nullable=False),
    )
    for name, table in BOOKED_INDEXES:
        op.create_index(name, table, ["created_at"], postgresql_using="brin")


def downgrade() -> None:
    for name, table in BOOKED_INDEXES:
        op.drop_index(name, table_name=table)
    for table in ("stats_days", "stats_months", "stats_member_months", "stats_rollup"):
        op.drop_table(table)
