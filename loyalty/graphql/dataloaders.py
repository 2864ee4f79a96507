"""Per-request DataLoaders: a page of members costs one query per related type, not per row."""

from collections.abc import Awaitable, Callable, Sequence
from functools import cached_property
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
    """Each DataLoader is made on first use: most requests (a purchase at the till) need none."""

    def __init__(self, read: Read) -> None:
        self._read = read

    @cached_property
    def tier_progress(self) -> DataLoader[Member, tiers.TierProgress]:
        """Memoises tierProgress and tierExpiresAt, which share one computation."""
        return DataLoader(_tier_progress(self._read))

    @cached_property
    def tier(self) -> DataLoader[int, Tier | None]:
        return DataLoader(_by_id(self._read, Tier))

    @cached_property
    def member(self) -> DataLoader[int, Member | None]:
        return DataLoader(_by_id(self._read, Member))

    @cached_property
    def purchase(self) -> DataLoader[int, Purchase | None]:
        return DataLoader(_by_id(self._read, Purchase))

    @cached_property
    def reward(self) -> DataLoader[int, Reward | None]:
        return DataLoader(_by_id(self._read, Reward))

    @cached_property
    def redemption(self) -> DataLoader[int, Redemption | None]:
        return DataLoader(_by_id(self._read, Redemption))

    @cached_property
    def rule_of_entry(self) -> DataLoader[int, int | None]:
        read = self._read
        return DataLoader(
            lambda ids: read(lambda session: rules.rule_ids_of_entries(session, list(ids)))
        )

    @cached_property
    def earning_rule(self) -> DataLoader[int, rules.RuleView | None]:
        read = self._read
        return DataLoader(lambda ids: read(lambda session: rules.rules_by_id(session, list(ids))))
