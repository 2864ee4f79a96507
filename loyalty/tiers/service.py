"""Tier reads; configuration and evaluation arrive with the tiers issue."""

from collections.abc import Sequence

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from loyalty.tiers.models import Tier


async def list_tiers(session: AsyncSession) -> list[Tier]:
    return list((await session.scalars(select(Tier).order_by(Tier.rank))).all())


async def tiers_by_id(session: AsyncSession, *, tier_ids: Sequence[int]) -> dict[int, Tier]:
    tiers = await session.scalars(select(Tier).where(Tier.id.in_(tier_ids)))
    return {tier.id: tier for tier in tiers}
