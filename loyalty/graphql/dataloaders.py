"""Per-request DataLoaders: a page of members costs one query per related type, not per row."""

from collections import defaultdict
from collections.abc import Awaitable, Callable, Sequence
from functools import cached_property
from typing import Any, TypeVar

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from strawberry.dataloader import DataLoader

from loyalty.db import utcnow
from loyalty.events import service as events
from loyalty.events.models import MemberEvent
from loyalty.feedback import service as feedback
from loyalty.feedback.models import Feedback
from loyalty.ledger import balances
from loyalty.ledger import service as ledger
from loyalty.members.models import Member
from loyalty.pagination import Page, PageRequest
from loyalty.purchases import service as purchases
from loyalty.purchases.models import Purchase
from loyalty.referrals import service as referrals
from loyalty.rewards import service as rewards
from loyalty.rewards.models import Redemption, Reward
from loyalty.rules import service as rules
from loyalty.segments.models import MemberRfm
from loyalty.tiers import service as tiers
from loyalty.tiers.models import Tier, TierChange

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
        progress: list[Any] = await read(
            lambda session: tiers.tier_progress(session, members=members)
        )
        return progress

    return load


PerMember = Callable[[AsyncSession, list[int], Any], Awaitable[dict[int, Any]]]


def _bound(
    fetch: PerMember, member_ids: list[int], argument: Any
) -> Callable[[AsyncSession], Awaitable[dict[int, Any]]]:
    return lambda session: fetch(session, member_ids, argument)


def _per_member(
    read: Read, fetch: PerMember
) -> Callable[[Sequence[tuple[int, Any]]], Awaitable[list[Any]]]:
    """Batches ``(member id, argument)`` keys: one ``fetch`` per distinct argument (a page
    request, a number of days), whatever the number of members."""

    async def load(keys: Sequence[tuple[int, Any]]) -> list[Any]:
        by_argument: dict[Any, list[int]] = defaultdict(list)
        for member_id, argument in keys:
            by_argument[argument].append(member_id)
        found: dict[tuple[int, Any], Any] = {}
        for argument, member_ids in by_argument.items():
            results = await read(_bound(fetch, member_ids, argument))
            found.update(((m, argument), results[m]) for m in member_ids)
        return [found[k] for k in keys]

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
    def ledger(self) -> DataLoader[tuple[int, PageRequest], Page[ledger.EntryView]]:
        return DataLoader(
            _per_member(
                self._read, lambda s, ids, page: ledger.member_entries(s, member_ids=ids, page=page)
            )
        )

    @cached_property
    def purchases(self) -> DataLoader[tuple[int, PageRequest], Page[Purchase]]:
        return DataLoader(
            _per_member(
                self._read,
                lambda s, ids, page: purchases.member_purchases(s, member_ids=ids, page=page),
            )
        )

    @cached_property
    def feedback(self) -> DataLoader[tuple[int, PageRequest], Page[Feedback]]:
        return DataLoader(
            _per_member(
                self._read,
                lambda s, ids, page: feedback.member_feedback(s, member_ids=ids, page=page),
            )
        )

    @cached_property
    def redemptions(self) -> DataLoader[tuple[int, PageRequest], Page[Redemption]]:
        return DataLoader(
            _per_member(
                self._read,
                lambda s, ids, page: rewards.member_redemptions(s, member_ids=ids, page=page),
            )
        )

    @cached_property
    def events(self) -> DataLoader[tuple[int, PageRequest], Page[MemberEvent]]:
        return DataLoader(
            _per_member(
                self._read, lambda s, ids, page: events.member_events(s, member_ids=ids, page=page)
            )
        )

    @cached_property
    def tier_history(self) -> DataLoader[tuple[int, PageRequest], Page[TierChange]]:
        return DataLoader(
            _per_member(
                self._read, lambda s, ids, page: tiers.tier_history(s, member_ids=ids, page=page)
            )
        )

    @cached_property
    def referral_counts(self) -> DataLoader[tuple[int, None], tuple[int, int]]:
        return DataLoader(
            _per_member(
                self._read, lambda s, ids, _: referrals.referral_counts(s, referrer_ids=ids)
            )
        )

    @cached_property
    def expiring_soon(self) -> DataLoader[tuple[int, int], int]:
        """Keyed by (member id, days)."""
        return DataLoader(
            _per_member(
                self._read,
                lambda s, ids, days: balances.expiring_soon(
                    s, member_ids=ids, days=days, now=utcnow()
                ),
            )
        )

    @cached_property
    def expiring_points(self) -> DataLoader[tuple[int, int], list[balances.Scheduled]]:
        """Keyed by (member id, first)."""
        return DataLoader(
            _per_member(
                self._read,
                lambda s, ids, first: balances.expiring_points(s, member_ids=ids, first=first),
            )
        )

    @cached_property
    def pending_releases(self) -> DataLoader[tuple[int, None], list[balances.Scheduled]]:
        return DataLoader(
            _per_member(self._read, lambda s, ids, _: balances.pending_releases(s, member_ids=ids))
        )

    @cached_property
    def rfm(self) -> DataLoader[int, MemberRfm | None]:
        read = self._read

        async def load(ids: Sequence[int]) -> list[MemberRfm | None]:
            rows = await read(
                lambda session: session.scalars(
                    select(MemberRfm).where(MemberRfm.member_id.in_(ids))
                )
            )
            found = {row.member_id: row for row in rows}
            return [found.get(i) for i in ids]

        return DataLoader(load)

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
