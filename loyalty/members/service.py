"""Member operations: enrollment, profile changes, lookups and search."""

from datetime import date, datetime
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict
from sqlalchemy import bindparam, or_, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql.elements import ColumnElement

from loyalty.db import attach, columns_of, flush_changes, insert_ignoring_conflicts, utcnow
from loyalty.errors import DomainError, ErrorCode, invalid, not_found
from loyalty.hot_statements import HotStatement
from loyalty.idempotency import service as idempotency
from loyalty.inputs import check_with, refused
from loyalty.members.models import Channel, Member, MemberStatus
from loyalty.outbox import service as outbox
from loyalty.pagination import Page, PageRequest, make_page
from loyalty.referrals import service as referrals
from loyalty.tiers.models import Tier
from loyalty.validation import (
    email,
    lookup_key,
    optional_text,
    phone,
    required_text,
    storable,
)


def _date_of_birth(value: date | None) -> date | None:
    if value is not None and not date(1900, 1, 1) <= value <= utcnow().date():
        raise refused("Must lie between 1900-01-01 and today.")
    return value


Email = Annotated[str | None, check_with(email)]
Phone = Annotated[str | None, check_with(phone)]
Name = Annotated[str | None, check_with(optional_text, 100)]
DateOfBirth = Annotated[date | None, AfterValidator(_date_of_birth)]


class Enrollment(BaseModel):
    """A new member as a till or an app sends it; every bad field reported at once."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    external_id: Annotated[str, check_with(required_text, 128)]
    email: Email = None
    phone: Phone = None
    first_name: Name = None
    last_name: Name = None
    channel: Channel | None = None
    date_of_birth: DateOfBirth = None
    referral_code: str | None = None


def _true_or_false(value: Any) -> Any:
    if value is None:
        raise refused("Must be true or false.")
    return value


Consent = Annotated[bool, BeforeValidator(_true_or_false)]


class ConsentsIn(BaseModel):
    """Consents to set; only those sent (``model_fields_set``) change."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    marketing_email: Consent = False
    marketing_sms: Consent = False
    marketing_push: Consent = False


def _status(value: Any) -> MemberStatus:
    if value is None:
        raise refused("Must not be null.")
    status = MemberStatus(value)
    if status == MemberStatus.ERASED:
        raise refused("Use eraseMember: erasure also removes the personal data.")
    return status


class MemberChanges(BaseModel):
    """A profile change; only the fields sent (``model_fields_set``) change."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    email: Email = None
    phone: Phone = None
    first_name: Name = None
    last_name: Name = None
    date_of_birth: DateOfBirth = None
    status: Annotated[MemberStatus | None, BeforeValidator(_status)] = None
    consents: ConsentsIn | None = None


ENROLL_ATTEMPTS = 3
"""A new referral code that collides with another member's is drawn again."""


_PROFILE = frozenset({"external_id", "email", "phone", "first_name", "last_name", "date_of_birth"})
"""The member's columns an enrollment or a profile change writes as sent."""


async def enroll_member(session: AsyncSession, *, enrollment: Enrollment) -> Member:
    """A new member at the base tier; a second enrollment of one externalId is refused."""
    values = {name: getattr(enrollment, name) for name in _PROFILE}
    referrer = None
    if enrollment.referral_code is not None:
        referrer = await referrals.find_referrer(
            session, code=enrollment.referral_code, email=values["email"], phone=values["phone"]
        )
    base_tier = select(Tier.id).where(Tier.threshold == 0).order_by(Tier.rank).limit(1)
    now = utcnow()
    for _ in range(ENROLL_ATTEMPTS):
        member: Member | None = await session.scalar(
            insert_ignoring_conflicts(session, Member)
            .values(
                **values,
                status=MemberStatus.ACTIVE,
                enrollment_channel=enrollment.channel,
                enrolled_at=now,
                updated_at=now,
                tier_id=base_tier.scalar_subquery(),
                referral_code=referrals.new_code(),
                referral_pending=referrer is not None,
            )
            .returning(Member)
        )
        if member is not None:
            break
        if await find_member_by_external_id(session, external_id=values["external_id"]):
            raise DomainError(
                ErrorCode.ALREADY_EXISTS,
                f"A member with externalId {values['external_id']!r} is already enrolled.",
                ["externalId"],
            )
    else:
        raise RuntimeError("no free referral code after several draws")
    if referrer is not None:
        await referrals.link(session, referrer=referrer, referee=member)
    await outbox.emit(
        session,
        outbox.MEMBER_ENROLLED,
        member_id=member.id,
        occurred_at=now,
        data={"member": outbox.member_data(member)},
    )
    return member


