"""Per-request state: the caller, a read session, the DataLoaders and the write boundary."""

import asyncio
from collections.abc import Awaitable, Callable
from typing import TypeVar

from sqlalchemy.ext.asyncio import AsyncSession

from loyalty.auth.service import Principal
from loyalty.config import Settings
from loyalty.db import Database
from loyalty.graphql.dataloaders import Loaders
from loyalty.outbox.live import Feed

R = TypeVar("R")

ANONYMOUS = Principal(role=None, scope="anonymous")  # type: ignore[arg-type]  # no role: no permission admits it
"""A WebSocket's caller until ``connection_init`` is accepted: no role, so every permission
refuses it (the protocol runs no operation before then anyway)."""


class Context:
    def __init__(
        self,
        *,
        db: Database,
        settings: Settings,
        principal: Principal,
        session: AsyncSession | None,
        member_token_secret: Callable[[], Awaitable[str]],
        request_id: str | None = None,
    ) -> None:
        self.db = db
        self.settings = settings
        self.principal = principal
        self.member_token_secret = member_token_secret
        self.request_id = request_id
        self._session = session
        self._session_lock = asyncio.Lock()
        self._read_since_write = False
        self.loaders = Loaders(self.read)
        self.root_fields: dict[str, str] = {}
        """Response key → root field name, for access rules that depend on the root."""
        self.operation: str | None = None
        """The operation's name (or its root fields), for the request's log line."""
        self.outcome = "ok"
        """The first error code the request met (a UserError's included), for the log line."""
        self._reads: set[asyncio.Task[object]] = set()

    def fail(self, code: str) -> None:
        """Keeps the first failure: later ones are usually its consequences."""
        if self.outcome == "ok":
            self.outcome = code

    async def read(self, work: Callable[[AsyncSession], Awaitable[R]]) -> R:
        """Run ``work`` on the request's read session.

        GraphQL resolves sibling fields concurrently, and one AsyncSession allows one
        operation at a time, so reads take turns on it. When a field's error nulls its parent,
        graphql-core cancels the siblings still resolving; a read cancelled mid-statement would
        leave the session (and its pooled connection) broken, so each read runs shielded in a
        task of its own, and ``close`` waits for those still running.
        """
        task = asyncio.ensure_future(self._read(work))
        self._reads.add(task)
        task.add_done_callback(self._reads.discard)
        return await asyncio.shield(task)

    async def _read(self, work: Callable[[AsyncSession], Awaitable[R]]) -> R:
        async with self._session_lock:
            if self._session is None:
                self._session = self.db.read_session()
            self._read_since_write = True
            return await work(self._session)

    async def write(self, work: Callable[[AsyncSession], Awaitable[R]]) -> R:
        """Run ``work`` in one write transaction; reads after it see what it committed."""
        async with self.db.transaction() as session:
            result = await work(session)
        await self.refresh_reads()
        return result

    async def refresh_reads(self) -> None:
        """Later reads see what a write committed: a new snapshot, and no memoised rows."""
        async with self._session_lock:
            if self._session is not None and self._read_since_write:
                await self._session.rollback()
            self._read_since_write = False
        self.loaders = Loaders(self.read)

    async def close(self) -> None:
        if self._reads:
            await asyncio.gather(*self._reads, return_exceptions=True)
        if self._session is not None:
            await self._session.close()


class SubscriptionContext(Context):
    """A WebSocket connection's state: its caller is known once ``connection_init`` is accepted,
    and every push checks again that the credentials still hold (revoked, expired, closed)."""

    def __init__(
        self,
        *,
        db: Database,
        settings: Settings,
        member_token_secret: Callable[[], Awaitable[str]],
        feed: Feed,
        authenticate: Callable[[AsyncSession, str], Awaitable[Principal | None]],
        request_id: str | None = None,
    ) -> None:
        super().__init__(
            db=db,
            settings=settings,
            principal=ANONYMOUS,
            session=None,
            member_token_secret=member_token_secret,
            request_id=request_id,
        )
        self.feed = feed
        self.connection_params: dict[str, object] = {}
        self.token = ""
        self._authenticate = authenticate

    async def sign_in(self, token: str) -> bool:
        """``connection_init``: the caller named by ``token``, or False."""
        principal = await self._check(token)
        if principal is None:
            return False
        self.principal, self.token = principal, token
        return True

    async def still_signed_in(self) -> bool:
        return await self._check(self.token) is not None

    async def _check(self, token: str) -> Principal | None:
        async with self.db.read_session() as session:
            return await self._authenticate(session, token)
