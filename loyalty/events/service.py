"""recordEvent: non-purchase actions (app installed, review written) that event rules reward."""

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from loyalty.db import utcnow
from loyalty.errors import invalid
from loyalty.events.models import MemberEvent
from loyalty.idempotency import service as idempotency
from loyalty.ledger import service as ledger
from loyalty.members import service as members
from loyalty.members.models import Member
from loyalty.pagination import Page, PageRequest, newest_first_by_owner
from loyalty.program.models import Program
from loyalty.program.service import get_program, require_within_backdate
from loyalty.purchases.inputs import MAX_FUTURE_SKEW
from loyalty.rules import awarding
from loyalty.rules.book import rule_book
from loyalty.rules.definition import EVENT_TYPE
from loyalty.rules.engine import Award, Occasion
from loyalty.rules.service import BIRTHDAY, FEEDBACK
from loyalty.tiers import service as tiers
from loyalty.validation import instant, json_depth

MAX_ATTRIBUTES_BYTES = 4096
MAX_ATTRIBUTES_DEPTH = 8


@dataclass(frozen=True)
class EventIn:
    member_id: int
    type: str
    occurred_at: datetime | None = None
    attributes: object = field(default_factory=dict)
    """As sent: ``record_event`` checks it is a JSON object."""


@dataclass(frozen=True)
class EventResult:
    event: MemberEvent
    points_awarded: int
    member: Member


async def record_event(
    session: AsyncSession, *, scope: str, idempotency_key: str, event: EventIn
) -> EventResult:
    """Record an event once per idempotency key; the event rules in force reward it."""
    now = utcnow()
    event_type = _event_type(event.type)
    occurred_at = now if event.occurred_at is None else instant(event.occurred_at, "occurredAt")
    if occurred_at > now + MAX_FUTURE_SKEW:
        raise invalid("Must not be more than 5 minutes in the future.", "occurredAt")
    attributes = _attributes(event.attributes)
    return await _RECORD_EVENT.run(
        session,
        scope=scope,
        key=idempotency_key,
        request=idempotency.request_of(event),
        work=lambda: _record(
            session,
            member_id=event.member_id,
            event_type=event_type,
            occurred_at=occurred_at,
            attributes=attributes,
            now=now,
        ),
    )


async def _record(
    session: AsyncSession,
    *,
    member_id: int,
    event_type: str,
    occurred_at: datetime,
    attributes: dict[str, Any],
    now: datetime,
) -> EventResult:
    member = await members.lock_member(session, member_id=member_id)
    members.require_active(member)
    program = await get_program(session)
    require_within_backdate(program, occurred_at, now)
    return await reward_event(
        session,
        member=member,
        program=program,
        event_type=event_type,
        occurred_at=occurred_at,
        now=now,
        attributes=attributes,
    )


async def reward_event(
    session: AsyncSession,
    *,
    member: Member,
    program: Program,
    event_type: str,
    occurred_at: datetime,
    now: datetime,
    attributes: dict[str, Any],
) -> EventResult:
    """Store the event of a locked, active member; the event rules in force reward it."""
    awards = await _awards(
        session, member=member, program=program, event_type=event_type, occurred_at=occurred_at
    )
    points = sum(award.points for award in awards)
    recorded = MemberEvent(
        member_id=member.id,
        type=event_type,
        occurred_at=occurred_at,
        created_at=now,
        attributes=attributes,
        points_awarded=points,
    )
    session.add(recorded)
    await session.flush()
    if awards:
        member = await _earn(session, program=program, awards=awards, event=recorded, now=now)
    return EventResult(event=recorded, points_awarded=points, member=member)


async def _awards(
    session: AsyncSession,
    *,
    member: Member,
    program: Program,
    event_type: str,
    occurred_at: datetime,
) -> list[Award]:
    """The event rules in force at occurredAt, for the tier the member held then."""
    tier_id, multiplier = await tiers.tier_at(
        session, member=member, at=occurred_at, current_multiplier=Decimal(1)
    )
    return await awarding.awards_for(
        session,
        book=await rule_book(session, program.rules_token),
        at=occurred_at,
        occasion=Occasion(
            local_time=awarding.local_time(occurred_at, program.time_zone),
            tier_id=tier_id,
            multiplier=multiplier,
            points_per_unit=program.points_per_unit,
            event_type=event_type,
        ),
        member_id=member.id,
        lock=True,
    )


async def _earn(
    session: AsyncSession,
    *,
    program: Program,
    awards: list[Award],
    event: MemberEvent,
    now: datetime,
) -> Member:
    """The awards as one earning, each recorded against its rule."""
    earned = await ledger.earn(
        session,
        ledger.Earning(
            member_id=event.member_id,
            occurred_at=event.occurred_at,
            pending=False,
            bonuses=tuple(award.points for award in awards),
            reason=f"Event: {event.type}",
            expires_at=program.expires_at(event.occurred_at),
        ),
    )
    await awarding.record_awards(
        session,
        awards=awards,
        entry_ids=earned.bonus_entry_ids,
        member_id=event.member_id,
        awarded_for=event.occurred_at,
        now=now,
        event_id=event.id,
    )
    return earned.member


def _event_type(value: str) -> str:
    event_type = (value or "").strip().lower()
    if not EVENT_TYPE.match(event_type):
        raise invalid("Lower-case letters, digits and _ . : - (at most 64).", "type")
    if event_type == BIRTHDAY:
        raise invalid("Birthdays are awarded by the birthday-bonus job, not recorded.", "type")
    if event_type == FEEDBACK:
        raise invalid("Feedback events come from submitFeedback, not recorded.", "type")
    return event_type


def _attributes(value: object) -> dict[str, Any]:
    """A JSON object of at most MAX_ATTRIBUTES_BYTES (compact UTF-8), stored as parsed back."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise invalid("Must be a JSON object.", "attributes")
    if json_depth(value) > MAX_ATTRIBUTES_DEPTH:
        raise invalid(f"Must nest at most {MAX_ATTRIBUTES_DEPTH} levels deep.", "attributes")
    try:
        encoded = json.dumps(value, allow_nan=False, ensure_ascii=False, separators=(",", ":"))
        size = len(encoded.encode())
    except (ValueError, UnicodeEncodeError):
        raise invalid(
            "Must be valid JSON: no NaN or Infinity, no lone surrogates.", "attributes"
        ) from None
    if size > MAX_ATTRIBUTES_BYTES:
        raise invalid(f"Must be at most {MAX_ATTRIBUTES_BYTES} bytes of JSON.", "attributes")
    if "\x00" in encoded or "\\u0000" in encoded:
        raise invalid("Must not contain NUL characters.", "attributes")
    parsed: dict[str, Any] = json.loads(encoded)
    return parsed


_REPORTED_EVENT = idempotency.Reported(MemberEvent, "event")
"""By id: nothing reported changes later, and attributes are personal data an erasure removes."""


_RECORD_EVENT = idempotency.returning(
    "recordEvent", EventResult, event=_REPORTED_EVENT, member=members.REPORTED
)


async def member_events(
    session: AsyncSession, *, member_ids: Sequence[int], page: PageRequest
) -> dict[int, Page[MemberEvent]]:
    """Each member's recorded events, newest first."""
    return await newest_first_by_owner(
        session, MemberEvent, owner=MemberEvent.member_id, owner_ids=member_ids, page=page
    )
