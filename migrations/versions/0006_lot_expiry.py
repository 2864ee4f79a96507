"""lots record what expired on themselves; fewer lot indexes; room for in-place updates

Expiry no longer writes one consumption row per lot: the job sets ``expired`` and
``remaining`` in one update. The single-column lot indexes on ``releases_at`` and
``expires_at`` served no query (the jobs walk members by id range). On PostgreSQL the lots
table keeps free space in its pages so those updates can stay on the page (HOT).

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-23 14:25:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

EXPIRY_CONSUMPTIONS = (
    "SELECT c.lot_id, c.amount FROM lot_consumptions c "
    "JOIN ledger_transactions t ON t.id = c.transaction_id AND t.kind = 'EXPIRE'"
)


def upgrade() -> None:
    op.add_column(
        "point_lots", sa.Column("expired", sa.BigInteger(), server_default="0", nullable=False)
    )
    op.execute(
        "UPDATE point_lots SET expired = (SELECT COALESCE(SUM(e.amount), 0) FROM "
        f"({EXPIRY_CONSUMPTIONS}) e WHERE e.lot_id = point_lots.id)"
    )
    op.execute(
        "DELETE FROM lot_consumptions WHERE transaction_id IN "
        "(SELECT id FROM ledger_transactions WHERE kind = 'EXPIRE')"
    )
    op.drop_index("ix_point_lots_releases_at", "point_lots")
    op.drop_index("ix_point_lots_expires_at", "point_lots")
    if op.get_bind().dialect.name == "postgresql":
        op.execute("ALTER TABLE point_lots SET (fillfactor = 80)")


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("ALTER TABLE point_lots RESET (fillfactor)")
    op.create_index("ix_point_lots_expires_at", "point_lots", ["expires_at"])
    op.create_index("ix_point_lots_releases_at", "point_lots", ["releases_at"])
    op.execute(
        "INSERT INTO lot_consumptions (lot_id, transaction_id, amount) "
        "SELECT l.id, (SELECT MAX(t.id) FROM ledger_transactions t "
        "WHERE t.member_id = l.member_id AND t.kind = 'EXPIRE'), l.expired "
        "FROM point_lots l WHERE l.expired > 0"
    )
    op.execute("ALTER TABLE point_lots DROP COLUMN expired")
