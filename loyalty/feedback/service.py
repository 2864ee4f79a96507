"""submitFeedback and the feedback lists."""

from dataclasses import dataclass
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from loyalty.db import insert_ignoring_conflicts, utcnow
from loyalty.errors import DomainError, ErrorCode, not_found
from loyalty.events import service as events
from loyalty.feedback.models import SCORE_RANGES, Feedback, FeedbackKind
from loyalty.hot_statements import PerDialect
from loyalty.idempotency import service as idempotency
from loyalty.members import service as members
from loyalty.members.models import MemberStatus
from loyalty.pagination import Page, PageRequest, make_page, newest_first_by_owner
from loyalty.program.service import get_program
from loyalty.purchases.models import Purchase
from loyalty.rules.service import FEEDBACK
from loyalty.validation import int_between, optional_text

MAX_COMMENT = 2000

_TABLE = Feedback.__table__
_INSERT = PerDialect(
    lambda session: insert_ignoring_conflicts(session, _TABLE).returning(_TABLE.c.id)
)


@dataclass(frozen=True)
class FeedbackIn:
    member_id: int
    kind: FeedbackKind
    score: int
    purchase_id: int | None = None
    comment: str | None = None


@dataclass(frozen=True)
class FeedbackFilter:
    kind: FeedbackKind | None = None
    min_score: int | None = None
    max_score: int | None = None
    since: datetime | None = None
    until: datetime | None = None


async def submit_feedback(
    session: AsyncSession, *, scope: str, idempotency_key: str, feedback: FeedbackIn
) -> Feedback:
    """Store a score once per idempotency key; a second of the same kind for the same purchase
    (or, without one, the same program-local day) is ALREADY_EXISTS. An active member's score
    is also a ``feedback`` event, which event rules may reward."""
    low, high = SCORE_RANGES[feedback.kind]
    int_between(feedback.score, low, high, "score")
    comment = optional_text(feedback.comment, MAX_COMMENT, "comment")
    return await _SUBMIT_FEEDBACK.run(
        session,
        scope=scope,
        key=idempotency_key,
        request=idempotency.request_of(feedback),
        work=lambda: _submit(session, feedback=feedback, comment=comment),
    )


async def _submit(session: AsyncSession, *, feedback: FeedbackIn, comment: str | None) -> Feedback:
    member = await members.lock_member(session, member_id=feedback.member_id)
    if feedback.purchase_id is not None:
        owner = await session.scalar(
            select(Purchase.member_id).where(Purchase.id == feedback.purchase_id)
        )
        # Another member's purchase is not confirmed to exist: it is not found for this member.
        if owner != feedback.member_id:
            raise not_found("Purchase", "purchaseId")
    program = await get_program(session)
    now = utcnow()
    feedback_id = await session.scalar(
        _INSERT(session),
        {
            "member_id": feedback.member_id,
            "kind": feedback.kind,
            "score": feedback.score,
            "comment": comment,
            "purchase_id": feedback.purchase_id,
            "local_day": now.astimezone(ZoneInfo(program.time_zone)).date(),
            "created_at": now,
        },
    )
    if feedback_id is None:
        about = "this purchase" if feedback.purchase_id is not None else "today"
        raise DomainError(
            ErrorCode.ALREADY_EXISTS,
            f"The member already gave {feedback.kind} feedback about {about}.",
            ["purchaseId" if feedback.purchase_id is not None else "kind"],
        )
    if member.status == MemberStatus.ACTIVE:
        # Earning rules on the event type ``feedback`` reward the score (not its value).
        await events.reward_event(
            session,
            member=member,
            program=program,
            event_type=FEEDBACK,
            occurred_at=now,
            now=now,
            attributes={"kind": feedback.kind.value, "score": feedback.score},
        )
    stored = await session.get(Feedback, feedback_id)
    if stored is None:
        raise not_found("Feedback")
    return stored


_REPORTED = idempotency.Reported(Feedback, "feedback")
"""By id: score and kind never change, and the comment is personal data an erasure removes."""
_SUBMIT_FEEDBACK = idempotency.Idempotent(
    "submitFeedback", report=_REPORTED.store, replay=_REPORTED.load
)


async def member_feedback(
    session: AsyncSession, *, member_ids: list[int], page: PageRequest
) -> dict[int, Page[Feedback]]:
    """Each member's feedback, newest first."""
    return await newest_first_by_owner(
        session, Feedback, owner=Feedback.member_id, owner_ids=member_ids, page=page
    )


async def list_feedback(
    session: AsyncSession, *, page: PageRequest, filter: FeedbackFilter
) -> Page[Feedback]:
    """Newest first; ``since``/``until`` bound createdAt half-open, [since, until)."""
    conditions: list[Any] = []
    if filter.kind is not None:
        conditions.append(Feedback.kind == filter.kind)
    if filter.min_score is not None:
        conditions.append(Feedback.score >= filter.min_score)
    if filter.max_score is not None:
        conditions.append(Feedback.score <= filter.max_score)
    if filter.since is not None:
        conditions.append(Feedback.created_at >= filter.since)
    if filter.until is not None:
        conditions.append(Feedback.created_at < filter.until)
    if page.after is not None:
        conditions.append(Feedback.id < page.after)
    statement = select(Feedback).where(*conditions).order_by(Feedback.id.desc())
    rows = list((await session.scalars(statement.limit(page.first + 1))).all())
    return make_page(rows, [row.id for row in rows], page)
