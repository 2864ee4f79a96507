"""Relay connections over the keyset pages services return."""

from collections.abc import Awaitable, Callable
from typing import Annotated, Generic, TypeVar

import strawberry

from loyalty.pagination import Page, PageRequest, encode_cursor, page_request

T = TypeVar("T")

First = Annotated[
    int | None,
    strawberry.argument(
        description="Page size, 0 up to the server's limit (100 by default); omitted: the limit."
    ),
]
After = Annotated[
    str | None,
    strawberry.argument(
        description="The previous page's pageInfo.endCursor; omitted: the first page."
    ),
]


@strawberry.type(description="Where a page lies in its list, and the cursors to ask for the next.")
class PageInfo:
    has_next_page: bool = strawberry.field(
        description="More items follow: ask again with after set to endCursor."
    )
    has_previous_page: bool = strawberry.field(
        description="True when the page was asked for with after (it is not the first page)."
    )
    start_cursor: str | None = strawberry.field(
        description="The first edge's cursor; null for an empty page."
    )
    end_cursor: str | None = strawberry.field(
        description="The last edge's cursor, to pass as after; null for an empty page."
    )


@strawberry.type(description="One item of a page and the cursor that points at it.")
class Edge(Generic[T]):
    cursor: str = strawberry.field(
        description="Opaque; pass it as after to continue the list after this item."
    )
    node: T = strawberry.field(description="The item.")


@strawberry.type(
    description="One page of a list, in the order its field states, and how to fetch the next."
)
class Connection(Generic[T]):
    edges: list[Edge[T]] = strawberry.field(description="The page's items, in list order.")
    page_info: PageInfo = strawberry.field(description="Whether more follow, and the cursors.")


def to_connection(page: Page[T], *, after_given: bool) -> Connection[T]:
    cursors = [encode_cursor(key) for key in page.keys]
    return Connection(
        edges=[Edge(cursor=c, node=n) for c, n in zip(cursors, page.items, strict=True)],
        page_info=PageInfo(
            has_next_page=page.has_next,
            has_previous_page=after_given,
            start_cursor=cursors[0] if cursors else None,
            end_cursor=cursors[-1] if cursors else None,
        ),
    )


async def paged(
    info: strawberry.Info,
    first: int | None,
    after: str | None,
    fetch: Callable[[PageRequest], Awaitable[Page[T]]],
) -> Connection[T]:
    """Every list field's one way to a page: first and after checked against the server's page
    size limit, the page fetched for that request, and its connection."""
    request = page_request(first, after, max_size=info.context.settings.page_size_max)
    return to_connection(await fetch(request), after_given=after is not None)
