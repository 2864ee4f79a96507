"""feedback (NPS and CSAT) and refunds as recorded, for programStats

Revision ID: 0012
Revises: 0011
Create Date: 2026-11-30 01:45:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import loyalty.db

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def _where(condition: str) -> dict[str, sa.TextClause]:
    return {"postgresql_where": sa.text(condition), "sqlite_where": sa.text(condition)}


def upgrade() -> None:
    op.create_table(
        "feedback",
        sa.Column("id", ID, nullable=False),
        sa.Column("member_id", ID, nullable=False),
        sa.Column("kind", sa.String(length=8), nullable=False),
        sa.Column("score", sa.Integer(), nullable=False),
        sa.Column("comment", sa.String(length=2000), nullable=True),
        sa.Column("purchase_id", ID, nullable=True),
        sa.Column("local_day", sa.Date(), nullable=False),
        sa.Column("created_at", loyalty.db.UTCDateTime(timezone=True), nullable=False),
        sa.CheckConstraint("score >= 0 AND score <= 10", name=op.f("ck_feedback_score_in_range")),
        sa.ForeignKeyConstraint(
            ["member_id"], ["members.id"], name=op.f("fk_feedback_member_id_members")
        ),
        sa.ForeignKeyConstraint(
            ["purchase_id"], ["purchases.id"], name=op.f("fk_feedback_purchase_id_purchases")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_feedback")),
    )
    op.create_index("ix_feedback_member_id_id", "feedback", ["member_id", "id"])
    op.create_index("ix_feedback_created_at", "feedback", ["created_at"])
    op.create_index(
        "uq_feedback_member_kind_purchase",
        "feedback",
        ["member_id", "kind", "purchase_id"],
        unique=True,
        **_where("purchase_id IS NOT NULL"),
    )
    op.create_index(
        "uq_feedback_member_kind_day",
        "feedback",
        ["member_id", "kind", "local_day"],
        unique=True,
        **_where("purchase_id IS NULL"),
    )
    op.create_table(
        "purchase_refunds",
        sa.Column("id", ID, nullable=False),
        sa.Column("purchase_id", ID, nullable=False),
        sa.Column("amount", sa.Numeric(precision=18, scale=4), nullable=False),
        sa.Column("created_at", loyalty.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["purchase_id"],
            ["purchases.id"],
            name=op.f("fk_purchase_refunds_purchase_id_purchases"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_purchase_refunds")),
    )
    op.create_index("ix_purchase_refunds_created_at", "purchase_refunds", ["created_at"])
    op.create_index("ix_purchase_refunds_purchase_id", "purchase_refunds", ["purchase_id"])
    # Refunds recorded before this revision kept only their running total: each purchase's
    # total is dated at its last clawback (or, when none took points, at its recording).
    op.execute(
        "INSERT INTO purchase_refunds (purchase_id, amount, created_at) "
        "SELECT p.id, p.refunded_amount, COALESCE(("
        "SELECT MAX(t.created_at) FROM ledger_transactions t "
        "WHERE t.purchase_id = p.id AND t.kind = 'REFUND_CLAWBACK'), p.created_at) "
        "FROM purchases p WHERE p.refunded_amount > 0"
    )


def downgrade() -> None:
    op.drop_index("ix_purchase_refunds_purchase_id", "purchase_refunds")
    op.drop_index("ix_purchase_refunds_created_at", "purchase_refunds")
    op.drop_table("purchase_refunds")
    op.drop_index("uq_feedback_member_kind_day", "feedback")
    op.drop_index("uq_feedback_member_kind_purchase", "feedback")
    op.drop_index("ix_feedback_created_at", "feedback")
    op.drop_index("ix_feedback_member_id_id", "feedback")
    op.drop_table("feedback")
