"""qualifying points index: member, instant and points, for index-only window sums

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-23 14:10:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index(
        "ix_ledger_transactions_member_id_qualifying_at",
        "ledger_transactions",
        ["member_id", "qualifying_at", "qualifying_points"],
    )
    op.drop_index("ix_ledger_transactions_qualifying_at", "ledger_transactions")


def downgrade() -> None:
    op.create_index(
        "ix_ledger_transactions_qualifying_at", "ledger_transactions", ["qualifying_at"]
    )
    op.drop_index("ix_ledger_transactions_member_id_qualifying_at", "ledger_transactions")
