"""Custom scalars, registered through ``StrawberryConfig.scalar_map``."""

import dataclasses
from datetime import date, datetime
from typing import NewType

import strawberry
from strawberry.scalars import JSON
from strawberry.schema.types.scalar import DEFAULT_SCALAR_REGISTRY
from strawberry.types.scalar import ScalarDefinition

DecimalString = NewType("DecimalString", str)


def _parse_decimal(value: object) -> object:
    """Passed through as sent: the input models parse it (``loyalty.money``, the one place
    a decimal's form and precision are checked), so a bad one is a UserError naming its field
    beside the input's other errors, not a GraphQL error."""
    return value


def _described(python_type: object, description: str) -> ScalarDefinition:
    """Strawberry's own scalar, parsed and serialized as before, with a description for clients."""
    return dataclasses.replace(DEFAULT_SCALAR_REGISTRY[python_type], description=description)


SCALARS: dict[object, ScalarDefinition] = {
    DecimalString: strawberry.scalar(
        name="Decimal",
        description='An exact decimal number as a string, such as "12.50". Never a float.',
        serialize=str,
        parse_value=_parse_decimal,
    ),
    date: _described(date, "A calendar date in ISO 8601, such as 2026-03-01."),
    datetime: _described(
        datetime,
        "An instant in ISO 8601 with its UTC offset, such as 2026-03-01T12:00:00+00:00. "
        "Always send the offset.",
    ),
    JSON: _described(
        JSON,
        "Any JSON value, sent and returned as JSON itself rather than as a string.",
    ),
}
