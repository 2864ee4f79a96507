"""Parsing of decimal strings and money: exact decimals only, never floats."""

import re
from decimal import Decimal

from loyalty.errors import DomainError, ErrorCode, invalid

_PLAIN_DECIMAL = re.compile(r"^-?\d{1,14}(\.\d{1,4})?$")
_CURRENCY = re.compile(r"^[A-Z]{3}$")


def parse_decimal(value: object, *field: str) -> Decimal:
    """A decimal from a plain string such as "12.50": no exponents, NaN, floats or huge values."""
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise invalid('Must be a decimal string such as "12.50".', *field)
    text = str(value).strip()
    if not _PLAIN_DECIMAL.match(text):
        raise invalid(
            f'{text[:40]!r} is not a decimal such as "12.50" '
            "(at most 14 digits before and 4 after the point).",
            *field,
        )
    return Decimal(text)


def parse_positive_amount(value: object, *field: str) -> Decimal:
    amount = parse_decimal(value, *field)
    if amount <= 0:
        raise invalid("Must be greater than zero.", *field)
    return amount


def parse_non_negative_amount(value: object, *field: str) -> Decimal:
    amount = parse_decimal(value, *field)
    if amount < 0:
        raise invalid("Must not be negative.", *field)
    return amount


def parse_currency(value: str, *field: str) -> str:
    code = value.strip().upper()
    if not _CURRENCY.match(code):
        raise invalid('Must be an ISO 4217 currency code such as "USD".', *field)
    return code


def require_currency(value: str, expected: str, *field: str) -> str:
    code = parse_currency(value, *field)
    if code != expected:
        raise DomainError(
            ErrorCode.CURRENCY_NOT_SUPPORTED,
            f"This program runs in {expected}; {code} is not accepted.",
            list(field),
        )
    return code


def plain(value: Decimal) -> str:
    """A decimal without exponent or trailing zeros: Decimal("10.0000") -> "10"."""
    return format(value.normalize(), "f")


def format_amount(amount: Decimal) -> str:
    """Money as clients expect it: at least two decimals ("26.50"), more only when stored."""
    cents = amount.quantize(Decimal("0.01"))
    return str(cents) if cents == amount else plain(amount)
