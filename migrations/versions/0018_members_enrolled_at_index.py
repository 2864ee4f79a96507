"""An index on members.enrolled_at: programStats counts a range's new members without a scan

Revision ID: 0018
Revises: 0017
Create Date: 2026-11-30 06:05:00.000000
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0018"
down_revision: str | None = "0017"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index("ix_members_enrolled_at", "members", ["enrolled_at"])


def downgrade() -> None:
    op.drop_index("ix_members_enrolled_at", table_name="members")
