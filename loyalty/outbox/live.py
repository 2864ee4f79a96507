"""Live updates: committed events reach this process's subscribers (GraphQL subscriptions).

How a commit becomes a push:

- PostgreSQL: a statement-level trigger on the events table (migration 0019) calls
  ``pg_notify('loyalty_events', payload)`` for every statement that inserts events, with the
  range of ids it inserted and the members they concern (null past 500 members).
  PostgreSQL delivers a notification on commit only (never for a rolled-back transaction) to
  every connection that ``LISTEN``s, so every server process learns of every change. Each
  process holds one ``LISTEN`` connection (asyncpg), opened when its first subscriber arrives.
- SQLite: after ``COMMIT``, the notice goes straight to this process's feeds (an embedded
  SQLite database serves one server process).

The payload is ``{"e": [[first, last], ...], "m": [member ids] or null}``: ranges of event ids
and the members they concern (null when unknown or too many; the feed then looks them up among
the events). On SQLite ``emit`` and ``emit_select`` note them on the session (``Written``); the
trigger's payload stays under NOTIFY's 8,000 bytes, one range and at most 500 members.

A ``Feed`` wakes member subscribers from the member ids alone (no query) and loads events only
while an ``events`` subscriber is open, with the types one asks for. A range may take in events
of another transaction that committed meanwhile; the feed remembers the ids it passed on
recently, so none is sent twice.
"""

import asyncio
import contextlib
import json
import logging
from collections import deque
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import asyncpg
from sqlalchemy import event, or_, select
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session

from loyalty.db import Database
from loyalty.outbox.models import Event

logger = logging.getLogger("loyalty.live")

CHANNEL = "loyalty_events"
PENDING = "loyalty_live_pending"
"""``Session.info`` key: what the transaction wrote, for the commit hooks."""
PAYLOAD_BYTES = 7000
QUEUE_LIMIT = 1000
"""Events an ``events`` subscriber may have waiting before it is dropped as too slow."""
REMEMBERED = 10_000
BATCH = 1000
RECONNECT_SECONDS = 1.0


@dataclass
class Written:
    """The events one transaction wrote."""

    ids: list[int] = field(default_factory=list)
    ranges: list[tuple[int, int]] = field(default_factory=list)
    members: set[int] | None = field(default_factory=set)

    def payload(self) -> str:
        spans = _spans(self.ids, self.ranges)
        members = None if self.members is None else sorted(self.members)
        text = json.dumps({"e": spans, "m": members}, separators=(",", ":"))
        if len(text) > PAYLOAD_BYTES:
            whole = [[min(s[0] for s in spans), max(s[1] for s in spans)]]
            text = json.dumps({"e": whole, "m": None}, separators=(",", ":"))
        return text


def _spans(ids: Iterable[int], ranges: Iterable[tuple[int, int]]) -> list[list[int]]:
    """Ids and ranges merged into sorted, non-adjacent ranges."""
    spans: list[list[int]] = []
    for first, last in sorted([*((i, i) for i in ids), *ranges]):
        if spans and first <= spans[-1][1] + 1:
            spans[-1][1] = max(spans[-1][1], last)
        else:
            spans.append([first, last])
    return spans


def _written(session: Any) -> Written:
    written: Written = session.info.setdefault(PENDING, Written())
    return written


def pending(session: Any) -> Written | None:
    """What the session's transaction has noted so far, if anything."""
    written: Written | None = session.info.get(PENDING)
    return written


def note_member(session: Any, member_id: int | None) -> None:
    """Called by ``emit`` for each event it holds back: whom it concerns."""
    written = _written(session)
    if written.members is not None and member_id is not None:
        written.members.add(member_id)


def note_ids(session: Any, ids: Iterable[int]) -> None:
    """Called when held-back events are written: the ids they got."""
    _written(session).ids.extend(ids)


