"""Per-request DataLoaders: a page of members costs one query per related type, not per row."""

from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from strawberry.dataloader import DataLoader

from loyalty.members.models import Member
from loyalty.purchases.models import Purchase
from loyalty.rewards.models import Redemption, Reward
from loyalty.rules import service as rules
from loyalty.tiers import service as tiers
from loyalty.tiers.models import Tier

T = TypeVar("T")
Read = Callable[[Callable[[AsyncSession], Awaitable[Any]]], Awaitable[Any]]


def _by_id(read: Read, model: Any) -> Callable[[Sequence[int]], Awaitable[list[Any]]]:
    async def load(ids: Sequence[int]) -> list[Any]:
        rows = await read(lambda session: session.scalars(select(model).where(model.id.in_(ids))))
        found = {row.id: row for row in rows}
        return [found.get(i) for i in ids]

    return load


def _tier_progress(read: Read) -> Callable[[Sequence[Member]], Awaitable[list[Any]]]:
    async def load(members: Sequence[Member]) -> list[Any]:
        async def compute(session: AsyncSession) -> list[Any]:
            return [await tiers.tier_progress(session, member=member) for member in members]

        return await read(compute)

    return load


class Loaders:
    def __init__(self, read: Read) -> None:
        self.tier_progress: DataLoader[Member, tiers.TierProgress] = DataLoader(
            _tier_progress(read)
        )
        """Memoises tierProgress and tierExpiresAt, which share one computation."""
        self.tier: DataLoader[int, Tier | None] = DataLoader(_by_id(read, Tier))
        self.member: DataLoader[int, Member | None] = DataLoader(_by_id(read, Member))
        self.purchase: DataLoader[int, Purchase | None] = DataLoader(_by_id(read, Purchase))
        self.reward: DataLoader[int, Reward | None] = DataLoader(_by_id(read, Reward))
        self.redemption: DataLoader[int, Redemption | None] = DataLoader(_by_id(read, Redemption))
        self.rule_of_entry: DataLoader[int, int | None] = DataLoader(
            lambda ids: read(lambda session: rules.rule_ids_of_entries(session, list(ids)))
        )
        self.earning_rule: DataLoader[int, rules.RuleView | None] = DataLoader(
            lambda ids: read(lambda session: rules.rules_by_id(session, list(ids)))
        )
