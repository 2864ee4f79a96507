"""An earning rule's conditions, effect and limits, defined once.

The engine evaluates these models, the service stores them (``stored`` / ``from_stored``
over the JSON columns, whose shape is unchanged, so existing rows read as before) and the
GraphQL layer maps its inputs and outputs onto them. Validating one collects every field
error at once (``loyalty.inputs.parse``), each with the camelCase path clients sent it under.
"""

import re
from dataclasses import asdict, fields
from datetime import datetime
from decimal import Decimal
from typing import Annotated, Any, TypeVar

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    PlainSerializer,
    TypeAdapter,
    ValidationInfo,
    field_validator,
)
from pydantic.dataclasses import dataclass

from loyalty.errors import DomainError, invalid
from loyalty.inputs import checked, field_path, refused
from loyalty.money import parse_decimal, parse_non_negative_amount
from loyalty.rules.models import EarningRuleVersion, EffectKind
from loyalty.validation import instant, int_between, required_text

DAYS_OF_WEEK = ("MONDAY", "TUESDAY", "WEDNESDAY", "THURSDAY", "FRIDAY", "SATURDAY", "SUNDAY")
MAX_VALUES = 1000
MAX_LIMIT = 1_000_000_000
EVENT_TYPE = re.compile(r"^[a-z0-9][a-z0-9_.:-]{0,63}$")

D = TypeVar("D")


def _as_written(cls: type[D], values: dict[str, Any]) -> D:
    """An instance of a definition dataclass from stored values, without re-checking them."""
    instance = object.__new__(cls)
    for field in fields(cls):  # type: ignore[arg-type]  # cls is a dataclass
        object.__setattr__(instance, field.name, values.get(field.name, field.default))
    return instance


def _listed(values: Any) -> Any:
    if values is None:
        return None
    if not values:
        raise refused("Give at least one value, or leave the condition out.")
    if len(values) > MAX_VALUES:
        raise refused(f"At most {MAX_VALUES} values.")
    return values


def _texts(values: Any) -> Any:
    listed = _listed(values)
    if listed is None:
        return None
    return [checked(lambda v: required_text(v, 64), value) for value in listed]


def _hours(values: Any) -> Any:
    listed = _listed(values)
    if listed is None:
        return None
    return [checked(lambda h: int_between(h, 0, 23), hour) for hour in listed]


def _min_total(value: Any) -> Decimal | None:
    if value is None or isinstance(value, Decimal):
        return value
    amount: Decimal = checked(parse_non_negative_amount, value)
    return amount


def _event_type(value: Any) -> str | None:
    if value is None:
        return None
    event_type = str(value).strip().lower()
    if not EVENT_TYPE.match(event_type):
        raise refused("Lower-case letters, digits and _ . : - (at most 64).")
    return event_type


def _sorted(values: frozenset[Any]) -> list[Any]:
    return sorted(values)


Listed = BeforeValidator(_listed)
AsString = PlainSerializer(str, return_type=str, when_used="unless-none")
AsSortedList = PlainSerializer(_sorted, return_type=list, when_used="unless-none")


@dataclass(frozen=True, config=ConfigDict(extra="forbid"))
class Conditions:
    """Every condition that is set must hold; None means "any". Stored without the Nones."""

    channels: Annotated[frozenset[str] | None, Listed, AsSortedList] = None
    store_ids: Annotated[frozenset[str] | None, BeforeValidator(_texts), AsSortedList] = None
    tier_ids: Annotated[frozenset[int] | None, Listed, AsSortedList] = None
    min_total: Annotated[
        Decimal | None,
        BeforeValidator(_min_total),
        PlainSerializer(str, return_type=str, when_used="unless-none"),
    ] = None
    days_of_week: Annotated[frozenset[int] | None, Listed, AsSortedList] = None
    """0 = Monday, in the program's time zone."""
    hours: Annotated[frozenset[int] | None, BeforeValidator(_hours), AsSortedList] = None
    """Hours of the day (0-23) in the program's time zone."""
    first_purchase: bool | None = None
    skus: Annotated[frozenset[str] | None, BeforeValidator(_texts), AsSortedList] = None
    categories: Annotated[frozenset[str] | None, BeforeValidator(_texts), AsSortedList] = None
    event_type: Annotated[str | None, BeforeValidator(_event_type)] = None
    """Set: the rule matches that event type only; unset: purchases only."""
    segment_ids: Annotated[frozenset[int] | None, AsSortedList] = None
    """The member must be in one of these segments (as of the evaluation); the service
    checks them against the segments table."""

    @property
    def filters_lines(self) -> bool:
        return self.skus is not None or self.categories is not None

    def stored(self) -> dict[str, Any]:
        stored: dict[str, Any] = TypeAdapter(Conditions).dump_python(
            self, mode="json", exclude_none=True
        )
        return stored

    @classmethod
    def from_stored(cls, stored: dict[str, Any]) -> "Conditions":
        """Rows are read as written, not re-checked: a bound tightened later must not make
        an old version unreadable."""
        values = {name: value for name, value in stored.items() if value is not None}
        for name in _SETS.intersection(values):
            values[name] = frozenset(values[name])
        if "min_total" in values:
            values["min_total"] = Decimal(values["min_total"])
        return _as_written(cls, values)


