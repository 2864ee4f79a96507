"""UserErrors for business failures (in every payload, which extends Payload), and the formatting
of every other GraphQL error."""

from collections.abc import Awaitable, Callable, Iterator
from typing import Any, TypeVar

import strawberry
from graphql import GraphQLError
from sqlalchemy.ext.asyncio import AsyncSession
from strawberry.extensions import SchemaExtension

from loyalty.errors import DomainError
from loyalty.errors import ErrorCode as DomainErrorCode
from loyalty.graphql.audit import audited
from loyalty.metrics import MUTATIONS

# strawberry.enum registers the domain enum in place; the plain alias stays a type for mypy.
ErrorCode = DomainErrorCode
strawberry.enum(
    ErrorCode,
    name="ErrorCode",
    description="Why a business operation was refused: switch on it, not on the message.",
)


@strawberry.type(description="A business failure: the operation wrote nothing.")
class UserError:
    code: ErrorCode = strawberry.field(description="What went wrong, for programs.")
    field: list[str] | None = strawberry.field(
        description='Path to the input field at fault, such as ["total", "amount"]; null if none.'
    )
    message: str = strawberry.field(description="What went wrong, for people (English).")

    @classmethod
    def of(cls, error: DomainError) -> "UserError":
        return cls(code=error.code, field=error.field, message=error.message)


@strawberry.type
class Payload:
    """What every mutation payload extends: its errors beside what it wrote, so the field and
    its meaning are declared once (``mutate`` fills it)."""

    errors: list[UserError] = strawberry.field(
        description=(
            "Business failures, such as NOT_FOUND or INVALID. Empty on success; otherwise "
            "nothing was written and the other fields are null."
        )
    )


P = TypeVar("P")
R = TypeVar("R")


async def mutate(
    info: strawberry.Info,
    payload: Callable[..., P],
    work: Callable[[AsyncSession], Awaitable[R]],
    shape: Callable[[R], dict[str, Any]],
) -> P:
    """Run a mutation's service call and its audit entry in one transaction; a DomainError
    rolls both back to a UserError."""
    try:
        result = await info.context.write(lambda session: audited(info, session, work, shape))
    except DomainError as error:
        MUTATIONS.labels(info.field_name, error.code.value).inc()
        info.context.fail(error.code.value)
        return payload(errors=[UserError.of(each) for each in error.each()])
    MUTATIONS.labels(info.field_name, "ok").inc()
    return payload(errors=[], **shape(result))


class ErrorFormatting(SchemaExtension):
    """DomainErrors raised in queries keep their code; unexpected exceptions are masked."""

    def on_operation(self) -> Iterator[None]:
        yield
        execution = self.execution_context
        context = execution.context
        result = execution.result
        if context is not None:
            context.operation = execution.operation_name or ",".join(
                dict.fromkeys(context.root_fields.values())
            )
        errors = getattr(result, "errors", None)
        if result is None or not errors:
            return
        result.errors = [self._format(error) for error in errors]
        if context is not None:
            context.fail((result.errors[0].extensions or {}).get("code", "GRAPHQL"))

    @staticmethod
    def _format(error: GraphQLError) -> GraphQLError:
        original = error.original_error
        if original is None or isinstance(original, GraphQLError):
            return error
        if isinstance(original, DomainError):
            code, message = original.code.value, original.message
        else:
            code, message = "INTERNAL", "Internal error."
        return GraphQLError(
            message,
            nodes=error.nodes,
            source=error.source,
            positions=error.positions,
            path=error.path,
            extensions={"code": code},
        )
