"""Program settings: read by every earning operation, changed by admins."""

from collections.abc import Callable
from dataclasses import dataclass, fields
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any, TypeVar
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

from sqlalchemy import exists, select
from sqlalchemy.ext.asyncio import AsyncSession

from loyalty.db import utcnow
from loyalty.errors import invalid
from loyalty.money import parse_currency, parse_decimal
from loyalty.program.models import PROGRAM_ID, Program
from loyalty.purchases.models import Purchase
from loyalty.validation import UNSET, Unset, int_between, required_text

T = TypeVar("T")


@dataclass(frozen=True)
class ProgramChanges:
    name: str | Unset = UNSET
    currency: str | Unset = UNSET
    points_per_unit: str | Unset = UNSET
    pending_days: int | Unset = UNSET
    points_expire_after_days: int | Unset | None = UNSET
    tier_window_days: int | Unset = UNSET
    time_zone: str | Unset = UNSET
    max_backdate_days: int | Unset = UNSET
    referrer_points: int | Unset = UNSET
    referee_points: int | Unset = UNSET
    referral_limit: int | Unset | None = UNSET
    idempotency_retention_days: int | Unset = UNSET
    expiry_warning_days: int | Unset = UNSET
    closed_member_retention_days: int | Unset | None = UNSET


def require_within_backdate(program: Program, occurred_at: datetime, now: datetime) -> None:
    """An offline till may replay its queue, but only ``maxBackdateDays`` back."""
    if occurred_at < now - timedelta(days=program.max_backdate_days):
        raise invalid(
            f"Must not be more than {program.max_backdate_days} days in the past "
            "(the program's maxBackdateDays).",
            "occurredAt",
        )


async def get_program(session: AsyncSession, *, for_update: bool = False) -> Program:
    statement = select(Program).where(Program.id == PROGRAM_ID)
    if for_update:
        statement = statement.with_for_update()
    return (await session.scalars(statement)).one()


async def update_program(session: AsyncSession, *, changes: ProgramChanges) -> Program:
    """Apply the fields that were sent; a currency change is refused once purchases exist."""
    program = await get_program(session, for_update=True)
    values = _validated(changes)
    if "currency" in values and values["currency"] != program.currency:
        has_purchases = await session.scalar(select(exists().where(Purchase.id.isnot(None))))
        if has_purchases:
            raise invalid(
                "The currency cannot change once purchases are recorded in it.", "currency"
            )
    pending = values.get("pending_days", program.pending_days)
    expiry = values.get("points_expire_after_days", program.points_expire_after_days)
    if expiry is not None and expiry <= pending:
        raise invalid(
            "Points must expire after they stop being pending (pointsExpireAfterDays > "
            "pendingDays).",
            "pointsExpireAfterDays",
        )
    for name, value in values.items():
        setattr(program, name, value)
    program.updated_at = utcnow()
    await session.flush()
    return program


def _validated(changes: ProgramChanges) -> dict[str, Any]:
    sent = {
        f.name: getattr(changes, f.name)
        for f in fields(changes)
        if getattr(changes, f.name) is not UNSET
    }
    checks: dict[str, Callable[[Any], Any]] = {
        "name": lambda v: required_text(v, 200, "name"),
        "currency": lambda v: parse_currency(v or "", "currency"),
        "points_per_unit": _points_per_unit,
        "pending_days": lambda v: int_between(_not_null(v, "pendingDays"), 0, 365, "pendingDays"),
        "points_expire_after_days": lambda v: (
            None if v is None else int_between(v, 1, 36500, "pointsExpireAfterDays")
        ),
        "tier_window_days": lambda v: int_between(
            _not_null(v, "tierWindowDays"), 1, 3650, "tierWindowDays"
        ),
        "time_zone": _time_zone,
        "max_backdate_days": lambda v: int_between(
            _not_null(v, "maxBackdateDays"), 0, 3650, "maxBackdateDays"
        ),
        "referrer_points": lambda v: int_between(
            _not_null(v, "referrerPoints"), 0, 1_000_000, "referrerPoints"
        ),
        "referee_points": lambda v: int_between(
            _not_null(v, "refereePoints"), 0, 1_000_000, "refereePoints"
        ),
        "referral_limit": lambda v: (
            None if v is None else int_between(v, 0, 1_000_000, "referralLimit")
        ),
        "idempotency_retention_days": lambda v: int_between(
            _not_null(v, "idempotencyRetentionDays"), 1, 3650, "idempotencyRetentionDays"
        ),
        "expiry_warning_days": lambda v: int_between(
            _not_null(v, "expiryWarningDays"), 0, 365, "expiryWarningDays"
        ),
        "closed_member_retention_days": lambda v: (
            None if v is None else int_between(v, 1, 36500, "closedMemberRetentionDays")
        ),
    }
    return {name: checks[name](value) for name, value in sent.items()}


_MACHINE_ZONES = frozenset({"localtime", "posixrules", "Factory"})
"""Files some systems keep beside the zones: not portable, so not a program's time zone."""


def _time_zone(value: str | None) -> str:
    name = required_text(_not_null(value, "timeZone"), 64, "timeZone")
    try:
        if name not in available_timezones() or name in _MACHINE_ZONES:
            raise ZoneInfoNotFoundError(name)
        ZoneInfo(name)
    except (ValueError, OSError, ZoneInfoNotFoundError):
        raise invalid(
            f"{name!r} is not an IANA time zone (e.g. Europe/Paris).", "timeZone"
        ) from None
    return name


def _not_null(value: T | None, field: str) -> T:
    if value is None:
        raise invalid("Must not be null.", field)
    return value


def _points_per_unit(value: str | None) -> Decimal:
    rate = parse_decimal(value, "pointsPerUnit")
    if rate < 0 or rate > 10000:
        raise invalid("Must be between 0 and 10000.", "pointsPerUnit")
    return rate
