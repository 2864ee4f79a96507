"""The rule book: every rule version, compiled once per rules token and cached in-process.

Every rule change stores a fresh random ``program.rules_token``. The purchase path reads the
token with the program row it already locks the member with, so a warm cache costs no query;
a process that sees a new token reloads the versions once.
"""

from collections import OrderedDict
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from loyalty.rules.engine import CompiledRule, Conditions, Limits, chain_order
from loyalty.rules.models import EarningRuleVersion, EffectKind
from loyalty.segments import service as segments
from loyalty.segments.filters import SegmentFilter

CACHED_BOOKS = 8


class RuleBook:
    def __init__(
        self, rules: list[CompiledRule], segments: dict[int, SegmentFilter] | None = None
    ) -> None:
        self.rules = chain_order(rules)
        self.segments = segments or {}
        """The filters of the segments rules name (segment edits change the token too)."""

    def in_force(self, at: datetime, *, event_type: str | None = None) -> list[CompiledRule]:
        """The versions governing ``at`` for purchases (or for one event type), chain order."""
        return [
            rule
            for rule in self.rules
            if rule.conditions.event_type == event_type and rule.in_force(at)
        ]


EMPTY = RuleBook([])
_books: "OrderedDict[str, RuleBook]" = OrderedDict()


async def rule_book(session: AsyncSession, token: str | None) -> RuleBook:
    if token is None:
        return EMPTY
    book = _books.get(token)
    if book is None:
        versions = (await session.scalars(select(EarningRuleVersion))).all()
        rules = [compile_version(version) for version in versions]
        named = any(rule.conditions.segment_ids for rule in rules)
        book = RuleBook(rules, await segments.all_filters(session) if named else None)
        _books[token] = book
        while len(_books) > CACHED_BOOKS:
            _books.popitem(last=False)
    return book


def compile_version(version: EarningRuleVersion) -> CompiledRule:
    return CompiledRule(
        rule_id=version.rule_id,
        version_id=version.id,
        version=version.version,
        name=version.name,
        priority=version.priority,
        exclusive=version.exclusive,
        valid_from=version.valid_from,
        valid_to=version.valid_to,
        starts_at=version.starts_at,
        ends_at=version.ends_at,
        conditions=conditions_from(version.conditions),
        effect_kind=EffectKind(version.effect_kind),
        effect_value=Decimal(version.effect_value),
        limits=Limits(**version.limits),
    )


def conditions_from(stored: dict[str, Any]) -> Conditions:
    def as_set(name: str) -> frozenset[Any] | None:
        values = stored.get(name)
        return None if values is None else frozenset(values)

    min_total = stored.get("min_total")
    return Conditions(
        channels=as_set("channels"),
        store_ids=as_set("store_ids"),
        tier_ids=as_set("tier_ids"),
        min_total=None if min_total is None else Decimal(min_total),
        days_of_week=as_set("days_of_week"),
        hours=as_set("hours"),
        first_purchase=stored.get("first_purchase"),
        skus=as_set("skus"),
        categories=as_set("categories"),
        event_type=stored.get("event_type"),
        segment_ids=as_set("segment_ids"),
    )
