"""The retention job: what is kept only for a while goes when its time is up.

Idempotency keys protect retries, which come within minutes or, from an offline till, days;
after ``idempotencyRetentionDays`` a key only costs space. Deleted in batches, so the job runs
beside live traffic without one long lock.
"""

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, select

from loyalty.db import Database
from loyalty.idempotency.models import IdempotencyKey
from loyalty.program.service import get_program

BATCH = 10_000


@dataclass(frozen=True)
class RetentionReport:
    idempotency_keys_deleted: int
    kept_days: int

    def __str__(self) -> str:
        return (
            f"{self.idempotency_keys_deleted} idempotency key(s) older than "
            f"{self.kept_days} days deleted"
        )


async def retention(db: Database, *, now: datetime) -> RetentionReport:
    async with db.transaction() as session:
        days = (await get_program(session)).idempotency_retention_days
    cutoff = now - timedelta(days=days)
    deleted = 0
    while True:
        async with db.transaction() as session:
            due = (
                select(IdempotencyKey.id)
                .where(IdempotencyKey.created_at < cutoff)
                .order_by(IdempotencyKey.id)
                .limit(BATCH)
            )
            result = await session.execute(
                delete(IdempotencyKey)
                .where(IdempotencyKey.id.in_(due.scalar_subquery()))
                .execution_options(synchronize_session=False)
            )
        deleted += result.rowcount
        if result.rowcount < BATCH:
            return RetentionReport(idempotency_keys_deleted=deleted, kept_days=days)
