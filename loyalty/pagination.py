"""Keyset pagination shared by every connection: opaque cursors over integer keys."""

from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from operator import attrgetter
from typing import Any, Generic, TypeVar

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import InstrumentedAttribute
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


async def newest_first_by_owner(
    session: AsyncSession,
    model: Any,
    *,
    owner: InstrumentedAttribute[int],
    owner_ids: Sequence[int],
    page: PageRequest,
) -> dict[int, Page[Any]]:
    """``newest_first`` for many owners at once (a page of members, each with its history) in
    one statement: rows are numbered per owner, newest first, and cut at ``first + 1``."""
    if len(owner_ids) == 1:
        [owner_id] = owner_ids
        return {owner_id: await newest_first(session, model, owner=owner == owner_id, page=page)}
    ranked = select(
        model.id, func.row_number().over(partition_by=owner, order_by=model.id.desc()).label("n")
    ).where(owner.in_(owner_ids))
    if page.after is not None:
        ranked = ranked.where(model.id < page.after)
    numbered = ranked.subquery()
    statement = (
        select(model)
        .join(numbered, numbered.c.id == model.id)
        .where(numbered.c.n <= page.first + 1)
        .order_by(model.id.desc())
    )
    return pages_by_owner(
        (await session.scalars(statement)).all(),
        owner_ids,
        page,
        owner=lambda row: getattr(row, owner.key),
    )


def pages_by_owner(
    rows: Sequence[T],
    owner_ids: Sequence[int],
    page: PageRequest,
    *,
    owner: Callable[[T], int],
    key: Callable[[T], int] | None = None,
) -> dict[int, Page[T]]:
    """Rows of many owners (newest first, at most ``first + 1`` each) as one page per owner."""
    grouped: dict[int, list[T]] = defaultdict(list)
    for row in rows:
        grouped[owner(row)].append(row)
    key_of: Callable[[T], int] = key or attrgetter("id")
    return {
        owner_id: make_page(grouped[owner_id], [key_of(r) for r in grouped[owner_id]], page)
        for owner_id in owner_ids
    }
