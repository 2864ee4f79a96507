"""``loyalty ledger verify``: every invariant of API.md §5 checked with set-based SQL.

Each check is one query over whole tables that returns the offending rows, so it costs the
same whether one member or ten million are in the ledger, and names each row it finds. The
hash chain (``chain``) is the exception: it is recomputed in Python, reading the transactions
in chain order (member, then id) in batches along the ``(member_id, id)`` index.
"""

from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from loyalty.ledger.chain import chain_rows, row_hash
from loyalty.ledger.models import (
    EARNING_KINDS,
    REDEEMING_KINDS,
    Account,
    LedgerEntry,
    LedgerTransaction,
)

REPORT_LIMIT = 100
CHAIN_BATCH = 20_000
LEDGER_TABLES = ("ledger_transactions", "ledger_entries")
GUARD_TRIGGERS = tuple(f"{t}_no_{a}" for t in LEDGER_TABLES for a in ("update", "delete"))


@dataclass(frozen=True)
class Violation:
    invariant: int
    check: str
    detail: str

    def __str__(self) -> str:
        return f"invariant {self.invariant} ({self.check}): {self.detail}"


@dataclass(frozen=True)
class Check:
    invariant: int
    name: str
    sql: str
    describe: Callable[..., str]


def _sql_list(values: tuple[str, ...]) -> str:
    return "(" + ", ".join(f"'{value}'" for value in values) + ")"


_MEMBER_ACCOUNTS = _sql_list((Account.MEMBER_AVAILABLE, Account.MEMBER_PENDING))
_EARNING = _sql_list(EARNING_KINDS)
_REDEEMING = _sql_list(REDEEMING_KINDS)

