"""points.expiring warnings and the retention of closed members and webhook deliveries

Revision ID: 0015
Revises: 0014
Create Date: 2026-11-30 04:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import loyalty.db

revision: str = "0015"
down_revision: str | None = "0014"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _where(condition: str) -> dict[str, sa.TextClause]:
    return {"postgresql_where": sa.text(condition), "sqlite_where": sa.text(condition)}


def upgrade() -> None:
    op.add_column(
        "program",
        sa.Column("expiry_warning_days", sa.Integer(), nullable=False, server_default="30"),
    )
    op.add_column("program", sa.Column("closed_member_retention_days", sa.Integer()))
    op.add_column("point_lots", sa.Column("warned_at", loyalty.db.UTCDateTime(timezone=True)))
    op.add_column("members", sa.Column("closed_at", loyalty.db.UTCDateTime(timezone=True)))
    # Members closed before this revision: their last change is the best guess of when.
    op.execute("UPDATE members SET closed_at = updated_at WHERE status = 'CLOSED'")
    op.create_index("ix_members_closed_at", "members", ["closed_at"], **_where("status = 'CLOSED'"))
    # The retention job finds old delivered deliveries and old events by time, and deleting an
    # event checks that no delivery still names it (the foreign key needs its own index).
    op.create_index("ix_webhook_deliveries_event_id", "webhook_deliveries", ["event_id"])
    op.create_index(
        "ix_webhook_deliveries_delivered",
        "webhook_deliveries",
        ["created_at"],
        **_where("status = 'DELIVERED'"),
    )
    op.create_index("ix_events_created_at", "events", ["created_at"])


def downgrade() -> None:
    op.drop_index("ix_events_created_at", table_name="events")
    op.drop_index("ix_webhook_deliveries_delivered", table_name="webhook_deliveries")
    op.drop_index("ix_webhook_deliveries_event_id", table_name="webhook_deliveries")
    op.drop_index("ix_members_closed_at", table_name="members")
    for table, column in (
        ("members", "closed_at"),
        ("point_lots", "warned_at"),
        ("program", "closed_member_retention_days"),
        ("program", "expiry_warning_days"),
    ):
        # In place (SQLite 3.35+ too), keeping the tables' triggers and constraints.
        op.execute(f"ALTER TABLE {table} DROP COLUMN {column}")