def note_events(session: Any, *, first: int | None, last: int | None) -> None:
    """Called by ``emit_select`` with the ids its ``INSERT ... SELECT`` gave; members unknown."""
    if first is None or last is None:
        return
    written = _written(session)
    written.ranges.append((first, last))
    written.members = None


@event.listens_for(Session, "after_commit")
def _publish_in_process(session: Session) -> None:
    written = session.info.get(PENDING)
    if written is None:
        return
    bind = session.get_bind()
    if bind.dialect.name != "postgresql":
        for feed in list(_LOCAL.get(_key(bind.engine.url), ())):
            feed.receive(written.payload())


@event.listens_for(Session, "after_transaction_end")
def _forget(session: Session, transaction: Any) -> None:
    if transaction.parent is None:
        session.info.pop(PENDING, None)


def _key(url: Any) -> str:
    return str(url.render_as_string(hide_password=True))


_LOCAL: dict[str, set["Feed"]] = {}
"""SQLite: this process's feeds by database, fed by ``_publish_in_process``."""


@dataclass(frozen=True)
class LiveEvent:
    """An event as subscribers receive it (the webhook body's fields)."""

    event_id: str
    type: str
    occurred_at: datetime
    member_id: int | None
    data: Any


@dataclass(eq=False)
class EventWatcher:
    types: frozenset[str] | None
    queue: asyncio.Queue[LiveEvent | None] = field(default_factory=asyncio.Queue)
    """``None`` marks the end: the subscriber fell more than ``QUEUE_LIMIT`` events behind."""


@dataclass
class Notice:
    spans: list[list[int]]
    members: set[int] | None


def _parse(payload: str) -> Notice | None:
    try:
        decoded = json.loads(payload)
        members = decoded["m"]
        return Notice(
            spans=[[int(a), int(b)] for a, b in decoded["e"]],
            members=None if members is None else {int(m) for m in members},
        )
    except (ValueError, KeyError, TypeError):
        logger.warning("ignored a malformed %s notification", CHANNEL)
        return None


