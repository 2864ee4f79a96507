"""Opaque global IDs: base64url("Type:pk"), so clients never depend on key shapes."""

import base64
import binascii


def encode_id(type_name: str, pk: int) -> str:
    return base64.urlsafe_b64encode(f"{type_name}:{pk}".encode()).decode().rstrip("=")


def parse_key(text: str) -> int | None:
    """A primary key written as ASCII digits that fits a BIGINT, or None.

    ``str.isdigit`` alone admits "²" and other Unicode digits that ``int`` refuses, and a long
    run of digits would overflow the column.
    """
    if not text.isascii() or not text.isdigit() or len(text) > 18:
        return None
    return int(text)


def decode_id(type_name: str, global_id: str) -> int | None:
    """The primary key an ID names, or None when it is not an ID of this type."""
    if not global_id or len(global_id) > 64:
        return None
    try:
        raw = base64.urlsafe_b64decode(global_id + "=" * (-len(global_id) % 4)).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError):
        return None
    prefix, _, pk = raw.partition(":")
    return parse_key(pk) if prefix == type_name else None


def key_or_zero(type_name: str, global_id: str) -> int:
    """The key an ID names, or 0 (which names no row) so lookups answer NOT_FOUND."""
    return decode_id(type_name, global_id) or 0


GLOBAL_ID_FUNCTION = "loyalty_global_id"
"""``encode_id`` in SQL, for set-based jobs: a SQL function on PostgreSQL (migration 0012),
``global_id_sqlite`` registered on each SQLite connection."""


def global_id_sqlite(type_name: str | None, pk: int | None) -> str | None:
    return None if type_name is None or pk is None else encode_id(type_name, pk)
