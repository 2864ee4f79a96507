"""Input checks shared by the services; each failure names the input field it is about."""

import re
from datetime import UTC, datetime
from typing import Final, TypeVar

from loyalty.errors import invalid


class Unset:
    """Marks an optional update field the caller did not send (distinct from null)."""

    _instance: "Unset | None" = None

    def __new__(cls) -> "Unset":
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "UNSET"

    def __bool__(self) -> bool:
        return False


UNSET: Final = Unset()
T = TypeVar("T")

_EMAIL = re.compile(r"^[^@\s]{1,64}@[^@\s]+\.[^@\s]{2,}$")
_PHONE = re.compile(r"^\+[1-9]\d{6,14}$")
_PHONE_SEPARATORS = re.compile(r"[\s\-().]")


_UNSTORABLE = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\ud800-\udfff]")
"""Control characters (tab and newlines aside) and lone UTF-16 surrogates: no database
stores them faithfully (PostgreSQL refuses NUL) and no client means them."""


def storable(value: str) -> bool:
    return _UNSTORABLE.search(value) is None


def lookup_key(value: str) -> str | None:
    """A client-given key to look something up by, or None when it cannot name anything."""
    text = value.strip()
    return text if text and len(text) <= 256 and storable(text) else None


def required_text(value: str | None, max_length: int, *field: str) -> str:
    text = (value or "").strip()
    if not text:
        raise invalid("Must not be empty.", *field)
    if len(text) > max_length:
        raise invalid(f"Must be at most {max_length} characters.", *field)
    if not storable(text):
        raise invalid("Must not contain control characters.", *field)
    return text


def optional_text(value: str | None, max_length: int, *field: str) -> str | None:
    if value is None or not value.strip():
        return None
    return required_text(value, max_length, *field)


def email(value: str | None, *field: str) -> str | None:
    text = optional_text(value, 254, *field)
    if text is None:
        return None
    if not _EMAIL.match(text):
        raise invalid(f"{text[:60]!r} is not an email address.", *field)
    local, _, domain = text.rpartition("@")
    return f"{local}@{domain.lower()}"


def phone(value: str | None, *field: str) -> str | None:
    """Phone numbers in E.164 form (+ and country code); spaces, dashes and brackets dropped."""
    text = optional_text(value, 32, *field)
    if text is None:
        return None
    number = _PHONE_SEPARATORS.sub("", text)
    if not _PHONE.match(number):
        raise invalid(f"{text!r} is not a phone number in E.164 form such as +14155550100.", *field)
    return number


def int_between(value: int, low: int, high: int, *field: str) -> int:
    if not low <= value <= high:
        raise invalid(f"Must be between {low} and {high}.", *field)
    return value


EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)
LATEST = datetime(2999, 12, 31, tzinfo=UTC)


def instant(value: datetime, *field: str) -> datetime:
    """A timezone-aware instant within 1970-2999 (beyond, no database stores it faithfully)."""
    if value.tzinfo is None:
        raise invalid("Must carry a timezone.", *field)
    if not EARLIEST <= value <= LATEST:
        raise invalid("Must be between 1970 and 2999.", *field)
    return value


def not_null(value: T | None, *field: str) -> T:
    if value is None:
        raise invalid("Must not be null.", *field)
    return value


def json_depth(value: object) -> int:
    """How deeply ``value`` nests, counted without recursion."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        item, depth = stack.pop()
        deepest = max(deepest, depth)
        if isinstance(item, dict):
            stack.extend((child, depth + 1) for child in item.values())
        elif isinstance(item, list):
            stack.extend((child, depth + 1) for child in item)
    return deepest
