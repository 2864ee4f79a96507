"""Bulk data for tier scale tests and benchmarks: members with a consistent ledger, made by
set-based SQL on PostgreSQL (generate_series), so 100,000 members take seconds."""

from datetime import datetime

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

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
    statements = [
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
        INSERT INTO ledger_transactions (id, kind, member_id, occurred_at, created_at,
                                         qualifying_points, qualifying_at)
        SELECT transaction_id, 'EARN', member_id, at, :now, points, at FROM bulk_earn
        """,
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
        await session.execute(text(statement), parameters)