CHECKS = (
    Check(
        2,
        "unbalanced transaction",
        """
        SELECT t.id, COALESCE(SUM(e.points), 0) AS total, COUNT(e.id) AS postings
        FROM ledger_transactions t LEFT JOIN ledger_entries e ON e.transaction_id = t.id
        GROUP BY t.id
        HAVING COALESCE(SUM(e.points), 0) <> 0 OR COUNT(e.id) < 2
        """,
        lambda r: f"transaction {r.id} has {r.postings} postings summing to {r.total}, not 0",
    ),
    Check(
        2,
        "posting on the wrong account",
        f"""
        SELECT e.id, e.transaction_id, e.account, e.member_id, t.member_id AS owner
        FROM ledger_entries e JOIN ledger_transactions t ON t.id = e.transaction_id
        WHERE (e.account IN {_MEMBER_ACCOUNTS}
               AND (e.member_id IS NULL OR e.member_id <> t.member_id))
           OR (e.account NOT IN {_MEMBER_ACCOUNTS} AND e.member_id IS NOT NULL)
        """,
        lambda r: (
            f"entry {r.id} of transaction {r.transaction_id} posts {r.account} "
            f"for member {r.member_id}, but the transaction belongs to member {r.owner}"
        ),
    ),
    Check(
        3,
        "balanceAfter is not the running sum",
        """
        SELECT id, member_id, account, balance_after, running FROM (
            SELECT id, member_id, account, balance_after,
                   SUM(points) OVER (PARTITION BY member_id, account ORDER BY id
                                     ROWS UNBOUNDED PRECEDING) AS running
            FROM ledger_entries WHERE member_id IS NOT NULL
        ) s
        WHERE balance_after IS NULL OR balance_after <> running
        """,
        lambda r: (
            f"entry {r.id} ({r.account} of member {r.member_id}) records balanceAfter "
            f"{r.balance_after}, the running sum is {r.running}"
        ),
    ),
    Check(
        3,
        "stored balance differs from the ledger",
        f"""
        WITH sums AS (
            SELECT e.member_id,
                SUM(CASE WHEN e.account = '{Account.MEMBER_AVAILABLE}' THEN e.points ELSE 0 END)
                    AS available,
                SUM(CASE WHEN e.account = '{Account.MEMBER_PENDING}' THEN e.points ELSE 0 END)
                    AS pending,
                SUM(CASE WHEN t.kind IN {_EARNING}
                          OR (t.kind = 'ADJUST' AND e.points > 0) THEN e.points ELSE 0 END)
                    AS lifetime_earned,
                SUM(CASE WHEN t.kind IN {_REDEEMING} THEN -e.points ELSE 0 END)
                    AS redeemed,
                SUM(CASE WHEN t.kind = 'EXPIRE' THEN -e.points ELSE 0 END) AS expired
            FROM ledger_entries e JOIN ledger_transactions t ON t.id = e.transaction_id
            WHERE e.member_id IS NOT NULL
            GROUP BY e.member_id
        )
        SELECT m.id,
            m.points_available, COALESCE(s.available, 0) AS available,
            m.points_pending, COALESCE(s.pending, 0) AS pending,
            m.lifetime_earned AS stored_lifetime, COALESCE(s.lifetime_earned, 0) AS lifetime,
            m.points_redeemed, COALESCE(s.redeemed, 0) AS redeemed,
            m.points_expired, COALESCE(s.expired, 0) AS expired
        FROM members m LEFT JOIN sums s ON s.member_id = m.id
        WHERE m.points_available <> COALESCE(s.available, 0)
           OR m.points_pending <> COALESCE(s.pending, 0)
           OR m.lifetime_earned <> COALESCE(s.lifetime_earned, 0)
           OR m.points_redeemed <> COALESCE(s.redeemed, 0)
           OR m.points_expired <> COALESCE(s.expired, 0)
        """,
        lambda r: (
            f"member {r.id} stores available={r.points_available} pending={r.points_pending} "
            f"lifetimeEarned={r.stored_lifetime} redeemed={r.points_redeemed} "
            f"expired={r.points_expired}; the ledger sums to available={r.available} "
            f"pending={r.pending} lifetimeEarned={r.lifetime} redeemed={r.redeemed} "
            f"expired={r.expired}"
        ),
    ),
    Check(
        3,
        "purchase award differs from the ledger",
        f"""
        SELECT p.id, p.order_id, p.points_awarded, COALESCE(SUM(e.points), 0) AS posted
        FROM purchases p
        LEFT JOIN ledger_transactions t ON t.purchase_id = p.id AND t.kind IN ('EARN', 'BONUS')
        LEFT JOIN ledger_entries e ON e.transaction_id = t.id
            AND e.account IN {_MEMBER_ACCOUNTS}
        GROUP BY p.id, p.order_id, p.points_awarded
        HAVING p.points_awarded <> COALESCE(SUM(e.points), 0)
        """,
        lambda r: (
            f"purchase {r.id} (order {r.order_id}) says it awarded {r.points_awarded} points, "
            f"the ledger credited {r.posted}"
        ),
    ),
    Check(
        3,
        "lots differ from balances",
        """
        WITH lots AS (
            SELECT member_id,
                SUM(CASE WHEN state = 'AVAILABLE' THEN remaining ELSE 0 END) AS available,
                SUM(CASE WHEN state = 'PENDING' THEN remaining ELSE 0 END) AS pending
            FROM point_lots GROUP BY member_id
        )
        SELECT m.id, m.points_available, m.points_pending,
            COALESCE(l.available, 0) AS lot_available, COALESCE(l.pending, 0) AS lot_pending
        FROM members m LEFT JOIN lots l ON l.member_id = m.id
        WHERE m.points_available <> COALESCE(l.available, 0)
           OR m.points_pending <> COALESCE(l.pending, 0)
        """,
        lambda r: (
            f"member {r.id} has available={r.points_available} pending={r.points_pending}, "
            f"its lots hold available={r.lot_available} pending={r.lot_pending}"
        ),
    ),
    Check(
        4,
        "lot consumed beyond its amount",
        """
        SELECT l.id, l.member_id, l.amount, l.remaining, l.expired,
            COALESCE(SUM(c.amount), 0) AS taken
        FROM point_lots l LEFT JOIN lot_consumptions c ON c.lot_id = l.id
        GROUP BY l.id, l.member_id, l.amount, l.remaining, l.expired
        HAVING l.remaining < 0 OR l.remaining > l.amount
            OR l.expired < 0 OR l.expired > l.amount
            OR l.remaining <> l.amount - COALESCE(SUM(c.amount), 0) - l.expired
        """,
        lambda r: (
            f"lot {r.id} of member {r.member_id}: amount {r.amount}, remaining {r.remaining}, "
            f"expired {r.expired}, consumptions add up to {r.taken}"
        ),
    ),
    Check(
        4,
        "clawback exceeds the award",
        f"""
        SELECT p.id, p.order_id, p.points_awarded, p.points_refunded, p.points_unrecovered,
            COALESCE(-SUM(e.points), 0) AS clawed
        FROM purchases p
        LEFT JOIN ledger_transactions t ON t.purchase_id = p.id AND t.kind = 'REFUND_CLAWBACK'
        LEFT JOIN ledger_entries e ON e.transaction_id = t.id
            AND e.account IN {_MEMBER_ACCOUNTS}
        GROUP BY p.id, p.order_id, p.points_awarded, p.points_refunded, p.points_unrecovered
        HAVING p.points_refunded > p.points_awarded
            OR p.points_unrecovered < 0 OR p.points_unrecovered > p.points_refunded
            OR COALESCE(-SUM(e.points), 0) <> p.points_refunded - p.points_unrecovered
        """,
        lambda r: (
            f"purchase {r.id} (order {r.order_id}) awarded {r.points_awarded}, says refunds "
            f"took {r.points_refunded} ({r.points_unrecovered} unrecovered); the ledger "
            f"clawed back {r.clawed}"
        ),
    ),
    Check(
        4,
        "negative balance",
        """
        SELECT id, points_available, points_pending FROM members
        WHERE points_available < 0 OR points_pending < 0
        """,
        lambda r: f"member {r.id} has available={r.points_available} pending={r.points_pending}",
    ),
    Check(
        4,
        "balance went below zero",
        """
        SELECT id, member_id, account, balance_after FROM ledger_entries
        WHERE member_id IS NOT NULL AND balance_after < 0
        """,
        lambda r: f"entry {r.id} took {r.account} of member {r.member_id} to {r.balance_after}",
    ),
    Check(
        4,
        "reward stock below zero",
        "SELECT id, name, stock FROM rewards WHERE stock < 0",
        lambda r: f"reward {r.id} ({r.name}) has stock {r.stock}",
    ),
    Check(
        4,
        "code pool and stock disagree",
        """
        SELECT r.id, r.name, r.stock, COUNT(c.id) AS unused
        FROM rewards r LEFT JOIN reward_codes c
            ON c.reward_id = r.id AND c.redemption_id IS NULL
        WHERE r.kind = 'CODE_POOL'
        GROUP BY r.id, r.name, r.stock
        HAVING COALESCE(r.stock, -1) <> COUNT(c.id)
        """,
        lambda r: f"reward {r.id} ({r.name}) has stock {r.stock} but {r.unused} unused codes",
    ),
    Check(
        4,
        "redemption and ledger disagree",
        f"""
        SELECT d.id, d.status, d.points_spent,
            COALESCE(SUM(CASE WHEN t.kind = 'REDEEM' THEN -e.points END), 0) AS debited,
            COALESCE(SUM(CASE WHEN t.kind = 'REDEMPTION_CANCEL' THEN e.points END), 0)
                AS refunded,
            COUNT(DISTINCT CASE WHEN t.kind = 'REDEEM' THEN t.id END) AS debits,
            COUNT(DISTINCT CASE WHEN t.kind = 'REDEMPTION_CANCEL' THEN t.id END) AS refunds
        FROM redemptions d
        LEFT JOIN ledger_transactions t ON t.redemption_id = d.id
        LEFT JOIN ledger_entries e ON e.transaction_id = t.id
            AND e.account IN {_MEMBER_ACCOUNTS}
        GROUP BY d.id, d.status, d.points_spent
        HAVING COUNT(DISTINCT CASE WHEN t.kind = 'REDEEM' THEN t.id END) <> 1
            OR COALESCE(SUM(CASE WHEN t.kind = 'REDEEM' THEN -e.points END), 0)
               <> d.points_spent
            OR COUNT(DISTINCT CASE WHEN t.kind = 'REDEMPTION_CANCEL' THEN t.id END)
               <> CASE WHEN d.status = 'CANCELLED' THEN 1 ELSE 0 END
            OR COALESCE(SUM(CASE WHEN t.kind = 'REDEMPTION_CANCEL' THEN e.points END), 0)
               <> CASE WHEN d.status = 'CANCELLED' THEN d.points_spent ELSE 0 END
        """,
        lambda r: (
            f"redemption {r.id} ({r.status}, {r.points_spent} points) has {r.debits} REDEEM "
            f"transaction(s) debiting {r.debited} and {r.refunds} cancellation(s) "
            f"crediting {r.refunded}"
        ),
    ),
    Check(
        5,
        "idempotency key applied more than once",
        """
        SELECT scope, key, COUNT(*) AS uses FROM idempotency_keys
        GROUP BY scope, key HAVING COUNT(*) > 1
        """,
        lambda r: f"key {r.key!r} of caller {r.scope} is stored {r.uses} times",
    ),
    Check(
        5,
        "idempotency key without a result",
        "SELECT id, scope, key FROM idempotency_keys WHERE result IS NULL",
        lambda r: f"key {r.key!r} of caller {r.scope} was claimed but stores no result",
    ),
    Check(
        5,
        "purchase earned more than once",
        """
        SELECT purchase_id, COUNT(*) AS earns FROM ledger_transactions
        WHERE kind = 'EARN' AND purchase_id IS NOT NULL
        GROUP BY purchase_id HAVING COUNT(*) > 1
        """,
        lambda r: f"purchase {r.purchase_id} has {r.earns} EARN transactions",
    ),
    Check(
        3,
        "rule award differs from its BONUS posting",
        """
        SELECT a.id, a.rule_id, a.points, e.points AS posted, a.member_id,
               e.member_id AS owner, t.kind
        FROM rule_awards a
        JOIN ledger_entries e ON e.id = a.entry_id
        JOIN ledger_transactions t ON t.id = e.transaction_id
        WHERE a.points <> e.points OR a.member_id <> e.member_id OR t.kind <> 'BONUS'
        """,
        lambda r: (
            f"award {r.id} of rule {r.rule_id} says {r.points} points to member {r.member_id}, "
            f"its posting ({r.kind}) credits {r.posted} to member {r.owner}"
        ),
    ),
    Check(
        4,
        "rule budget differs from its awards",
        """
        SELECT r.id, r.budget_used, COALESCE(SUM(a.points), 0) AS awarded
        FROM earning_rules r LEFT JOIN rule_awards a ON a.rule_id = r.id AND a.budgeted
        GROUP BY r.id, r.budget_used
        HAVING r.budget_used <> COALESCE(SUM(a.points), 0)
        """,
        lambda r: (
            f"rule {r.id} records {r.budget_used} budget points used, its budgeted awards "
            f"add up to {r.awarded}"
        ),
    ),
)


