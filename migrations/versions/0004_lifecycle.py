"""points lifecycle: lots, consumptions, refunds

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-23 13:29:04.644727
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import loyalty.db

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "point_lots",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column(
            "member_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column(
            "transaction_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True
        ),
        sa.Column(
            "purchase_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True
        ),
        sa.Column("amount", sa.BigInteger(), nullable=False),
        sa.Column("remaining", sa.BigInteger(), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("earned_at", loyalty.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("releases_at", loyalty.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("expires_at", loyalty.db.UTCDateTime(timezone=True), nullable=True),
        sa.CheckConstraint(
            "remaining >= 0 AND remaining <= amount",
            name=op.f("ck_point_lots_remaining_within_amount"),
        ),
        sa.ForeignKeyConstraint(
            ["member_id"], ["members.id"], name=op.f("fk_point_lots_member_id_members")
        ),
        sa.ForeignKeyConstraint(
            ["purchase_id"], ["purchases.id"], name=op.f("fk_point_lots_purchase_id_purchases")
        ),
        sa.ForeignKeyConstraint(
            ["transaction_id"],
            ["ledger_transactions.id"],
            name=op.f("fk_point_lots_transaction_id_ledger_transactions"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_point_lots")),
    )
    with op.batch_alter_table("point_lots", schema=None) as batch_op:
        batch_op.create_index("ix_point_lots_expires_at", ["expires_at"], unique=False)
        batch_op.create_index(
            "ix_point_lots_member_id_state_earned_at",
            ["member_id", "state", "earned_at", "id"],
            unique=False,
        )
        batch_op.create_index("ix_point_lots_purchase_id", ["purchase_id"], unique=False)
        batch_op.create_index("ix_point_lots_releases_at", ["releases_at"], unique=False)

    op.create_table(
        "lot_consumptions",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("lot_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column(
            "transaction_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column("amount", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["lot_id"], ["point_lots.id"], name=op.f("fk_lot_consumptions_lot_id_point_lots")
        ),
        sa.ForeignKeyConstraint(
            ["transaction_id"],
            ["ledger_transactions.id"],
            name=op.f("fk_lot_consumptions_transaction_id_ledger_transactions"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_lot_consumptions")),
    )
    with op.batch_alter_table("lot_consumptions", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_lot_consumptions_lot_id"), ["lot_id"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_lot_consumptions_transaction_id"), ["transaction_id"], unique=False
        )

    with op.batch_alter_table("purchases", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("points_unrecovered", sa.BigInteger(), server_default="0", nullable=False)
        )
        batch_op.add_column(
            sa.Column(
                "refunded_amount",
                sa.Numeric(precision=18, scale=4),
                server_default="0",
                nullable=False,
            )
        )
    _backfill_lots()


def downgrade() -> None:
    op.execute("ALTER TABLE purchases DROP COLUMN refunded_amount")
    op.execute("ALTER TABLE purchases DROP COLUMN points_unrecovered")
    op.drop_index(op.f("ix_lot_consumptions_transaction_id"), "lot_consumptions")
    op.drop_index(op.f("ix_lot_consumptions_lot_id"), "lot_consumptions")
    op.drop_table("lot_consumptions")
    for index in (
        "ix_point_lots_releases_at",
        "ix_point_lots_purchase_id",
        "ix_point_lots_member_id_state_earned_at",
        "ix_point_lots_expires_at",
    ):
        op.drop_index(index, "point_lots")
    op.drop_table("point_lots")


def _backfill_lots() -> None:
    """Balances from before lots existed. Available points become one lot per member that
    never expires. Pending points (only purchases made them before this revision) become one
    lot per purchase, releasing when the purchase's pending period ends, so a refund still
    takes them from the purchase and the release job honours the return window."""
    op.execute(
        "INSERT INTO point_lots (member_id, amount, remaining, state, earned_at, expires_at) "
        "SELECT id, points_available, points_available, 'AVAILABLE', CURRENT_TIMESTAMP, NULL "
        "FROM members WHERE points_available > 0"
    )
    if op.get_bind().dialect.name == "postgresql":
        releases_at = "t.occurred_at + p.pending_days * interval '1 day'"
    else:
        releases_at = "datetime(t.occurred_at, '+' || p.pending_days || ' days')"
    op.execute(
        "INSERT INTO point_lots (member_id, transaction_id, purchase_id, amount, remaining, "
        "state, earned_at, releases_at) "
        f"SELECT t.member_id, t.id, t.purchase_id, e.points, e.points, 'PENDING', "
        f"t.occurred_at, {releases_at} "
        "FROM ledger_transactions t "
        "JOIN ledger_entries e ON e.transaction_id = t.id AND e.account = 'MEMBER_PENDING' "
        "CROSS JOIN program p "
        "WHERE t.kind = 'EARN' AND e.points > 0"
    )
