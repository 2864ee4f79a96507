"""eraseMember: a member's personal data goes, the books stay.

Amounts, points, dates and ledger postings are the retailer's accounting records and stay, so
``ledger verify`` and the liability add up after an erasure. What names or describes the person
goes: contact details, names, birthday, the external id (replaced by a random placeholder, so
the old one can enroll again), the referral code, event attributes, feedback comments, notes
on manual tier changes and the SKUs of purchase lines. Points still held are forfeited through
a ledger transaction of their own, so the liability falls by exactly that much.
"""

import secrets
from dataclasses import asdict, dataclass
from typing import Any

from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession

from loyalty.db import utcnow
from loyalty.errors import not_found
from loyalty.events.models import MemberEvent
from loyalty.feedback.models import Feedback
from loyalty.idempotency import service as idempotency
from loyalty.ledger import service as ledger
from loyalty.ledger.models import Account, EntryKind
from loyalty.members import service as members
from loyalty.members.models import Member, MemberStatus
from loyalty.outbox import service as outbox
from loyalty.outbox.models import Event
from loyalty.purchases.models import Purchase
from loyalty.tiers.models import TierChange
from loyalty.validation import required_text

ERASED_PREFIX = "erased-"


@dataclass(frozen=True)
class ErasureIn:
    member_id: int
    reason: str


async def erase_member(
    session: AsyncSession, *, scope: str, idempotency_key: str, erasure: ErasureIn
) -> Member:
    """Erase the member (an erased member is left as it is: there is nothing left to erase)."""
    required_text(erasure.reason, 500, "reason")
    claim = await idempotency.claim(
        session, scope=scope, key=idempotency_key, operation="eraseMember", request=asdict(erasure)
    )
    if isinstance(claim, idempotency.Replay):
        return await _replayed(session, claim.result)
    member = await members.lock_member(session, member_id=erasure.member_id)
    if member.status != MemberStatus.ERASED:
        member = await _forfeit(session, member)
        await _remove_personal_data(session, member.id)
        await session.refresh(member)
    await idempotency.complete(session, claimed=claim, result={"member_id": member.id})
    return member


async def _forfeit(session: AsyncSession, member: Member) -> Member:
    """Take back what the member still holds, available and pending, in one transaction."""
    if not member.points_available and not member.points_pending:
        return member
    posted = await ledger.post(
        session,
        ledger.Movement(
            kind=EntryKind.FORFEIT,
            member_id=member.id,
            counter_account=Account.PROGRAM_FORFEIT,
            occurred_at=utcnow(),
            available=-member.points_available,
            pending=-member.points_pending,
            reason="Forfeited on erasure",
        ),
    )
    return posted.member


async def _remove_personal_data(session: AsyncSession, member_id: int) -> None:
    """The member's own columns and rows; then its past events lose their data (webhook
    receivers not yet served get ids only) and ``member.erased`` asks receivers to erase too."""
    await session.execute(
        update(Member)
        .where(Member.id == member_id)
        .values(
            status=MemberStatus.ERASED,
            external_id=ERASED_PREFIX + secrets.token_hex(12),
            email=None,
            phone=None,
            first_name=None,
            last_name=None,
            date_of_birth=None,
            referral_code=None,
            marketing_email=False,
            marketing_sms=False,
            marketing_push=False,
            updated_at=utcnow(),
        )
        .execution_options(synchronize_session=False)
    )
    await session.execute(
        update(MemberEvent)
        .where(MemberEvent.member_id == member_id)
        .values(attributes={})
        .execution_options(synchronize_session=False)
    )
    await session.execute(
        update(TierChange)
        .where(TierChange.member_id == member_id)
        .values(note=None)
        .execution_options(synchronize_session=False)
    )
    await session.execute(
        update(Feedback)
        .where(Feedback.member_id == member_id)
        .values(comment=None)
        .execution_options(synchronize_session=False)
    )
    erased = {"member": outbox.ref("Member", member_id), "erased": True}
    await session.execute(
        update(Event)
        .where(Event.member_id == member_id)
        .values(data=erased)
        .execution_options(synchronize_session=False)
    )
    await outbox.emit(session, outbox.MEMBER_ERASED, member_id=member_id, data=erased)
    purchases = await session.execute(
        Purchase.__table__.select().where(Purchase.member_id == member_id)
    )
    for purchase in purchases.mappings().all():
        if any(line.get("sku") for line in purchase["lines"] or []):
            await session.execute(
                update(Purchase)
                .where(Purchase.id == purchase["id"])
                .values(lines=[{**line, "sku": None} for line in purchase["lines"]])
                .execution_options(synchronize_session=False)
            )


async def _replayed(session: AsyncSession, result: dict[str, Any]) -> Member:
    member = await members.find_member(session, member_id=result["member_id"])
    if member is None:
        raise not_found("Member")
    return member
