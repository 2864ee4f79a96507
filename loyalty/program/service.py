"""Program settings: read by every earning operation, changed by admins."""

from datetime import datetime, timedelta
from decimal import Decimal
from typing import Annotated, Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

from pydantic import BaseModel, BeforeValidator, ConfigDict
from sqlalchemy import exists, select
from sqlalchemy.ext.asyncio import AsyncSession

from loyalty.db import utcnow
from loyalty.errors import DomainError, DomainErrors
from loyalty.inputs import between, check_with, checked, invalid_at, refused
from loyalty.money import parse_currency, parse_decimal
from loyalty.program.models import PROGRAM_ID, Program
from loyalty.purchases.models import Purchase
from loyalty.validation import required_text


def _currency(value: Any) -> str:
    return str(checked(lambda v: parse_currency(v or ""), value))


def _points_per_unit(value: Any) -> Decimal:
    rate: Decimal = value if isinstance(value, Decimal) else checked(parse_decimal, value)
    if rate < 0 or rate > 10000:
        raise refused("Must be between 0 and 10000.")
    return rate


_MACHINE_ZONES = frozenset({"localtime", "posixrules", "Factory"})
"""Files some systems keep beside the zones: not portable, so not a program's time zone."""


def _time_zone(value: Any) -> str:
    if value is None:
        raise refused("Must not be null.")
    name: str = checked(lambda v: required_text(v, 64), value)
    try:
        if name not in available_timezones() or name in _MACHINE_ZONES:
            raise ZoneInfoNotFoundError(name)
        ZoneInfo(name)
    except (ValueError, OSError, ZoneInfoNotFoundError):
        raise refused(f"{name!r} is not an IANA time zone (e.g. Europe/Paris).") from None
    return name


class ProgramChanges(BaseModel):
    """The settings an admin sends, each checked on its own, every error at once. Only the
    fields sent are set (``model_fields_set``); the others keep their value."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: Annotated[str | None, check_with(required_text, 200)] = None
    currency: Annotated[str | None, BeforeValidator(_currency)] = None
    points_per_unit: Annotated[Decimal | None, BeforeValidator(_points_per_unit)] = None
    pending_days: Annotated[int | None, between(0, 365)] = None
    points_expire_after_days: Annotated[int | None, between(1, 36500, nullable=True)] = None
    tier_window_days: Annotated[int | None, between(1, 3650)] = None
    time_zone: Annotated[str | None, BeforeValidator(_time_zone)] = None
    max_backdate_days: Annotated[int | None, between(0, 3650)] = None
    referrer_points: Annotated[int | None, between(0, 1_000_000)] = None
    referee_points: Annotated[int | None, between(0, 1_000_000)] = None
    referral_limit: Annotated[int | None, between(0, 1_000_000, nullable=True)] = None
    idempotency_retention_days: Annotated[int | None, between(1, 3650)] = None
    expiry_warning_days: Annotated[int | None, between(0, 365)] = None
    closed_member_retention_days: Annotated[int | None, between(1, 36500, nullable=True)] = None

    def sent(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in self.model_fields_set}


def require_within_backdate(program: Program, occurred_at: datetime, now: datetime) -> None:
    """An offline till may replay its queue, but only ``maxBackdateDays`` back."""
    if occurred_at < now - timedelta(days=program.max_backdate_days):
        raise invalid_at(
            f"Must not be more than {program.max_backdate_days} days in the past "
            "(the program's maxBackdateDays).",
            "occurred_at",
        )


async def get_program(session: AsyncSession, *, for_update: bool = False) -> Program:
    statement = select(Program).where(Program.id == PROGRAM_ID)
    if for_update:
        statement = statement.with_for_update()
    return (await session.scalars(statement)).one()


async def update_program(session: AsyncSession, *, changes: ProgramChanges) -> Program:
    """Apply the fields that were sent; a currency change is refused once purchases exist."""
    program = await get_program(session, for_update=True)
    values = changes.sent()
    errors: list[DomainError] = []
    if "currency" in values and values["currency"] != program.currency:
        has_purchases = await session.scalar(select(exists().where(Purchase.id.isnot(None))))
        if has_purchases:
            errors.append(
                invalid_at(
                    "The currency cannot change once purchases are recorded in it.", "currency"
                )
            )
    pending = values.get("pending_days", program.pending_days)
    expiry = values.get("points_expire_after_days", program.points_expire_after_days)
    if expiry is not None and expiry <= pending:
        errors.append(
            invalid_at(
                "Points must expire after they stop being pending (pointsExpireAfterDays > "
                "pendingDays).",
                "points_expire_after_days",
            )
        )
    if errors:
        raise DomainErrors(errors)
    for name, value in values.items():
        setattr(program, name, value)
    program.updated_at = utcnow()
    await session.flush()
    return program
