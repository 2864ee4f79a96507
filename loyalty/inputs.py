"""Typed inputs: pydantic models that report every field error at once.

A model's fields carry Python names; clients name them in camelCase. ``field_path`` is the one
mapping between the two, so services and models name a field once, in Python, and the errors
carry the path the contract documents (``["pointsPerUnit"]``, ``["total", "amount"]``).

Inputs whose checks read the database (a webhook's URL, a segment's tiers) or run on every
purchase are checked field by field instead, with ``collect``: the same errors, all at once.
"""

from collections.abc import Awaitable, Callable
from typing import Any, TypeVar, cast

from pydantic import BaseModel, BeforeValidator, ValidationError
from pydantic.alias_generators import to_camel
from pydantic_core import PydanticCustomError

from loyalty.errors import DomainError, DomainErrors, ErrorCode, invalid
from loyalty.validation import int_between

V = TypeVar("V")
M = TypeVar("M", bound=BaseModel)


def field_path(loc: tuple[int | str, ...], *, indexes: bool = False) -> list[str]:
    """A location in an input as clients name it: camelCase; list indexes as strings when
    ``indexes`` (a basket line), else dropped (a value in a list of conditions)."""
    return [
        to_camel(part) if isinstance(part, str) else str(part)
        for part in loc
        if indexes or isinstance(part, str)
    ]


def invalid_at(message: str, *loc: str) -> DomainError:
    """An INVALID error about the input field a service names in Python."""
    return invalid(message, *field_path(loc))


def refused(message: str, code: ErrorCode = ErrorCode.INVALID) -> PydanticCustomError:
    """A field error from a validator: its code becomes the UserError's."""
    return PydanticCustomError(code.value, "{message}", {"message": message})


def checked(check: Callable[[V], Any], value: V) -> Any:
    """Runs a shared check (which raises DomainError) as a pydantic validator."""
    try:
        return check(value)
    except DomainError as error:
        raise refused(error.message, error.code) from None


def check_with(check: Callable[..., Any], *args: Any) -> BeforeValidator:
    """A field validator running a shared check as ``check(value, *args)``."""
    return BeforeValidator(lambda value: checked(lambda v: check(v, *args), value))


def between(low: int, high: int, *, nullable: bool = False) -> BeforeValidator:
    """A field validator for an int from ``low`` to ``high``; null only when ``nullable``."""

    def check(value: Any) -> Any:
        if value is None:
            if nullable:
                return None
            raise refused("Must not be null.")
        return checked(lambda v: int_between(v, low, high), value)

    return BeforeValidator(check)


def collect(errors: list[DomainError], check: Callable[..., V], *args: Any) -> V:
    """``check(*args)`` for an input checked field by field: a DomainError joins ``errors``
    and None stands in for the value (the caller raises DomainErrors before it uses any value
    when ``errors`` is not empty)."""
    try:
        return check(*args)
    except DomainError as error:
        errors.append(error)
        return cast(V, None)


async def collect_awaited(errors: list[DomainError], pending: Awaitable[V]) -> V:
    """``collect`` for a check that reads the database."""
    try:
        return await pending
    except DomainError as error:
        errors.append(error)
        return cast(V, None)


def errors_of(error: ValidationError, *, indexes: bool = False) -> list[DomainError]:
    return [
        DomainError(
            ErrorCode.__members__.get(detail["type"], ErrorCode.INVALID),
            detail["msg"],
            field_path(detail["loc"], indexes=indexes) or None,
        )
        for detail in error.errors()
    ]


def parse(model: type[M], /, **values: Any) -> M:
    """``model`` from ``values``, or DomainErrors naming every field at fault."""
    return _parsed(model, values, indexes=False)


def parse_indexed(model: type[M], /, **values: Any) -> M:
    """``parse``, for a model whose errors name a list item by its index (``["benefits",
    "2"]``) where the contract does."""
    return _parsed(model, values, indexes=True)


def _parsed(model: type[M], values: dict[str, Any], *, indexes: bool) -> M:
    try:
        return model(**values)
    except ValidationError as error:
        raise DomainErrors(errors_of(error, indexes=indexes)) from None


def sent_fields(given: object, model: type[BaseModel], unset: object) -> dict[str, Any]:
    """The fields of ``model`` a client sent in ``given`` (those it has, not ``unset``): on an
    update, the model's ``model_fields_set`` then names the fields to change."""
    return {
        name: value
        for name in model.model_fields
        if (value := getattr(given, name, unset)) is not unset
    }
