"""The error model every service speaks: a code clients can switch on, a field path, a message."""

from enum import StrEnum


class ErrorCode(StrEnum):
    INVALID = "INVALID"
    NOT_FOUND = "NOT_FOUND"
    ALREADY_EXISTS = "ALREADY_EXISTS"
    INSUFFICIENT_POINTS = "INSUFFICIENT_POINTS"
    OUT_OF_STOCK = "OUT_OF_STOCK"
    LIMIT_REACHED = "LIMIT_REACHED"
    NOT_ELIGIBLE = "NOT_ELIGIBLE"
    MEMBER_INACTIVE = "MEMBER_INACTIVE"
    CURRENCY_NOT_SUPPORTED = "CURRENCY_NOT_SUPPORTED"
    IDEMPOTENCY_CONFLICT = "IDEMPOTENCY_CONFLICT"
    ALREADY_REFUNDED = "ALREADY_REFUNDED"
    ALREADY_CANCELLED = "ALREADY_CANCELLED"
    NOT_IN_SEGMENT = "NOT_IN_SEGMENT"
    """The reward is for members of some segments, and the member is in none of them."""


class DomainError(Exception):
    """A business failure: reported to the caller as a UserError, and the transaction rolls back."""

    def __init__(self, code: ErrorCode, message: str, field: list[str] | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.field = field

    def each(self) -> list["DomainError"]:
        """The errors to report: this one (DomainErrors carries several)."""
        return [self]


def invalid(message: str, *field: str) -> DomainError:
    return DomainError(ErrorCode.INVALID, message, list(field) or None)


def not_found(what: str, *field: str) -> DomainError:
    return DomainError(ErrorCode.NOT_FOUND, f"{what} not found.", list(field) or None)


class DomainErrors(DomainError):
    """Several input errors found together: every one is reported, not just the first."""

    def __init__(self, errors: list[DomainError]) -> None:
        first = errors[0]
        super().__init__(first.code, first.message, first.field)
        self.errors = errors

    def each(self) -> list[DomainError]:
        return self.errors
