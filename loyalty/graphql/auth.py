"""issueMemberToken: the app's backend vouches for a member and gets a token for its app."""

from datetime import datetime, timedelta

import strawberry

from loyalty.auth import service as auth
from loyalty.graphql.errors import UserError, mutate
from loyalty.graphql.permissions import CanIssueTokens
from loyalty.ids import key_or_zero


@strawberry.input
class IssueMemberTokenInput:
    member_id: strawberry.ID


@strawberry.type
class IssueMemberTokenPayload:
    errors: list[UserError]
    token: str | None = None
    expires_at: datetime | None = None


@strawberry.type
class AuthMutations:
    @strawberry.mutation(permission_classes=[CanIssueTokens])
    async def issue_member_token(
        self, info: strawberry.Info, input: IssueMemberTokenInput
    ) -> IssueMemberTokenPayload:
        context = info.context
        secret = await context.member_token_secret()
        ttl = timedelta(seconds=context.settings.member_token_ttl_seconds)
        return await mutate(
            info,
            IssueMemberTokenPayload,
            lambda session: auth.issue_token_for_member(
                session,
                member_id=key_or_zero("Member", input.member_id),
                secret=secret,
                ttl=ttl,
            ),
            lambda issued: {"token": issued[0], "expires_at": issued[1]},
        )