async def update_member(
    session: AsyncSession, *, member_id: int | None, changes: MemberChanges
) -> Member:
    member = await lock_member(session, member_id=member_id)
    if member.status == MemberStatus.ERASED:
        raise DomainError(
            ErrorCode.MEMBER_INACTIVE, "The member was erased: nothing of it can change.", ["id"]
        )
    now = utcnow()
    for name in changes.model_fields_set & _PROFILE:
        setattr(member, name, getattr(changes, name))
    if changes.status is not None:
        _set_status(member, changes.status, now)
    if changes.consents is not None:
        _set_consents(member, changes.consents)
    member.updated_at = now
    await session.flush()
    await outbox.emit(
        session,
        outbox.MEMBER_UPDATED,
        member_id=member.id,
        occurred_at=member.updated_at,
        data={"member": outbox.member_data(member)},
    )
    return member


REPORTED = idempotency.Reported(Member, "member")
"""A member in an idempotent mutation's result: by id, shown as it is now on a replay."""


def _set_status(member: Member, status: MemberStatus, now: datetime) -> None:
    """``closed_at`` starts the ``closedMemberRetentionDays`` clock when a member is closed;
    closing a closed member keeps it running, reopening stops it."""
    if status == MemberStatus.CLOSED and member.status != MemberStatus.CLOSED:
        member.closed_at = now
    elif status != MemberStatus.CLOSED:
        member.closed_at = None
    member.status = status


def _set_consents(member: Member, consents: ConsentsIn) -> None:
    for name in consents.model_fields_set:
        setattr(member, name, getattr(consents, name))
    if consents.model_fields_set:
        member.consents_updated_at = utcnow()


async def get_member(session: AsyncSession, *, member_id: int | None) -> Member:
    member = await find_member(session, member_id=member_id)
    if member is None:
        raise not_found("Member", "memberId")
    return member


async def find_member(session: AsyncSession, *, member_id: int | None) -> Member | None:
    if member_id is None:
        return None
    return await session.get(Member, member_id)


async def find_member_by_external_id(session: AsyncSession, *, external_id: str) -> Member | None:
    key = lookup_key(external_id)
    if key is None:
        return None
    return await session.scalar(select(Member).where(Member.external_id == key))


def _locking(column: str) -> HotStatement:
    table = Member.__table__
    return HotStatement(
        lambda _: (
            select(*columns_of(Member)).where(table.c[column] == bindparam("key")).with_for_update()
        )
    )


_LOCK_BY_ID = _locking("id")
_LOCK_BY_EXTERNAL_ID = _locking("external_id")


async def lock_member(
    session: AsyncSession,
    *,
    member_id: int | None = None,
    external_id: str | None = None,
    field: str = "memberId",
) -> Member:
    """The member row, locked for this transaction (``FOR UPDATE`` on PostgreSQL) and freshly
    read: every points change and redemption starts here."""
    key: int | str
    if member_id is not None:
        statement, key = _LOCK_BY_ID, member_id
    elif external_id is not None:
        statement, key = _LOCK_BY_EXTERNAL_ID, external_id
    else:
        raise not_found("Member", field)
    await flush_changes(session)
    rows = await statement.rows(session, {"key": key})
    if not rows:
        raise not_found("Member", field)
    return attach(session, Member, rows[0])


def require_active(member: Member) -> None:
    if member.status != MemberStatus.ACTIVE:
        raise DomainError(
            ErrorCode.MEMBER_INACTIVE,
            f"The member is {member.status.lower()}: it can neither earn nor redeem points.",
            ["memberId"],
        )


MAX_SEARCH_LENGTH = 200
"""Longer than any email or name; SQLite refuses LIKE patterns past 50,000 bytes."""


async def search_members(
    session: AsyncSession,
    *,
    search: str | None,
    page: PageRequest,
    within: ColumnElement[bool] | None = None,
) -> Page[Member]:
    """Members in enrollment order, optionally matching a substring of id, email, phone or name,
    and only those meeting ``within`` (a segment's condition) when given."""
    statement = select(Member).order_by(Member.id).limit(page.first + 1)
    if within is not None:
        statement = statement.where(within)
    if page.after is not None:
        statement = statement.where(Member.id > page.after)
    term = (search or "").strip()
    if len(term) > MAX_SEARCH_LENGTH:
        raise invalid(f"Must be at most {MAX_SEARCH_LENGTH} characters.", "search")
    if not storable(term):
        raise invalid("Must not contain control characters.", "search")
    if term:
        pattern = "%" + term.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        statement = statement.where(
            or_(
                *(
                    column.ilike(pattern, escape="\\")
                    for column in (
                        Member.external_id,
                        Member.email,
                        Member.phone,
                        Member.first_name,
                        Member.last_name,
                    )
                )
            )
        )
    members = list((await session.scalars(statement)).all())
    return make_page(members, [m.id for m in members], page)
