"""Referrals: a member shares a code, a friend enrolls with it, and the friend's first
purchase that earns points rewards both (amounts and the per-referrer limit are program
settings). A referral is rewarded once: refunding that purchase and buying again does not
reward it a second time, and the points already given are not taken back."""

import re
import secrets
from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from loyalty.db import utcnow
from loyalty.errors import invalid, not_found
from loyalty.ledger import service as ledger
from loyalty.members.models import Member, MemberStatus
from loyalty.outbox import service as outbox
from loyalty.pagination import Page, PageRequest, newest_first
from loyalty.program.models import Program
from loyalty.referrals.models import Referral

CODE_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
"""Crockford's base 32: no I, L, O or U, so a code read aloud at the till survives."""
CODE_LENGTH = 10
_CODE = re.compile(r"^[0-9A-Z]+$")
"""What any code looks like (new codes in base 32, codes given at migration in hex)."""


def new_code() -> str:
    """50 random bits: codes are meant to be shared, but not to be guessed."""
    return "".join(secrets.choice(CODE_ALPHABET) for _ in range(CODE_LENGTH))


def normalized_code(code: str) -> str:
    return code.strip().upper().replace("-", "").replace(" ", "")


async def find_referrer(
    session: AsyncSession, *, code: str, email: str | None, phone: str | None
) -> Member:
    """The member whose code this is; refused when the new member would be referring
    themselves (the same email or phone)."""
    key = normalized_code(code)
    referrer = None
    if 0 < len(key) <= 16 and _CODE.match(key):
        referrer = await session.scalar(select(Member).where(Member.referral_code == key))
    if referrer is None:
        raise not_found("Referral code", "referralCode")
    same_email = (
        email is not None
        and referrer.email is not None
        and (email.lower() == referrer.email.lower())
    )
    same_phone = phone is not None and phone == referrer.phone
    if same_email or same_phone:
        raise invalid(
            "A member cannot use their own referral code (same email or phone).", "referralCode"
        )
    return referrer


async def link(session: AsyncSession, *, referrer: Member, referee: Member) -> None:
    session.add(Referral(referrer_id=referrer.id, referee_id=referee.id, created_at=utcnow()))
    await session.flush()


async def lock_referrer(session: AsyncSession, *, referee_id: int) -> None:
    """Lock the referrer of a referee whose referral is not rewarded yet: the referee's row is
    locked, and the referrer enrolled earlier, so this keeps the newest-first member order."""
    await session.execute(
        select(Member.id)
        .where(
            Member.id
            == select(Referral.referrer_id)
            .where(Referral.referee_id == referee_id)
            .scalar_subquery()
        )
        .with_for_update()
    )


async def reward_referral(
    session: AsyncSession,
    *,
    referee: Member,
    program: Program,
    purchase_id: int,
    occurred_at: datetime,
    releases_at: datetime | None,
) -> Member:
    """Reward a referral on the referee's first purchase that earned points. The referee's and
    the referrer's rows are already locked (``lock_referrer``). Returns the referee, updated."""
    referee.referral_pending = False
    await session.flush()
    referral = await session.scalar(
        select(Referral)
        .where(Referral.referee_id == referee.id, Referral.rewarded_at.is_(None))
        .with_for_update()
    )
    if referral is None:
        return referee
    referrer_points = await _referrer_points(session, referral=referral, program=program)
    for member_id, points, reason in (
        (referee.id, program.referee_points, "Referral bonus: welcome"),
        (referral.referrer_id, referrer_points, "Referral bonus: a friend's first purchase"),
    ):
        if points <= 0:
            continue
        earned = await ledger.earn(
            session,
            ledger.Earning(
                member_id=member_id,
                occurred_at=occurred_at,
                pending=releases_at is not None,
                bonuses=(points,),
                reason=reason,
                releases_at=releases_at,
                expires_at=program.expires_at(occurred_at),
            ),
        )
        if member_id == referee.id:
            referee = earned.member
    await _mark_rewarded(
        session,
        referral=referral,
        referrer_points=referrer_points,
        referee_points=program.referee_points,
        purchase_id=purchase_id,
        occurred_at=occurred_at,
    )
    return referee


async def _mark_rewarded(
    session: AsyncSession,
    *,
    referral: Referral,
    referrer_points: int,
    referee_points: int,
    purchase_id: int,
    occurred_at: datetime,
) -> None:
    """Store what the referral gave, so it is never rewarded again, and say so in the outbox."""
    await session.execute(
        update(Referral)
        .where(Referral.id == referral.id)
        .values(
            rewarded_at=utcnow(),
            purchase_id=purchase_id,
            referrer_points=referrer_points,
            referee_points=referee_points,
        )
    )
    await outbox.emit(
        session,
        outbox.REFERRAL_REWARDED,
        member_id=referral.referee_id,
        occurred_at=occurred_at,
        data={
            "referral": {
                "id": outbox.gid("Referral", referral.id),
                "referrer": outbox.ref("Member", referral.referrer_id),
                "referee": outbox.ref("Member", referral.referee_id),
                "referrerPoints": referrer_points,
                "refereePoints": max(referee_points, 0),
            },
            "purchase": outbox.ref("Purchase", purchase_id),
        },
    )


async def _referrer_points(session: AsyncSession, *, referral: Referral, program: Program) -> int:
    """The referrer's bonus: none once they are no longer active or have had the program's
    limit of rewarded referrals. Locks the referrer's row."""
    referrer = await session.scalar(
        select(Member).where(Member.id == referral.referrer_id).with_for_update()
    )
    rewarded = (
        await session.scalar(
            select(func.count()).where(
                Referral.referrer_id == referral.referrer_id, Referral.referrer_points > 0
            )
        )
        or 0
    )
    limit_reached = program.referral_limit is not None and rewarded >= program.referral_limit
    active = referrer is not None and referrer.status == MemberStatus.ACTIVE
    return program.referrer_points if active and not limit_reached else 0


async def referrals_of(
    session: AsyncSession, *, referrer_id: int, page: PageRequest
) -> Page[Referral]:
    return await newest_first(
        session, Referral, owner=Referral.referrer_id == referrer_id, page=page
    )


async def referral_counts(
    session: AsyncSession, *, referrer_ids: Sequence[int]
) -> dict[int, tuple[int, int]]:
    """(referrals, referrals rewarded) of each referrer."""
    rows = await session.execute(
        select(Referral.referrer_id, func.count(), func.count(Referral.rewarded_at))
        .where(Referral.referrer_id.in_(referrer_ids))
        .group_by(Referral.referrer_id)
    )
    counts = {referrer: (int(made), int(rewarded)) for referrer, made, rewarded in rows}
    return {referrer: counts.get(referrer, (0, 0)) for referrer in referrer_ids}


async def referral_of(session: AsyncSession, *, referee_id: int) -> Referral | None:
    return await session.scalar(select(Referral).where(Referral.referee_id == referee_id))
