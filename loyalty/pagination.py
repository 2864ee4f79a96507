"""Keyset pagination shared by every connection: opaque cursors over integer keys."""

from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql.elements import ColumnElement

from loyalty.errors import invalid
from loyalty.ids import decode_id, encode_id

T = TypeVar("T")
_CURSOR = "cursor"


@dataclass(frozen=True)
class PageRequest:
    first: int
    after: int | None


@dataclass(frozen=True)
class Page(Generic[T]):
    items: list[T]
    keys: list[int]
    has_next: bool


def encode_cursor(key: int) -> str:
    return encode_id(_CURSOR, key)


def page_request(first: int | None, after: str | None, *, max_size: int) -> PageRequest:
    size = max_size if first is None else first
    if not 0 <= size <= max_size:
        raise invalid(f"first must be between 0 and {max_size}.", "first")
    key = None
    if after is not None:
        key = decode_id(_CURSOR, after)
        if key is None:
            raise invalid("after is not a cursor from this connection.", "after")
    return PageRequest(first=size, after=key)


def make_page(rows: list[T], keys: list[int], request: PageRequest) -> Page[T]:
    """Rows were fetched with limit first + 1: the extra row only says there is a next page."""
    return Page(
        items=rows[: request.first],
        keys=keys[: request.first],
        has_next=len(rows) > request.first,
    )


async def newest_first(
    session: AsyncSession, model: Any, *, owner: ColumnElement[bool], page: PageRequest
) -> Page[Any]:
    """A page of ``model`` rows matching ``owner`` (e.g. one member's), newest (highest id)
    first: the shape of every per-member history in the API."""
    statement = select(model).where(owner).order_by(model.id.desc()).limit(page.first + 1)
    if page.after is not None:
        statement = statement.where(model.id < page.after)
    rows = list((await session.scalars(statement)).all())
    return make_page(rows, [row.id for row in rows], page)
