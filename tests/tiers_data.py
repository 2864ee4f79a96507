"""Bulk data for tier scale tests and benchmarks: members with a consistent ledger, made by
set-based SQL on PostgreSQL (generate_series), so 100,000 members take seconds."""

from datetime import datetime

from sqlalchemy import (
    BigInteger,
    Boolean,
    DateTime,
    String,
    case,
    cast,
    column,
    func,
    insert,
    literal,
    literal_column,
    select,
    table,
    text,
)
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql.expression import Executable

from loyalty.ledger.chain import hash_sql, stamp

THRESHOLDS = {"Bronze": 0, "Silver": 1000, "Gold": 3000}


async def insert_tiers(session: AsyncSession) -> None:
    await session.execute(
        text(
            "INSERT INTO tiers (name, rank, threshold, multiplier, benefits, retention_days, "
            "created_at) VALUES "
            "('Bronze', 1, :bronze, 1, '[]', 0, now()), "
            "('Silver', 2, :silver, 1.25, '[]', 0, now()), "
            "('Gold', 3, :gold, 1.5, '[]', 0, now())"
        ),
        {
            "bronze": THRESHOLDS["Bronze"],
            "silver": THRESHOLDS["Silver"],
            "gold": THRESHOLDS["Gold"],
        },
    )


async def generate_members_with_earnings(
    session: AsyncSession,
    *,
    members: int,
    per_member: int,
    now: datetime,
    pending_days: int = 0,
    expire_days: int | None = None,
) -> None:
    """``members`` members with ``per_member`` EARN transactions each, spread over the last
    500 days, with balanced postings, running balances, lots and stored balances that verify.
    Earnings of the last ``pending_days`` are pending; lots expire ``expire_days`` after
    they were earned (never when None)."""
    statements: list[str | Executable] = [
        """
        INSERT INTO members (external_id, status, enrolled_at, updated_at, points_available,
                             points_pending, lifetime_earned, points_redeemed, points_expired)
        SELECT 'bulk-' || g, 'ACTIVE', :now, :now, 0, 0, 0, 0, 0
        FROM generate_series(1, :members) g
        """,
        """
        CREATE TEMP TABLE bulk_earn ON COMMIT DROP AS
        SELECT m.id AS member_id, j AS n,
               ((m.id * 7919 + j * 104729) % 1500) AS points,
               CAST(:now AS timestamptz) - ((m.id * 31 + j * 97) % 500) * interval '1 day'
                   AS at
        FROM members m CROSS JOIN generate_series(1, :per_member) j
        WHERE m.external_id LIKE 'bulk-%'
        """,
        """
        ALTER TABLE bulk_earn ADD COLUMN transaction_id bigint,
            ADD COLUMN pending boolean NOT NULL DEFAULT false
        """,
        """
        UPDATE bulk_earn
        SET pending = at > CAST(:now AS timestamptz) - :pending_days * interval '1 day'
        """,
        """
        UPDATE bulk_earn SET transaction_id = nextval('ledger_transactions_id_seq')
        """,
        """
        ALTER TABLE bulk_earn ADD COLUMN rank bigint
        """,
        """
        UPDATE bulk_earn b SET rank = r.rank
        FROM (SELECT transaction_id,
                     row_number() OVER (PARTITION BY member_id ORDER BY transaction_id) AS rank
              FROM bulk_earn) r
        WHERE b.transaction_id = r.transaction_id
        """,
        *[_insert_transactions(rank, now) for rank in range(1, per_member + 1)],
        """
        INSERT INTO ledger_entries (transaction_id, account, member_id, points, balance_after)
        SELECT transaction_id,
               CASE WHEN pending THEN 'MEMBER_PENDING' ELSE 'MEMBER_AVAILABLE' END,
               member_id, points,
               SUM(points) OVER (PARTITION BY member_id, pending ORDER BY transaction_id)
        FROM bulk_earn ORDER BY transaction_id
        """,
        """
        INSERT INTO ledger_entries (transaction_id, account, member_id, points, balance_after)
        SELECT transaction_id, 'PROGRAM_ISSUANCE', NULL, -points, NULL FROM bulk_earn
        """,
        """
        INSERT INTO point_lots (member_id, transaction_id, amount, remaining, state, earned_at,
                                releases_at, expires_at)
        SELECT member_id, transaction_id, points, points,
               CASE WHEN pending THEN 'PENDING' ELSE 'AVAILABLE' END, at,
               CASE WHEN pending THEN at + :pending_days * interval '1 day' END,
               at + CAST(:expire_days AS integer) * interval '1 day'
        FROM bulk_earn
        """,
        """
        UPDATE members m SET points_available = s.available, points_pending = s.pending,
                             lifetime_earned = s.available + s.pending
        FROM (SELECT member_id,
                     SUM(CASE WHEN pending THEN 0 ELSE points END) AS available,
                     SUM(CASE WHEN pending THEN points ELSE 0 END) AS pending
              FROM bulk_earn GROUP BY member_id) s
        WHERE m.id = s.member_id
        """,
    ]
    parameters = {
        "now": now,
        "members": members,
        "per_member": per_member,
        "pending_days": pending_days,
        "expire_days": expire_days,
    }
    for statement in statements:
        await session.execute(
            text(statement) if isinstance(statement, str) else statement, parameters
        )


def _insert_transactions(rank: int, now: datetime) -> Executable:
    """The members' ``rank``-th transactions, chained to the ones before (``chain``)."""
    bulk = table(
        "bulk_earn",
        column("transaction_id", BigInteger()),
        column("member_id", BigInteger()),
        column("points", BigInteger()),
        column("at", DateTime(timezone=True)),
        column("pending", Boolean()),
        column("rank", BigInteger()),
    )
    ledger = table(
        "ledger_transactions",
        column("id", BigInteger()),
        column("member_id", BigInteger()),
        column("hash", String()),
    )
    head = (
        select(ledger.c.hash)
        .where(ledger.c.member_id == bulk.c.member_id)
        .order_by(ledger.c.id.desc())
        .limit(1)
        .scalar_subquery()
    )
    rows = select(bulk, head.label("head")).where(bulk.c.rank == rank).subquery()
    at = func.to_char(
        func.timezone("UTC", rows.c.at), literal_column('\'YYYY-MM-DD"T"HH24:MI:SS.US"Z"\'')
    )
    member_account = case((rows.c.pending, "MEMBER_PENDING"), else_="MEMBER_AVAILABLE")
    digest = hash_sql(
        {
            "id": rows.c.transaction_id,
            "kind": literal("EARN"),
            "member_id": rows.c.member_id,
            "occurred_at": at,
            "created_at": literal(stamp(now)),
            "reason": literal(None, String()),
            "purchase_id": literal(None, BigInteger()),
            "redemption_id": literal(None, BigInteger()),
            "qualifying_points": rows.c.points,
            "qualifying_at": at,
            "postings": member_account
            + literal(":")
            + cast(rows.c.points, String)
            + literal(",PROGRAM_ISSUANCE:")
            + cast(-rows.c.points, String),
            "prev_hash": rows.c.head,
        }
    )
    columns = ["id", "kind", "member_id", "occurred_at", "created_at"]
    columns += ["qualifying_points", "qualifying_at", "prev_hash", "hash"]
    return insert(table("ledger_transactions", *(column(c) for c in columns))).from_select(
        columns,
        select(
            rows.c.transaction_id,
            literal("EARN"),
            rows.c.member_id,
            rows.c.at,
            literal(now, DateTime(timezone=True)),
            rows.c.points,
            rows.c.at,
            rows.c.head,
            digest,
        ),
    )
