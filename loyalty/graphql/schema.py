"""The schema: every domain's queries and mutations, behind the request-hygiene extensions."""

import logging
import re
from collections.abc import Callable

import strawberry
from graphql import GraphQLError
from strawberry.extensions import (
    AddValidationRules,
    DisableIntrospection,
    MaxAliasesLimiter,
    MaxTokensLimiter,
    ParserCache,
    QueryDepthLimiter,
    SchemaExtension,
)
from strawberry.schema.config import StrawberryConfig
from strawberry.types import ExecutionContext

from loyalty.config import Settings
from loyalty.errors import DomainError
from loyalty.graphql.access import FieldAccessControl
from loyalty.graphql.analytics import AnalyticsQueries
from loyalty.graphql.audit import AuditQueries
from loyalty.graphql.auth import AuthMutations
from loyalty.graphql.errors import ErrorFormatting
from loyalty.graphql.events import EventMutations
from loyalty.graphql.feedback import FeedbackMutations, FeedbackQueries
from loyalty.graphql.ledger import LedgerMutations, LedgerQueries
from loyalty.graphql.limits import BoundedValidationCache
from loyalty.graphql.live import Subscription
from loyalty.graphql.members import MemberMutations, MemberQueries
from loyalty.graphql.privacy import PrivacyMutations, PrivacyQueries
from loyalty.graphql.program import ProgramMutations, ProgramQueries
from loyalty.graphql.purchases import PurchaseMutations, PurchaseQueries
from loyalty.graphql.rewards import RewardMutations, RewardQueries
from loyalty.graphql.rules import RuleMutations, RuleQueries
from loyalty.graphql.scalars import SCALARS
from loyalty.graphql.segments import SegmentMutations, SegmentQueries
from loyalty.graphql.tiers import TierMutations, TierQueries
from loyalty.graphql.webhooks import WebhookMutations, WebhookQueries

logger = logging.getLogger("loyalty.graphql")
SUGGESTION = re.compile(r"\s*Did you mean .*\?", re.DOTALL)


@strawberry.type(description="Reads; each field says which callers may ask.")
class Query(
    MemberQueries,
    ProgramQueries,
    RewardQueries,
    TierQueries,
    LedgerQueries,
    RuleQueries,
    PurchaseQueries,
    AuditQueries,
    FeedbackQueries,
    AnalyticsQueries,
    PrivacyQueries,
    WebhookQueries,
    SegmentQueries,
):
    pass


@strawberry.type(
    description="Writes: each takes one input and returns a payload with errors beside its result."
)
class Mutation(
    MemberMutations,
    PurchaseMutations,
    LedgerMutations,
    ProgramMutations,
    AuthMutations,
    RewardMutations,
    TierMutations,
    RuleMutations,
    EventMutations,
    FeedbackMutations,
    PrivacyMutations,
    WebhookMutations,
    SegmentMutations,
):
    pass


def is_unexpected(error: GraphQLError) -> bool:
    original = error.original_error
    return original is not None and not isinstance(original, GraphQLError | DomainError)


class LoyaltySchema(strawberry.Schema):
    """Logs client errors as one line and only internal ones with a traceback.

    Outside debug mode it also drops "Did you mean …?" from every message (fields, arguments,
    types, enum values), which would otherwise spell out the schema introspection hides.
    """

    def __init__(self, *args: object, debug: bool, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]  # strawberry's own signature
        self.debug = debug

    def process_errors(
        self, errors: list[GraphQLError], execution_context: ExecutionContext | None = None
    ) -> None:
        operation = execution_context.operation_name if execution_context else None
        for error in errors:
            if not self.debug:
                error.message = SUGGESTION.sub("", error.message)
            if is_unexpected(error):
                logger.error(
                    "internal error in %s at %s",
                    operation,
                    error.path,
                    exc_info=error.original_error,
                )
            else:
                code = (error.extensions or {}).get("code")
                if code is None and isinstance(error.original_error, DomainError):
                    code = error.original_error.code.value
                logger.info(
                    "client error in %s: %s %s", operation, code or "GRAPHQL", error.message
                )


def build_schema(settings: Settings) -> strawberry.Schema:
    # The limits' rule classes are made once: the validation cache keys on them, so rules made
    # afresh per request would never hit the cache.
    limits = [
        *QueryDepthLimiter(max_depth=settings.max_query_depth).validation_rules,
        *MaxAliasesLimiter(max_alias_count=settings.max_aliases).validation_rules,
    ]
    extensions: list[Callable[[], SchemaExtension] | type[SchemaExtension]] = [
        ErrorFormatting,
        lambda: MaxTokensLimiter(max_token_count=settings.max_tokens),
        lambda: AddValidationRules(limits),
        lambda: ParserCache(maxsize=256),
        lambda: BoundedValidationCache(max_fields=settings.max_fields, maxsize=256),
        FieldAccessControl,
    ]
    if not settings.debug:
        extensions.append(DisableIntrospection)
    return LoyaltySchema(
        query=Query,
        mutation=Mutation,
        subscription=Subscription,
        extensions=extensions,
        config=StrawberryConfig(
            auto_camel_case=True,
            scalar_map=SCALARS,
            disable_field_suggestions=not settings.debug,
        ),
        debug=settings.debug,
    )


def export_sdl() -> str:
    return build_schema(Settings(debug=True)).as_str() + "\n"
