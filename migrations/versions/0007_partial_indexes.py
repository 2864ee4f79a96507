"""partial indexes on ledger transactions: the jobs' rows stay out of them

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-23 14:35:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

INDEXES = (
    (
        "ix_ledger_transactions_member_id_qualifying_at",
        ["member_id", "qualifying_at", "qualifying_points"],
        "qualifying_at",
    ),
    ("ix_ledger_transactions_purchase_id", ["purchase_id"], "purchase_id"),
    ("ix_ledger_transactions_redemption_id", ["redemption_id"], "redemption_id"),
)


def upgrade() -> None:
    for name, columns, column in INDEXES:
        op.drop_index(name, "ledger_transactions")
        where = sa.text(f"{column} IS NOT NULL")
        op.create_index(
            name, "ledger_transactions", columns, postgresql_where=where, sqlite_where=where
        )


def downgrade() -> None:
    for name, columns, _ in INDEXES:
        op.drop_index(name, "ledger_transactions")
        op.create_index(name, "ledger_transactions", columns)
