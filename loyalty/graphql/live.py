"""Subscriptions (graphql-transport-ws on /graphql): ``memberUpdated`` and ``events``.

Pushes come from the process's ``Feed`` (``loyalty.outbox.live``); each one is loaded from the
database and goes through the same role permissions and per-type access as a query. Before
every push the connection's credentials are checked again, so a revoked key, an expired token
or a closed member ends the subscription.
"""

from collections.abc import AsyncGenerator
from datetime import datetime
from typing import Annotated

import strawberry
from graphql import GraphQLError
from strawberry.scalars import JSON

from loyalty.errors import ErrorCode
from loyalty.graphql.context import SubscriptionContext
from loyalty.graphql.members import Member
from loyalty.graphql.permissions import IsAdmin, IsMember
from loyalty.ids import encode_id
from loyalty.members import service as members
from loyalty.members.models import Member as MemberRow
from loyalty.metrics import SUBSCRIPTIONS
from loyalty.outbox.live import LiveEvent
from loyalty.outbox.service import EVENT_TYPES

EVENT_LIST = ", ".join(EVENT_TYPES)


@strawberry.type(description="A domain event, as webhooks receive it. Admin only.")
class Event:
    id: str = strawberry.field(description="The event's id (a UUID): webhooks' webhook-id.")
    type: str = strawberry.field(description=f"What happened: {EVENT_LIST}.")
    occurred_at: datetime = strawberry.field(description="When the change happened.")
    member_id: strawberry.ID | None = strawberry.field(
        description="The member it concerns; null for none."
    )
    data: JSON = strawberry.field(
        description="The objects involved, shaped as the GraphQL types show them."
    )


def _event(live: LiveEvent) -> Event:
    member_id = (
        None if live.member_id is None else strawberry.ID(encode_id("Member", live.member_id))
    )
    return Event(
        id=live.event_id,
        type=live.type,
        occurred_at=live.occurred_at,
        member_id=member_id,
        data=live.data,
    )


def _signed_out() -> GraphQLError:
    return GraphQLError(
        "The connection's credentials no longer hold (revoked, expired or closed).",
        extensions={"code": "UNAUTHENTICATED"},
    )


def _context(info: strawberry.Info) -> SubscriptionContext:
    context = info.context
    if not isinstance(context, SubscriptionContext):
        raise GraphQLError(
            "Subscriptions run over WebSocket (graphql-transport-ws) on /graphql.",
            extensions={"code": "BAD_REQUEST"},
        )
    return context


@strawberry.type(
    description="Live updates over WebSocket: graphql-transport-ws on /graphql, credentials in "
    'connection_init\'s payload as {"Authorization": "Bearer <token>"}.'
)
class Subscription:
    @strawberry.subscription(
        permission_classes=[IsMember],
        description="The token's own member, pushed after every committed change to it "
        "(balances, tier, profile, status): one push per transaction. Subscribe first, then "
        "query me, and nothing is missed. Member tokens only.",
    )
    async def member_updated(self, info: strawberry.Info) -> AsyncGenerator[Member, None]:
        context = _context(info)
        member_id = context.principal.member_id or 0
        async with context.feed.member(member_id) as changed:
            with SUBSCRIPTIONS.labels("memberUpdated").track_inprogress():
                while True:
                    await changed.wait()
                    changed.clear()
                    if not await context.still_signed_in():
                        raise _signed_out()
                    await context.refresh_reads()
                    member: MemberRow = await context.read(
                        lambda session: members.get_member(session, member_id=member_id)
                    )
                    yield member  # type: ignore[misc]  # a Member row; the type resolves it

    @strawberry.subscription(
        permission_classes=[IsAdmin],
        description="Every event committed from now on, in write order per transaction, "
        "optionally only some types. A subscriber more than 1,000 events behind is ended "
        "with TOO_SLOW. Admin only.",
    )
    async def events(
        self,
        info: strawberry.Info,
        types: Annotated[
            list[str] | None,
            strawberry.argument(description=f"Only these types ({EVENT_LIST}); null: all."),
        ] = None,
    ) -> AsyncGenerator[Event, None]:
        context = _context(info)
        unknown = sorted(set(types or ()) - set(EVENT_TYPES))
        if unknown:
            raise GraphQLError(
                f"Unknown event types: {', '.join(unknown)}.",
                extensions={"code": ErrorCode.INVALID.value, "field": ["types"]},
            )
        wanted = None if types is None else frozenset(types)
        async with context.feed.events(wanted) as watcher:
            with SUBSCRIPTIONS.labels("events").track_inprogress():
                while True:
                    live = await watcher.queue.get()
                    if live is None:
                        raise GraphQLError(
                            "The subscriber fell too far behind; subscribe again.",
                            extensions={"code": "TOO_SLOW"},
                        )
                    if not await context.still_signed_in():
                        raise _signed_out()
                    yield _event(live)
