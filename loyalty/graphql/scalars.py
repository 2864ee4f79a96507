"""Custom scalars, registered through ``StrawberryConfig.scalar_map``."""

from typing import NewType

import strawberry

DecimalString = NewType("DecimalString", str)


def _parse_decimal(value: object) -> object:
    """Passed through as sent: services parse decimals, so a bad one becomes a UserError."""
    return value


SCALARS = {
    DecimalString: strawberry.scalar(
        name="Decimal",
        description='An exact decimal number as a string, such as "12.50". Never a float.',
        serialize=str,
        parse_value=_parse_decimal,
    )
}
