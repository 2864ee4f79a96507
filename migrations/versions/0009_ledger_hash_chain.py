"""ledger hash chain

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-30 00:55:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import loyalty.db
from loyalty.ledger import chain

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BATCH = 10_000
TRANSACTIONS = sa.table(
    "ledger_transactions",
    sa.column("id", sa.BigInteger()),
    sa.column("kind", sa.String()),
    sa.column("member_id", sa.BigInteger()),
    sa.column("occurred_at", loyalty.db.UTCDateTime()),
    sa.column("created_at", loyalty.db.UTCDateTime()),
    sa.column("reason", sa.String()),
    sa.column("purchase_id", sa.BigInteger()),
    sa.column("redemption_id", sa.BigInteger()),
    sa.column("qualifying_points", sa.BigInteger()),
    sa.column("qualifying_at", loyalty.db.UTCDateTime()),
    sa.column("prev_hash", sa.String()),
    sa.column("hash", sa.String()),
)
ENTRIES = sa.table(
    "ledger_entries",
    sa.column("transaction_id", sa.BigInteger()),
    sa.column("account", sa.String()),
    sa.column("points", sa.BigInteger()),
)
NO_UPDATE = "ledger_transactions_no_update"


def upgrade() -> None:
    op.add_column("ledger_transactions", sa.Column("prev_hash", sa.String(64), nullable=True))
    op.add_column("ledger_transactions", sa.Column("hash", sa.String(64), nullable=True))
    postgres = op.get_bind().dialect.name == "postgresql"
    if postgres:
        op.execute(chain.POSTGRES_FUNCTION)
        op.execute(f"ALTER TABLE ledger_transactions DISABLE TRIGGER {NO_UPDATE}")
    else:
        op.execute(f"DROP TRIGGER {NO_UPDATE}")
    _backfill()
    if postgres:
        op.execute(f"ALTER TABLE ledger_transactions ENABLE TRIGGER {NO_UPDATE}")
    else:
        op.execute(
            f"CREATE TRIGGER {NO_UPDATE} BEFORE UPDATE ON ledger_transactions "
            "BEGIN SELECT RAISE(ABORT, 'the ledger is append-only: update on "
            "ledger_transactions refused'); END"
        )


def _backfill() -> None:
    """Chain the existing transactions, member by member in id order, in batches (inside the
    migration's transaction, with the update guard lifted for it)."""
    connection = op.get_bind()
    update = (
        sa.update(TRANSACTIONS)
        .where(TRANSACTIONS.c.id == sa.bindparam("tid"))
        .values(prev_hash=sa.bindparam("p"), hash=sa.bindparam("h"))
    )
    after = (0, 0)
    member, head = None, None
    while True:
        rows = connection.execute(
            chain.chain_rows(TRANSACTIONS, ENTRIES, after=after, limit=BATCH)
        ).all()
        if not rows:
            return
        changes = []
        for row in rows:
            if row.member_id != member:
                member, head = row.member_id, None
            digest = chain.row_hash(row, prev_hash=head)
            changes.append({"tid": row.id, "p": head, "h": digest})
            head = digest
        connection.execute(update, changes)
        after = (rows[-1].member_id, rows[-1].id)


def downgrade() -> None:
    op.execute("ALTER TABLE ledger_transactions DROP COLUMN hash")
    op.execute("ALTER TABLE ledger_transactions DROP COLUMN prev_hash")
    if op.get_bind().dialect.name == "postgresql":
        op.execute(f"DROP FUNCTION IF EXISTS {chain.SQL_FUNCTION}(text)")
