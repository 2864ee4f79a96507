"""The schema: every domain's queries and mutations, behind the request-hygiene extensions."""

from collections.abc import Callable

import strawberry
from strawberry.extensions import (
    AddValidationRules,
    DisableIntrospection,
    MaxAliasesLimiter,
    MaxTokensLimiter,
    ParserCache,
    QueryDepthLimiter,
    SchemaExtension,
    ValidationCache,
)
from strawberry.schema.config import StrawberryConfig

from loyalty.config import Settings
from loyalty.graphql.audit import AuditQueries
from loyalty.graphql.auth import AuthMutations
from loyalty.graphql.errors import ErrorFormatting
from loyalty.graphql.ledger import LedgerMutations, LedgerQueries
from loyalty.graphql.members import MemberMutations, MemberQueries
from loyalty.graphql.program import ProgramMutations, ProgramQueries
from loyalty.graphql.purchases import PurchaseMutations
from loyalty.graphql.rewards import RewardMutations, RewardQueries
from loyalty.graphql.rules import RuleMutations, RuleQueries
from loyalty.graphql.scalars import SCALARS
from loyalty.graphql.tiers import TierMutations, TierQueries


@strawberry.type
class Query(
    MemberQueries,
    ProgramQueries,
    RewardQueries,
    TierQueries,
    LedgerQueries,
    RuleQueries,
    AuditQueries,
):
    pass


@strawberry.type
class Mutation(
    MemberMutations,
    PurchaseMutations,
    LedgerMutations,
    ProgramMutations,
    AuthMutations,
    RewardMutations,
    TierMutations,
    RuleMutations,
):
    pass


def build_schema(settings: Settings) -> strawberry.Schema:
    # The limits' rule classes are made once: ValidationCache keys on them, so rules made
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
        lambda: ValidationCache(maxsize=256),
    ]
    if not settings.debug:
        extensions.append(DisableIntrospection)
    return strawberry.Schema(
        query=Query,
        mutation=Mutation,
        extensions=extensions,
        config=StrawberryConfig(auto_camel_case=True, scalar_map=SCALARS),
    )


def export_sdl() -> str:
    return build_schema(Settings(debug=True)).as_str() + "\n"
