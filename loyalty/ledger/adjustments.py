"""adjustPoints: an admin's signed correction, itself a balanced ledger transaction."""

from dataclasses import dataclass
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from loyalty.db import utcnow
from loyalty.errors import DomainError, ErrorCode, invalid, not_found
from loyalty.idempotency import service as idempotency
from loyalty.ledger import service as ledger
from loyalty.ledger.models import Account, EntryKind
from loyalty.members import service as members
from loyalty.members.models import Member, MemberStatus
from loyalty.program.service import get_program
from loyalty.tiers import service as tiers
from loyalty.validation import required_text

MAX_ADJUSTMENT = 100_000_000


@dataclass(frozen=True)
class AdjustmentIn:
    member_id: int
    points: int
    reason: str
    qualifying: bool = False
    """Count the points toward tier qualification (they do not by default)."""


@dataclass(frozen=True)
class AdjustmentResult:
    entry: ledger.EntryView
    member: Member


async def adjust_points(
    session: AsyncSession, *, scope: str, idempotency_key: str, adjustment: AdjustmentIn
) -> AdjustmentResult:
    """Credit or debit available points; a debit never takes available below zero."""
    if adjustment.points == 0 or abs(adjustment.points) > MAX_ADJUSTMENT:
        raise invalid(f"Must be non-zero and at most {MAX_ADJUSTMENT:,} either way.", "points")
    reason = required_text(adjustment.reason, 500, "reason")
    return await _ADJUST_POINTS.run(
        session,
        scope=scope,
        key=idempotency_key,
        request=idempotency.request_of(adjustment),
        work=lambda: _adjust(session, adjustment=adjustment, reason=reason),
    )


async def _adjust(
    session: AsyncSession, *, adjustment: AdjustmentIn, reason: str
) -> AdjustmentResult:
    member = await members.lock_member(session, member_id=adjustment.member_id)
    if member.status in (MemberStatus.CLOSED, MemberStatus.ERASED):
        raise DomainError(
            ErrorCode.MEMBER_INACTIVE, "The member's account is closed.", ["memberId"]
        )
    now = utcnow()
    program = await get_program(session)
    posted = await ledger.post(
        session,
        ledger.Movement(
            kind=EntryKind.ADJUST,
            member_id=member.id,
            counter_account=Account.PROGRAM_ADJUSTMENT,
            occurred_at=now,
            available=adjustment.points,
            lifetime_earned=max(adjustment.points, 0),
            reason=reason,
            qualifying_points=adjustment.points if adjustment.qualifying else 0,
            qualifying_at=now if adjustment.qualifying else None,
            expires_at=program.expires_at(now),
        ),
        member_locked=True,
    )
    if adjustment.qualifying:
        await tiers.qualify_after_earning(
            session,
            member=posted.member,
            now=now,
            window_days=program.tier_window_days,
            next_threshold=await tiers.next_threshold(session, member=posted.member),
        )
    return AdjustmentResult(entry=posted.entry, member=posted.member)


def _report(result: AdjustmentResult) -> dict[str, Any]:
    """The entry's id: a posting never changes, so its points and balanceAfter replay as is."""
    return {"entry_id": result.entry.id, **members.REPORTED.store(result.member)}


async def _replayed(session: AsyncSession, result: dict[str, Any]) -> AdjustmentResult:
    entry = await ledger.get_entry(session, entry_id=result["entry_id"])
    if entry is None:
        raise not_found("Ledger entry")
    member = await members.REPORTED.load(session, result)
    return AdjustmentResult(entry=entry, member=member)


_ADJUST_POINTS = idempotency.Idempotent("adjustPoints", report=_report, replay=_replayed)