class Feed:
    """One per server process and database: passes committed events to its subscribers."""

    def __init__(self, db: Database, *, listen_url: str | None = None) -> None:
        self.db = db
        self.listen_url = make_url(listen_url) if listen_url else db.url
        self._members: dict[int, set[asyncio.Event]] = {}
        self._watchers: set[EventWatcher] = set()
        self._inbox: asyncio.Queue[Notice] = asyncio.Queue()
        self._tasks: list[asyncio.Task[None]] = []
        self._ready = asyncio.Event()
        self._seen: set[int] = set()
        self._seen_order: deque[int] = deque()

    def receive(self, payload: str) -> None:
        notice = _parse(payload)
        if notice is not None:
            self._inbox.put_nowait(notice)

    @contextlib.asynccontextmanager
    async def member(self, member_id: int) -> AsyncIterator[asyncio.Event]:
        """An event set whenever a transaction that changed the member commits."""
        changed = asyncio.Event()
        self._members.setdefault(member_id, set()).add(changed)
        try:
            await self._start()
            yield changed
        finally:
            waiting = self._members.get(member_id, set())
            waiting.discard(changed)
            if not waiting:
                self._members.pop(member_id, None)

    @contextlib.asynccontextmanager
    async def events(self, types: frozenset[str] | None) -> AsyncIterator[EventWatcher]:
        """Every committed event of ``types`` (None: all), in id order per transaction."""
        watcher = EventWatcher(types=types)
        self._watchers.add(watcher)
        try:
            await self._start()
            yield watcher
        finally:
            self._watchers.discard(watcher)

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks.clear()
        for feeds in _LOCAL.values():
            feeds.discard(self)

    async def _start(self) -> None:
        if not self._tasks:
            self._tasks.append(asyncio.create_task(self._dispatch()))
            if self.db.dialect == "postgresql":
                self._tasks.append(asyncio.create_task(self._listen()))
            else:
                _LOCAL.setdefault(_key(self.db.write_engine.url), set()).add(self)
                self._ready.set()
        await self._ready.wait()

    async def _listen(self) -> None:
        """Holds the process's LISTEN connection, reconnecting when it drops."""
        url = self.listen_url.set(drivername="postgresql")
        dsn = url.render_as_string(hide_password=False)
        while True:
            try:
                await self._listen_once(dsn)
                logger.warning("live updates: the LISTEN connection dropped; reconnecting")
            except Exception as error:  # whatever broke the connection, listen again
                logger.warning("live updates: cannot LISTEN (%s); retrying", error)
            await asyncio.sleep(RECONNECT_SECONDS)

    async def _listen_once(self, dsn: str) -> None:
        """LISTENs until the connection is lost. Notifications sent while none is open are
        missed: subscribers hear of the next change."""
        lost = asyncio.Event()
        connection = await asyncpg.connect(dsn)
        try:
            connection.add_termination_listener(lambda _connection: lost.set())
            await connection.add_listener(
                CHANNEL, lambda _connection, _pid, _channel, payload: self.receive(payload)
            )
            self._ready.set()
            await lost.wait()
        finally:
            with contextlib.suppress(Exception):
                await connection.close()

    async def _dispatch(self) -> None:
        while True:
            notices = [await self._inbox.get()]
            while not self._inbox.empty():
                notices.append(self._inbox.get_nowait())
            try:
                await self._deliver(notices)
            except Exception:
                logger.exception("live updates: a notification could not be passed on")

    async def _deliver(self, notices: list[Notice]) -> None:
        spans = _spans((), ((a, b) for n in notices for a, b in n.spans))
        if self._members:
            known = [n.members for n in notices if n.members is not None]
            members = set().union(*known)
            if any(n.members is None for n in notices):
                members |= await self._members_among(spans)
            for member_id in members:
                for changed in self._members.get(member_id, ()):
                    changed.set()
        if self._watchers:
            await self._pass_events(spans)

    async def _members_among(self, spans: list[list[int]]) -> set[int]:
        watched = list(self._members)
        async with self.db.read_session() as session:
            found = await session.scalars(
                select(Event.member_id)
                .where(_in_spans(spans), Event.member_id.in_(watched))
                .distinct()
            )
            return {member_id for member_id in found if member_id is not None}

    async def _pass_events(self, spans: list[list[int]]) -> None:
        wanted: set[str] | None = None
        if all(watcher.types is not None for watcher in self._watchers):
            wanted = {kind for watcher in self._watchers for kind in watcher.types or ()}
        after = spans[0][0] - 1
        while True:
            query = (
                select(Event)
                .where(_in_spans(spans), Event.id > after)
                .order_by(Event.id)
                .limit(BATCH)
            )
            if wanted is not None:
                query = query.where(Event.type.in_(wanted))
            async with self.db.read_session() as session:
                rows = (await session.scalars(query)).all()
            for row in rows:
                self._offer(row)
            if len(rows) < BATCH:
                return
            after = rows[-1].id

    def _offer(self, row: Event) -> None:
        if row.id in self._seen:
            return
        self._seen.add(row.id)
        self._seen_order.append(row.id)
        if len(self._seen_order) > REMEMBERED:
            self._seen.discard(self._seen_order.popleft())
        live = LiveEvent(
            event_id=row.event_id,
            type=row.type,
            occurred_at=row.occurred_at,
            member_id=row.member_id,
            data=row.data,
        )
        for watcher in list(self._watchers):
            if watcher.types is not None and row.type not in watcher.types:
                continue
            if watcher.queue.qsize() >= QUEUE_LIMIT:
                self._watchers.discard(watcher)
                watcher.queue.put_nowait(None)
            else:
                watcher.queue.put_nowait(live)


def _in_spans(spans: list[list[int]]) -> Any:
    return or_(*(Event.id.between(first, last) for first, last in spans))
