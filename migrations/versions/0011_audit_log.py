"""audit log: who changed what, when, under which request (append-only)

Revision ID: 0011
Revises: 0008
Create Date: 2026-11-30 00:50:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import loyalty.db

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

ACTIONS = ("update", "delete")


def upgrade() -> None:
    op.create_table(
        "audit_log",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("occurred_at", loyalty.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("actor_kind", sa.String(length=16), nullable=False),
        sa.Column("actor_role", sa.String(length=16), nullable=True),
        sa.Column("actor_key_id", sa.BigInteger(), nullable=True),
        sa.Column("actor_name", sa.String(length=100), nullable=True),
        sa.Column("member_id", sa.BigInteger(), nullable=True),
        sa.Column("operation", sa.String(length=64), nullable=False),
        sa.Column("target_ids", sa.JSON(), nullable=False),
        sa.Column("summary", sa.JSON(), nullable=False),
        sa.Column("request_id", sa.String(length=128), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_log")),
    )
    with op.batch_alter_table("audit_log", schema=None) as batch_op:
        batch_op.create_index("ix_audit_log_member_id_id", ["member_id", "id"], unique=False)
        batch_op.create_index("ix_audit_log_actor_key_id_id", ["actor_key_id", "id"], unique=False)
        batch_op.create_index("ix_audit_log_operation_id", ["operation", "id"], unique=False)
    _create_append_only_guards()


def downgrade() -> None:
    _drop_append_only_guards()
    with op.batch_alter_table("audit_log", schema=None) as batch_op:
        batch_op.drop_index("ix_audit_log_operation_id")
        batch_op.drop_index("ix_audit_log_actor_key_id_id")
        batch_op.drop_index("ix_audit_log_member_id_id")
    op.drop_table("audit_log")


def _create_append_only_guards() -> None:
    """Triggers that refuse UPDATE and DELETE: an audit entry, once written, stays as written."""
    if op.get_bind().dialect.name == "postgresql":
        op.execute(
            "CREATE FUNCTION audit_log_append_only() RETURNS trigger LANGUAGE plpgsql AS $$ "
            "BEGIN RAISE EXCEPTION 'the audit log is append-only: % on % refused', "
            "TG_OP, TG_TABLE_NAME; END $$"
        )
        for action in ACTIONS:
            op.execute(
                f"CREATE TRIGGER audit_log_no_{action} BEFORE {action.upper()} ON audit_log "
                "FOR EACH ROW EXECUTE FUNCTION audit_log_append_only()"
            )
        return
    for action in ACTIONS:
        op.execute(
            f"CREATE TRIGGER audit_log_no_{action} BEFORE {action.upper()} ON audit_log "
            f"BEGIN SELECT RAISE(ABORT, 'the audit log is append-only: {action} on audit_log "
            "refused'); END"
        )


def _drop_append_only_guards() -> None:
    postgres = op.get_bind().dialect.name == "postgresql"
    for action in ACTIONS:
        op.execute(
            f"DROP TRIGGER IF EXISTS audit_log_no_{action}" + (" ON audit_log" if postgres else "")
        )
    if postgres:
        op.execute("DROP FUNCTION IF EXISTS audit_log_append_only()")
