"""Per-credential rate limits (API.md §6).

Member tokens share one configured rate (``LOYALTY_RATE_LIMIT_MEMBER``), counted per member;
an API key is limited only when it was created with a rate of its own. Counts use a moving
window, kept in process memory or, with ``LOYALTY_REDIS_URL``, in Redis so that every worker
and server shares them. When Redis cannot be reached the request is served (fail open): a till
must keep working when the limiter's store is down, and a warning is logged once per outage.
"""

import logging
import math
import time
from functools import lru_cache
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from limits import RateLimitItem, parse_many
from limits.aio.storage import MemoryStorage, Storage
from limits.aio.strategies import MovingWindowRateLimiter
from limits.errors import StorageError
from limits.storage import storage_from_string
from starlette.responses import JSONResponse

from loyalty.auth.models import Role

if TYPE_CHECKING:
    from loyalty.auth.service import Principal
    from loyalty.config import Settings

log = logging.getLogger(__name__)

MAX_LENGTH = 64
MAX_AMOUNT = 100_000
"""A moving window keeps one timestamp per request, so the amount is bounded."""
REDIS_TIMEOUT_SECONDS = 1.0
RETRY_REDIS_AFTER_SECONDS = 5.0
"""After a failure, requests skip Redis this long instead of each waiting for it."""


@lru_cache(maxsize=1024)
def parse_rate(value: str) -> RateLimitItem:
    """One rate in the ``limits`` notation (``600/minute``, ``10 per second``, ``50/5 minutes``).

    Raises ValueError with a message fit for the operator when the string is not one.
    """
    example = "write it like 600/minute, 10/second or 1000/hour"
    if len(value) > MAX_LENGTH:
        raise ValueError(f"A rate limit is at most {MAX_LENGTH} characters: {example}.")
    try:
        items = parse_many(value)
    except ValueError as error:
        raise ValueError(f"'{value}' is not a rate limit: {example}.") from error
    if len(items) != 1:
        raise ValueError(f"'{value}' is not one rate limit: {example}.")
    item = items[0]
    if not 1 <= item.amount <= MAX_AMOUNT:
        raise ValueError(f"A rate limit allows 1 to {MAX_AMOUNT} requests per period.")
    return item


def rate_limited_response(retry_after: int) -> JSONResponse:
    return JSONResponse(
        {
            "data": None,
            "errors": [
                {
                    "message": f"Rate limit exceeded; retry in {retry_after} s.",
                    "extensions": {"code": "RATE_LIMITED"},
                }
            ],
        },
        status_code=429,
        headers={"Retry-After": str(retry_after)},
    )


class RateLimiter:
    """Counts each caller's requests and says when one is over its limit."""

    def __init__(self, *, member_rate: str, storage: Storage, describe: str) -> None:
        self.member_rate = parse_rate(member_rate)
        self.storage = storage
        self.strategy = MovingWindowRateLimiter(storage)
        self.describe = describe
        self._skip_until = 0.0
        self._failing = False

    @classmethod
    def from_settings(cls, settings: "Settings") -> "RateLimiter":
        if not settings.redis_url:
            return cls(
                member_rate=settings.rate_limit_member,
                storage=MemoryStorage(),
                describe="process memory",
            )
        storage = storage_from_string(
            f"async+{settings.redis_url}",
            key_prefix=settings.redis_key_prefix,
            wrap_exceptions=True,
            connect_timeout=REDIS_TIMEOUT_SECONDS,
            stream_timeout=REDIS_TIMEOUT_SECONDS,
        )
        assert isinstance(storage, Storage), "an async+ scheme makes an asyncio storage"
        where = urlsplit(settings.redis_url)
        return cls(
            member_rate=settings.rate_limit_member,
            storage=storage,
            describe=f"Redis at {where.hostname}:{where.port or 6379}",  # no password in logs
        )

    def rate_for(self, principal: "Principal") -> RateLimitItem | None:
        if principal.role == Role.MEMBER:
            return self.member_rate
        if not principal.rate_limit:
            return None
        try:
            return parse_rate(principal.rate_limit)
        except ValueError as error:  # only a hand-edited row: creation validates the rate
            log.warning("API key %s is not limited: %s", principal.api_key_id, error)
            return None

    async def check(self, principal: "Principal") -> int | None:
        """Counts this request; the seconds to wait (≥ 1) when it is over the limit, else None."""
        item = self.rate_for(principal)
        if item is None or time.monotonic() < self._skip_until:
            return None
        try:
            if await self.strategy.hit(item, principal.scope):
                retry_after = None
            else:
                stats = await self.strategy.get_window_stats(item, principal.scope)
                retry_after = max(1, math.ceil(stats.reset_time - time.time()))
        except (StorageError, OSError, TimeoutError) as error:
            self._skip_until = time.monotonic() + RETRY_REDIS_AFTER_SECONDS
            if not self._failing:
                self._failing = True
                log.warning(
                    "Rate-limit store %s unreachable (%s); serving requests unlimited until it "
                    "is back.",
                    self.describe,
                    error,
                )
            return None
        if self._failing:
            self._failing = False
            log.warning("Rate-limit store %s reachable again; limits apply.", self.describe)
        return retry_after