_SETS = frozenset(
    {"channels", "store_ids", "tier_ids", "days_of_week", "hours", "skus", "categories"}
    | {"segment_ids"}
)


PURCHASE_ONLY = ("channels", "store_ids", "min_total", "first_purchase", "skus", "categories")
"""Conditions an event rule may not have."""


@dataclass(frozen=True, config=ConfigDict(extra="forbid"))
class Effect:
    """What a rule awards when its conditions hold."""

    kind: EffectKind
    value: Decimal

    @field_validator("value", mode="before")
    @classmethod
    def _value(cls, value: Any, info: ValidationInfo) -> Decimal:
        amount: Decimal = value if isinstance(value, Decimal) else checked(parse_decimal, value)
        if info.data.get("kind") == EffectKind.MULTIPLY:
            if not Decimal(1) < amount <= Decimal(100):
                raise refused(
                    "A multiplier must be above 1 (it adds base × (value − 1)) and at most 100.",
                )
        elif not Decimal(0) < amount <= Decimal(1_000_000):
            raise refused("Must be above 0 and at most 1000000.")
        return amount


def _cap(value: Any) -> Any:
    return None if value is None else checked(lambda v: int_between(v, 1, MAX_LIMIT), value)


Cap = Annotated[int | None, BeforeValidator(_cap)]


@dataclass(frozen=True, config=ConfigDict(extra="forbid"))
class Limits:
    """Caps on a rule's points, each 1 to MAX_LIMIT; None: no cap. Stored without the Nones."""

    per_purchase: Cap = None
    per_member_per_day: Cap = None
    per_member_per_week: Cap = None
    per_member_per_month: Cap = None
    per_member_total: Cap = None
    budget: Cap = None

    @property
    def per_member(self) -> bool:
        return any(
            cap is not None
            for cap in (
                self.per_member_per_day,
                self.per_member_per_week,
                self.per_member_per_month,
                self.per_member_total,
            )
        )

    def stored(self) -> dict[str, int]:
        return {name: cap for name, cap in asdict(self).items() if cap is not None}

    @classmethod
    def from_stored(cls, stored: dict[str, Any]) -> "Limits":
        return _as_written(cls, stored)


def _instant(value: Any) -> Any:
    return None if value is None else checked(instant, value)


def _name(value: Any) -> str:
    return str(checked(lambda v: required_text(v, 200), value))


def _priority(value: Any) -> Any:
    return (
        None if value is None else checked(lambda v: int_between(v, -1_000_000, 1_000_000), value)
    )


def _not_null(value: Any) -> Any:
    if value is None:
        raise refused("Must not be null.")
    return value


class RuleDraft(BaseModel):
    """What an admin sends, each field checked on its own. Only the fields sent are set
    (``model_fields_set``): on an update the others keep the current version's value."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: Annotated[str | None, BeforeValidator(_name)] = None
    starts_at: Annotated[datetime | None, BeforeValidator(_instant)] = None
    ends_at: Annotated[datetime | None, BeforeValidator(_instant)] = None
    priority: Annotated[int | None, BeforeValidator(_priority)] = None
    exclusive: bool | None = None
    conditions: Conditions | None = None
    effect: Annotated[Effect | None, BeforeValidator(_not_null)] = None
    limits: Limits | None = None

    def sent(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in self.model_fields_set}


def effect_of(version: EarningRuleVersion) -> Effect:
    """A stored version's effect (its two columns), read as written."""
    return _as_written(
        Effect, {"kind": EffectKind(version.effect_kind), "value": Decimal(version.effect_value)}
    )


def event_rule_errors(conditions: Conditions, effect: Effect) -> list[DomainError]:
    """An event rule gives a fixed bonus, and conditions on a purchase do not apply to it."""
    if conditions.event_type is None:
        return []
    errors = [
        invalid("Does not apply to an event rule.", *field_path(("conditions", name)))
        for name in PURCHASE_ONLY
        if getattr(conditions, name) is not None
    ]
    if effect.kind != EffectKind.FIXED_BONUS:
        errors.insert(0, invalid("An event rule's effect must be FIXED_BONUS.", "effect", "kind"))
    return errors
