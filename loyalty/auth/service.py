"""Who is calling: API keys (admin, pos, app) and member tokens.

API key secrets carry 256 bits of randomness, so a SHA-256 digest is a safe and fast way to
store them (a slow password hash would only add latency to every request); the secret is
shown once, when the key is created.
"""

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

import jwt
from sqlalchemy import bindparam, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from loyalty.auth.models import API_KEY_ROLES, ApiKey, InstanceSecret, Role
from loyalty.db import insert_ignoring_conflicts, utcnow
from loyalty.errors import DomainError, ErrorCode, invalid, not_found
from loyalty.hot_statements import HotStatement
from loyalty.ids import parse_key
from loyalty.members.models import Member, MemberStatus
from loyalty.members.service import get_member
from loyalty.ratelimit import parse_rate
from loyalty.validation import required_text

KEY_PREFIX = "lyk_"
TOKEN_ISSUER = "loyalty"
TOKEN_AUDIENCE = "loyalty:member"
SIGNING_SECRET_NAME = "member_token_signing_key"
LAST_USED_RESOLUTION = timedelta(minutes=1)
INACTIVE_FOR_GOOD = frozenset({MemberStatus.CLOSED, MemberStatus.ERASED})
"""Statuses whose tokens stop working at once (a suspended member's expire on their own)."""


@dataclass(frozen=True)
class Principal:
    """The authenticated caller of one request."""

    role: Role
    scope: str
    """Namespace of the caller's idempotency keys."""
    member_id: int | None = None
    api_key_id: int | None = None
    api_key_name: str | None = None
    """As it was when the request began: the audit log copies it."""
    rate_limit: str | None = None
    """The API key's own rate (member tokens use the configured one)."""


@dataclass(frozen=True)
class CreatedKey:
    key: ApiKey
    secret: str


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


async def create_api_key(
    session: AsyncSession, *, role: str, name: str, rate_limit: str | None = None
) -> CreatedKey:
    if role not in API_KEY_ROLES:
        raise invalid(f"Role must be one of {', '.join(API_KEY_ROLES)}.", "role")
    if rate_limit is not None:
        rate_limit = rate_limit.strip()
        try:
            parse_rate(rate_limit)
        except ValueError as error:
            raise invalid(str(error), "rateLimit") from error
    secret = KEY_PREFIX + secrets.token_urlsafe(32)
    key = ApiKey(
        name=required_text(name, 100, "name"),
        role=role,
        prefix=secret[:12],
        secret_hash=_digest(secret),
        created_at=utcnow(),
        rate_limit=rate_limit,
    )
    session.add(key)
    await session.flush()
    return CreatedKey(key=key, secret=secret)


async def list_api_keys(session: AsyncSession) -> list[ApiKey]:
    return list((await session.scalars(select(ApiKey).order_by(ApiKey.id))).all())


async def revoke_api_key(session: AsyncSession, *, key_id_or_prefix: str) -> ApiKey:
    condition = ApiKey.prefix == key_id_or_prefix
    if (key_id := parse_key(key_id_or_prefix)) is not None:
        condition = or_(condition, ApiKey.id == key_id)
    key = await session.scalar(select(ApiKey).where(condition))
    if key is None:
        raise not_found("API key")
    if key.revoked_at is None:
        key.revoked_at = utcnow()
        await session.flush()
    return key


@dataclass(frozen=True)
class KeyLookup:
    principal: Principal
    needs_touch: bool
    """``last_used_at`` is older than LAST_USED_RESOLUTION: record this use."""


_KEYS = ApiKey.__table__
_KEY_BY_SECRET = HotStatement(
    lambda _: select(
        _KEYS.c.id, _KEYS.c.role, _KEYS.c.name, _KEYS.c.last_used_at, _KEYS.c.rate_limit
    ).where(_KEYS.c.secret_hash == bindparam("digest"), _KEYS.c.revoked_at.is_(None))
)
"""Every request with an API key runs it."""


async def authenticate_api_key(session: AsyncSession, *, secret: str) -> KeyLookup | None:
    """The caller an API key names; None when it is unknown or revoked. Reads only."""
    if not secret.startswith(KEY_PREFIX) or len(secret) > 100:
        return None
    rows = await _KEY_BY_SECRET.rows(session, {"digest": _digest(secret)})
    if not rows:
        return None
    row = rows[0]
    last_used_at = row["last_used_at"]
    stale = last_used_at is None or utcnow() - last_used_at > LAST_USED_RESOLUTION
    return KeyLookup(
        principal=Principal(
            role=Role(row["role"]),
            scope=f"key:{row['id']}",
            api_key_id=row["id"],
            api_key_name=row["name"],
            rate_limit=row["rate_limit"],
        ),
        needs_touch=stale,
    )


async def touch_api_key(session: AsyncSession, *, key_id: int) -> None:
    await session.execute(update(ApiKey).where(ApiKey.id == key_id).values(last_used_at=utcnow()))


async def signing_secret(session: AsyncSession, *, configured: str | None) -> str:
    """LOYALTY_SECRET_KEY, or a key generated on first use and kept in the database."""
    if configured:
        return configured
    await session.execute(
        insert_ignoring_conflicts(session, InstanceSecret).values(
            name=SIGNING_SECRET_NAME, value=secrets.token_urlsafe(48), created_at=utcnow()
        )
    )
    stored = await session.execute(
        select(InstanceSecret.value).where(InstanceSecret.name == SIGNING_SECRET_NAME)
    )
    return stored.scalar_one()


def issue_member_token(
    *, member_id: int, secret: str, ttl: timedelta, now: datetime | None = None
) -> tuple[str, datetime]:
    issued = now or utcnow()
    expires = issued + ttl
    claims = {
        "sub": str(member_id),
        "iss": TOKEN_ISSUER,
        "aud": TOKEN_AUDIENCE,
        "iat": int(issued.timestamp()),
        "exp": int(expires.timestamp()),
    }
    return jwt.encode(claims, secret, algorithm="HS256"), expires.replace(microsecond=0)


def authenticate_member_token(token: str, *, secret: str) -> Principal | None:
    try:
        claims = jwt.decode(
            token,
            secret,
            algorithms=["HS256"],
            audience=TOKEN_AUDIENCE,
            issuer=TOKEN_ISSUER,
            options={"require": ["exp", "sub"]},
        )
    except jwt.PyJWTError:
        return None
    subject = claims["sub"]
    member_id = parse_key(subject) if isinstance(subject, str) else None
    if member_id is None:
        return None
    return Principal(role=Role.MEMBER, scope=f"member:{member_id}", member_id=member_id)


async def issue_token_for_member(
    session: AsyncSession, *, member_id: int, secret: str, ttl: timedelta
) -> tuple[str, datetime]:
    """A member token for a member that exists and whose account is not closed."""
    member = await get_member(session, member_id=member_id)
    if member.status in INACTIVE_FOR_GOOD:
        raise DomainError(
            ErrorCode.MEMBER_INACTIVE, f"The member is {member.status.lower()}.", ["memberId"]
        )
    return issue_member_token(member_id=member.id, secret=secret, ttl=ttl)


async def member_may_sign_in(session: AsyncSession, *, member_id: int) -> bool:
    """A member token stops working the moment its member is closed (or no longer exists)."""
    status = await session.scalar(select(Member.status).where(Member.id == member_id))
    return status is not None and status not in INACTIVE_FOR_GOOD
