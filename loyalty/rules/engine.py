"""Evaluating earning rules: pure functions over compiled rule versions, no database.

A purchase (or an event) earns base points, then each rule in force at its ``occurredAt``
is tried in chain order (highest priority first, then oldest rule). A rule whose conditions
all hold proposes points, floored; the per-purchase cap, the member's remaining caps and the
campaign's remaining budget cut it down; an exclusive rule that awards points ends the chain.
"""

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from decimal import ROUND_FLOOR, Decimal

from loyalty.rules.definition import Conditions, Effect, Limits
from loyalty.rules.models import EffectKind


@dataclass(frozen=True)
class CompiledRule:
    """One version of one rule, ready to evaluate."""

    rule_id: int
    version_id: int
    version: int
    name: str
    priority: int
    exclusive: bool
    valid_from: datetime | None
    valid_to: datetime | None
    starts_at: datetime | None
    ends_at: datetime | None
    conditions: Conditions
    effect: Effect
    limits: Limits

    def in_force(self, at: datetime) -> bool:
        """This version governed ``at``, and ``at`` lies in the rule's active window."""
        return (
            (self.valid_from is None or self.valid_from <= at)
            and (self.valid_to is None or at < self.valid_to)
            and (self.starts_at is None or self.starts_at <= at)
            and (self.ends_at is None or at < self.ends_at)
        )


def chain_order(rules: Iterable[CompiledRule]) -> list[CompiledRule]:
    return sorted(rules, key=lambda rule: (-rule.priority, rule.rule_id, rule.version))


@dataclass(frozen=True)
class Line:
    sku: str | None
    category: str | None
    quantity: int
    amount: Decimal
    """quantity × unit price (0 when the line carries no price)."""


@dataclass(frozen=True)
class Occasion:
    """What the rules are matched against: a purchase, or an event (no lines, no total)."""

    local_time: datetime
    """occurredAt in the program's time zone."""
    tier_id: int | None
    multiplier: Decimal
    points_per_unit: Decimal
    total: Decimal = Decimal(0)
    channel: str | None = None
    store_id: str | None = None
    lines: tuple[Line, ...] = ()
    event_type: str | None = None
    first_purchase: bool = False
    segment_ids: frozenset[int] = frozenset()
    """The segments the member is in, among those the rules in force name."""


@dataclass(frozen=True)
class Award:
    rule: CompiledRule
    points: int


def floor(value: Decimal) -> int:
    return int(value.to_integral_value(rounding=ROUND_FLOOR))


def proposed(rule: CompiledRule, occasion: Occasion) -> int | None:
    """The points the rule would add before its caps; None when a condition fails."""
    when = rule.conditions
    if when.event_type != occasion.event_type:
        return None
    if not _conditions_hold(when, occasion):
        return None
    if when.filters_lines:
        lines = [line for line in occasion.lines if _line_matches(when, line)]
        if not lines:
            return None
        # Never more than was paid: a basket discount can leave the total below the lines.
        amount = min(sum((line.amount for line in lines), Decimal(0)), occasion.total)
    else:
        lines = list(occasion.lines)
        amount = occasion.total
    value = rule.effect.value
    match rule.effect.kind:
        case EffectKind.MULTIPLY:
            base = amount * occasion.points_per_unit * occasion.multiplier
            return floor(base * (value - 1))
        case EffectKind.FIXED_BONUS:
            return floor(value)
        case EffectKind.POINTS_PER_UNIT:
            return floor(value * sum(line.quantity for line in lines))
        case EffectKind.POINTS_PER_CURRENCY:
            return floor(value * amount)
    raise ValueError(rule.effect.kind)


def _conditions_hold(when: Conditions, occasion: Occasion) -> bool:
    return (
        (when.channels is None or occasion.channel in when.channels)
        and (when.store_ids is None or occasion.store_id in when.store_ids)
        and (when.tier_ids is None or occasion.tier_id in when.tier_ids)
        and (when.min_total is None or occasion.total >= when.min_total)
        and (when.days_of_week is None or occasion.local_time.weekday() in when.days_of_week)
        and (when.hours is None or occasion.local_time.hour in when.hours)
        and (when.first_purchase is None or when.first_purchase == occasion.first_purchase)
        and (when.segment_ids is None or not when.segment_ids.isdisjoint(occasion.segment_ids))
    )


def _line_matches(when: Conditions, line: Line) -> bool:
    return (when.skus is not None and line.sku in when.skus) or (
        when.categories is not None and line.category in when.categories
    )


Room = Callable[[CompiledRule], int | None]
"""Points the member's caps and the campaign budget still allow for a rule (None: no limit)."""


def evaluate(rules: list[CompiledRule], occasion: Occasion, room: Room) -> list[Award]:
    """Each rule's award, in chain order; rules that add nothing are left out."""
    awards: list[Award] = []
    for rule in rules:
        points = proposed(rule, occasion)
        if points is None:
            continue
        if rule.limits.per_purchase is not None:
            points = min(points, rule.limits.per_purchase)
        left = room(rule)
        if left is not None:
            points = min(points, max(left, 0))
        if points <= 0:
            continue
        awards.append(Award(rule=rule, points=points))
        if rule.exclusive:
            break
    return awards
