"""``loyalty program init``: what a fresh install needs before its first member enrolls.

Migrations create the program row with placeholder settings and no tiers, and a member enrolls
into the tier with threshold 0, so without a base tier every member has ``tier: null``.
"""

from dataclasses import dataclass

from sqlalchemy import func, insert, literal, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from loyalty.db import UTCDateTime, utcnow
from loyalty.inputs import parse
from loyalty.members.models import Member
from loyalty.program import service as programs
from loyalty.program.models import Program
from loyalty.tiers import service as tiers
from loyalty.tiers.models import Tier, TierChange, TierChangeReason


@dataclass(frozen=True)
class FirstRun:
    program: Program
    base_tier: Tier
    created_tier: bool
    members_placed: int
    """Members who had no tier and were put in the base tier."""


async def initialize(
    session: AsyncSession, *, currency: str, name: str | None, base_tier_name: str
) -> FirstRun:
    """Set the currency (and name), create a base tier (rank 0, threshold 0) unless one with
    threshold 0 exists, and put tierless members in it. Running it again changes nothing."""
    changes = parse(
        programs.ProgramChanges, currency=currency, **({} if name is None else {"name": name})
    )
    program = await programs.update_program(session, changes=changes)
    base = await session.scalar(
        select(Tier).where(Tier.threshold == 0).order_by(Tier.rank).limit(1)
    )
    created = base is None
    if base is None:
        base = await tiers.create_tier(
            session, tier=parse(tiers.TierDraft, name=base_tier_name, rank=0, threshold=0)
        )
    placed = await _place_tierless_members(session, base)
    return FirstRun(program=program, base_tier=base, created_tier=created, members_placed=placed)


async def _place_tierless_members(session: AsyncSession, base: Tier) -> int:
    tierless = Member.tier_id.is_(None)
    count = await session.scalar(select(func.count()).select_from(Member).where(tierless))
    if not count:
        return 0
    now = utcnow()
    await session.execute(
        insert(TierChange).from_select(
            ["member_id", "to_tier_id", "to_name", "reason", "note", "at"],
            select(
                Member.id,
                literal(base.id),
                literal(base.name),
                literal(TierChangeReason.ADMIN.value),
                literal("Base tier set by `loyalty program init`."),
                literal(now, UTCDateTime()),
            ).where(tierless),
        )
    )
    await session.execute(update(Member).where(tierless).values(tier_id=base.id, tier_since=now))
    return count
