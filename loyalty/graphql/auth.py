"""issueMemberToken: the app's backend vouches for a member and gets a token for its app."""

from datetime import datetime, timedelta
from typing import Annotated

import strawberry

from loyalty.auth import service as auth
from loyalty.graphql.errors import Payload, mutate
from loyalty.graphql.permissions import CanIssueTokens
from loyalty.ids import key_or_zero


@strawberry.input(description="The member your app's backend has signed in.")
class IssueMemberTokenInput:
    member_id: strawberry.ID = strawberry.field(
        description="The member the token will name; a closed member gets MEMBER_INACTIVE."
    )


@strawberry.type(description="The result of issueMemberToken.")
class IssueMemberTokenPayload(Payload):
    token: str | None = strawberry.field(
        default=None,
        description="Bearer token for the member's app: it reads and acts for that member only.",
    )
    expires_at: datetime | None = strawberry.field(
        default=None, description="When the token stops working; issue a new one before then."
    )


@strawberry.type
class AuthMutations:
    @strawberry.mutation(
        permission_classes=[CanIssueTokens],
        description=(
            "A short-lived token for one member's mobile app. Admin and app keys: your backend "
            "vouches for the member."
        ),
    )
    async def issue_member_token(
        self,
        info: strawberry.Info,
        input: Annotated[
            IssueMemberTokenInput, strawberry.argument(description="The member to sign in.")
        ],
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