async def _missing_guards(connection: AsyncConnection) -> list[Violation]:
    if connection.dialect.name == "postgresql":
        query = "SELECT tgname FROM pg_trigger WHERE NOT tgisinternal AND tgenabled <> 'D'"
    else:
        query = "SELECT name FROM sqlite_master WHERE type = 'trigger'"
    present = set((await connection.execute(text(query))).scalars())
    return [
        Violation(1, "append-only guard missing", f"trigger {name} is missing or disabled")
        for name in GUARD_TRIGGERS
        if name not in present
    ]


async def _broken_chains(connection: AsyncConnection) -> list[Violation]:
    """The first broken link of each member's chain: a transaction whose content no longer
    gives its hash (edited), or whose ``prev_hash`` is not the hash of the member's
    transaction before it (one was deleted, or edited and rehashed, before it)."""
    violations: list[Violation] = []
    after = (0, 0)
    member = head = None
    broken = False
    while len(violations) < REPORT_LIMIT:
        statement = chain_rows(
            LedgerTransaction.__table__, LedgerEntry.__table__, after=after, limit=CHAIN_BATCH
        )
        rows = (await connection.execute(statement)).all()
        if not rows:
            break
        for row in rows:
            if row.member_id != member:
                member, head, broken = row.member_id, None, False
            if broken:
                continue
            problem = None
            if row.hash != row_hash(row, prev_hash=row.prev_hash):
                problem = "hash mismatch (its content was changed)"
            elif row.prev_hash != head:
                problem = (
                    "previous-hash link broken (the member's transaction before it was "
                    "deleted or changed)"
                )
            if problem:
                broken = True
                violations.append(
                    Violation(
                        1, "hash chain broken", f"transaction {row.id}: {problem} (member {member})"
                    )
                )
            head = row.hash
        after = (rows[-1].member_id, rows[-1].id)
    return violations[:REPORT_LIMIT]


async def verify(connection: AsyncConnection) -> list[Violation]:
    """All violations found (at most REPORT_LIMIT per check); empty when the ledger is sound."""
    violations = await _missing_guards(connection)
    violations += await _broken_chains(connection)
    for check in CHECKS:
        rows = (await connection.execute(text(f"{check.sql} LIMIT {REPORT_LIMIT}"))).all()
        violations += [Violation(check.invariant, check.name, check.describe(r)) for r in rows]
    return violations
