"""eraseMember: a member's personal data goes, the books stay.

Amounts, points, dates and ledger postings are the retailer's accounting records and stay, so
``ledger verify`` and the liability add up after an erasure. What names or describes the person
goes: contact details, names, birthday, the external id (replaced by a random placeholder, so
the old one can enroll again), the referral code, event attributes, feedback comments, notes
on manual tier changes and the SKUs of purchase lines. Points still held are forfeited through
a ledger transaction of their own, so the liability falls by exactly that much.

The scrub (``remove_personal_data``) is set-based and takes whose data to remove as a
condition, so eraseMember (one member) and the retention job (every member closed for too
long, ``loyalty.privacy.retention``) share one definition of what an erasure removes.
"""

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import String, Table, cast, func, literal, select, text, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import InstrumentedAttribute
from sqlalchemy.sql.elements import ColumnElement

from loyalty.db import utcnow
from loyalty.events.models import MemberEvent
from loyalty.feedback.models import Feedback
from loyalty.idempotency import service as idempotency
from loyalty.ledger import forfeits
from loyalty.ledger import service as ledger
from loyalty.ledger.models import Account, EntryKind
from loyalty.members import service as members
from loyalty.members.models import Member, MemberStatus
from loyalty.outbox import service as outbox
from loyalty.outbox.models import Event
from loyalty.purchases.models import Purchase
from loyalty.tiers.models import TierChange
from loyalty.validation import required_text

ERASED_PREFIX = "erased-"


@dataclass(frozen=True)
class ErasureIn:
    member_id: int
    reason: str


async def erase_member(
    session: AsyncSession, *, scope: str, idempotency_key: str, erasure: ErasureIn
) -> Member:
    """Erase the member (an erased member is left as it is: there is nothing left to erase)."""
    required_text(erasure.reason, 500, "reason")
    return await _ERASE_MEMBER.run(
        session,
        scope=scope,
        key=idempotency_key,
        request=idempotency.request_of(erasure),
        work=lambda: _erase(session, member_id=erasure.member_id),
    )


async def _erase(session: AsyncSession, *, member_id: int) -> Member:
    member = await members.lock_member(session, member_id=member_id)
    if member.status != MemberStatus.ERASED:
        member = await _forfeit(session, member)
        await remove_personal_data(session, one_member(member.id))
        await session.refresh(member)
    return member


async def _forfeit(session: AsyncSession, member: Member) -> Member:
    """Take back what the member still holds, available and pending, in one transaction."""
    if not member.points_available and not member.points_pending:
        return member
    posted = await ledger.post(
        session,
        ledger.Movement(
            kind=EntryKind.FORFEIT,
            member_id=member.id,
            counter_account=Account.PROGRAM_FORFEIT,
            occurred_at=utcnow(),
            available=-member.points_available,
            pending=-member.points_pending,
            reason=forfeits.REASON,
        ),
        member_locked=True,
    )
    return posted.member


Owner = Callable[[InstrumentedAttribute[int | None]], ColumnElement[bool]]
"""Whose data a scrub removes, as a condition on a member-id column: ``one_member`` for
eraseMember, ``members_in`` for the retention job's set."""


def one_member(member_id: int) -> Owner:
    return lambda column: column == member_id


def members_in(table: Table) -> Owner:
    """The members listed in ``table`` (a table of ``member_id``)."""
    return lambda column: column.in_(select(table.c.member_id))


PERSONAL_ROWS: tuple[tuple[type[MemberEvent | TierChange | Feedback], str, Any], ...] = (
    (MemberEvent, "attributes", {}),
    (TierChange, "note", None),
    (Feedback, "comment", None),
)
"""The member's other rows and the column of each that describes the person: (model,
column, what it becomes)."""


def erased_member_values(session: AsyncSession) -> dict[str, Any]:
    """The member row as an erasure leaves it: one definition for one member and for many."""
    return {
        "status": MemberStatus.ERASED,
        "external_id": _placeholder_sql(session),
        "email": None,
        "phone": None,
        "first_name": None,
        "last_name": None,
        "date_of_birth": None,
        "referral_code": None,
        "marketing_email": False,
        "marketing_sms": False,
        "marketing_push": False,
        "closed_at": None,
        "updated_at": utcnow(),
    }


def _placeholder_sql(session: AsyncSession) -> ColumnElement[str]:
    """``erased-`` and random hex, drawn per row by the database, so the old external id
    finds nobody and a placeholder says nothing."""
    if session.get_bind().dialect.name == "postgresql":
        random = func.replace(cast(func.gen_random_uuid(), String), literal("-"), literal(""))
    else:
        random = func.lower(func.hex(func.randomblob(16)))
    return literal(ERASED_PREFIX) + random


def _erased_data(
    session: AsyncSession, member_id: InstrumentedAttribute[int | None]
) -> ColumnElement[Any]:
    """What an erased member's events carry: ``{"member": {"id": ...}, "erased": true}``."""
    return outbox.json_sql(
        session,
        {
            "member": outbox.ref_sql(session, "Member", member_id),
            "erased": outbox.true_sql(session),
        },
    )


_LINES_WITHOUT_SKUS = {
    "postgresql": (
        "(SELECT json_agg(jsonb_set(line, '{sku}', 'null'::jsonb) ORDER BY n) "
        "FROM jsonb_array_elements(purchases.lines::jsonb) WITH ORDINALITY AS t(line, n))",
        "jsonb_path_exists(purchases.lines::jsonb, '$[*] ? (@.sku != null)')",
    ),
    "sqlite": (
        "(SELECT json_group_array(json_set(value, '$.sku', NULL)) FROM json_each(purchases.lines))",
        "json_type(purchases.lines) = 'array' AND EXISTS (SELECT 1 FROM json_each(purchases.lines)"
        " WHERE json_extract(value, '$.sku') IS NOT NULL)",
    ),
}
"""Purchase lines keep category, quantity and price; their SKUs become null: (the new lines,
which purchases have a SKU to remove) per dialect."""


async def remove_personal_data(session: AsyncSession, owner: Owner) -> None:
    """The members' own columns and rows; then their past events lose their data (webhook
    receivers not yet served get ids only) and ``member.erased`` asks receivers to erase too.
    Set-based for any number of members; the members must be locked."""
    await session.execute(
        update(Member)
        .where(owner(Member.id))
        .values(erased_member_values(session))
        .execution_options(synchronize_session=False)
    )
    for model, column, value in PERSONAL_ROWS:
        await session.execute(
            update(model)
            .where(owner(model.member_id))
            .values({column: value})
            .execution_options(synchronize_session=False)
        )
    await outbox.flush(session)
    await session.execute(
        update(Event)
        .where(owner(Event.member_id))
        .values(data=_erased_data(session, Event.member_id))
        .execution_options(synchronize_session=False)
    )
    await outbox.emit_select(
        session,
        outbox.MEMBER_ERASED,
        occurred_at=utcnow(),
        rows=select(
            Member.id.label("member_id"), _erased_data(session, Member.id).label("data")
        ).where(owner(Member.id)),
    )
    lines, has_sku = _LINES_WITHOUT_SKUS[session.get_bind().dialect.name]
    await session.execute(
        update(Purchase)
        .where(owner(Purchase.member_id), text(has_sku))
        .values(lines=text(lines))
        .execution_options(synchronize_session=False)
    )


_ERASE_MEMBER = idempotency.Idempotent(
    "eraseMember", report=members.REPORTED.store, replay=members.REPORTED.load
)
"""An erased member stays as it is, with nothing left to report but its id."""
