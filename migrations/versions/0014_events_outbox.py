"""events outbox, webhooks and webhook deliveries

Revision ID: 0014
Revises: 0013
Create Date: 2026-11-30 01:50:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import loyalty.db

revision: str = "0014"
down_revision: str | None = "0013"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

PK = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
GLOBAL_ID = (
    "CREATE OR REPLACE FUNCTION loyalty_global_id(text, bigint) RETURNS text "
    "LANGUAGE sql IMMUTABLE STRICT AS $$ SELECT rtrim(translate(encode(convert_to("
    "$1 || ':' || $2, 'UTF8'), 'base64'), E'+/\\n', '-_'), '=') $$"
)
"""loyalty.ids.encode_id in SQL, for the jobs' set-based events (SQLite registers it in
Python on each connection)."""


def _where(condition: str) -> dict[str, sa.TextClause]:
    return {"postgresql_where": sa.text(condition), "sqlite_where": sa.text(condition)}


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(GLOBAL_ID)
    op.create_table(
        "events",
        sa.Column("id", PK, nullable=False),
        sa.Column("event_id", sa.String(length=36), nullable=False),
        sa.Column("type", sa.String(length=64), nullable=False),
        sa.Column("occurred_at", loyalty.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("member_id", sa.BigInteger(), nullable=True),
        sa.Column("data", sa.JSON(), nullable=False),
        sa.Column("created_at", loyalty.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("dispatched_at", loyalty.db.UTCDateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_events")),
        sa.UniqueConstraint("event_id", name=op.f("uq_events_event_id")),
    )
    op.create_index("ix_events_member_id_id", "events", ["member_id", "id"])
    op.create_index("ix_events_undispatched", "events", ["id"], **_where("dispatched_at IS NULL"))
    op.create_table(
        "webhooks",
        sa.Column("id", PK, nullable=False),
        sa.Column("url", sa.String(length=2048), nullable=False),
        sa.Column("events", sa.JSON(), nullable=False),
        sa.Column("description", sa.String(length=500), nullable=True),
        sa.Column("secret", sa.String(length=100), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("disabled_reason", sa.String(length=500), nullable=True),
        sa.Column("failing_since", loyalty.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("created_at", loyalty.db.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_webhooks")),
    )
    op.create_table(
        "webhook_deliveries",
        sa.Column("id", PK, nullable=False),
        sa.Column("webhook_id", PK, nullable=False),
        sa.Column("event_id", PK, nullable=False),
        sa.Column("member_id", sa.BigInteger(), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", loyalty.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("last_attempt_at", loyalty.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("response_status", sa.Integer(), nullable=True),
        sa.Column("response_body", sa.String(length=1024), nullable=True),
        sa.Column("last_error", sa.String(length=500), nullable=True),
        sa.Column("created_at", loyalty.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["webhook_id"],
            ["webhooks.id"],
            name=op.f("fk_webhook_deliveries_webhook_id_webhooks"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["event_id"], ["events.id"], name=op.f("fk_webhook_deliveries_event_id_events")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_webhook_deliveries")),
    )
    op.create_index(
        "ix_webhook_deliveries_webhook_id_id", "webhook_deliveries", ["webhook_id", "id"]
    )
    # The claim walks pending deliveries in event order (this index) and checks each is its
    # member's oldest pending one (the next); with either missing, a fresh table's planner
    # falls back to a quadratic anti-join.
    op.create_index(
        "ix_webhook_deliveries_pending",
        "webhook_deliveries",
        ["event_id"],
        **_where("status = 'PENDING'"),
    )
    op.create_index(
        "ix_webhook_deliveries_order",
        "webhook_deliveries",
        ["webhook_id", "member_id", "event_id"],
        **_where("status = 'PENDING'"),
    )


def downgrade() -> None:
    op.drop_index("ix_webhook_deliveries_order", table_name="webhook_deliveries")
    op.drop_index("ix_webhook_deliveries_pending", table_name="webhook_deliveries")
    op.drop_index("ix_webhook_deliveries_webhook_id_id", table_name="webhook_deliveries")
    op.drop_table("webhook_deliveries")
    op.drop_table("webhooks")
    op.drop_index("ix_events_undispatched", table_name="events")
    op.drop_index("ix_events_member_id_id", table_name="events")
    op.drop_table("events")
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP FUNCTION IF EXISTS loyalty_global_id(text, bigint)")
