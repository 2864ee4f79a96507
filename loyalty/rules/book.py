"""The rule book: every rule version, compiled once per rules token and cached in-process.

Every rule change stores a fresh random ``program.rules_token``. The purchase path reads the
token with the program row it already locks the member with, so a warm cache costs no query;
a process that sees a new token reloads the versions once.
"""

from collections import OrderedDict
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from loyalty.rules.definition import Conditions, Limits, effect_of
from loyalty.rules.engine import CompiledRule, chain_order
from loyalty.rules.models import EarningRuleVersion
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
        conditions=Conditions.from_stored(version.conditions),
        effect=effect_of(version),
        limits=Limits.from_stored(version.limits),
    )
