"""The Feedback type, submitFeedback and the admin's feedback list."""

from datetime import datetime
from typing import Annotated

import strawberry
from strawberry import Parent

from loyalty.feedback import service as feedback
from loyalty.feedback.models import Feedback as FeedbackRow
from loyalty.feedback.models import FeedbackKind as DomainFeedbackKind
from loyalty.graphql.errors import Payload, mutate
from loyalty.graphql.members import Member
from loyalty.graphql.pagination import After, Connection, First, paged
from loyalty.graphql.permissions import CanRedeem, IsAdmin, OwnMember
from loyalty.graphql.purchases import Purchase
from loyalty.ids import encode_id, key_or_zero
from loyalty.pagination import Page, PageRequest
from loyalty.validation import instant

FeedbackKind = DomainFeedbackKind
strawberry.enum(
    FeedbackKind,
    name="FeedbackKind",
    description="NPS: how likely the member is to recommend the program, 0-10; CSAT: how "
    "satisfied the member is, 1-5.",
)


@strawberry.type(description="A score a member gave, with what they said; from submitFeedback.")
class Feedback:
    kind: FeedbackKind = strawberry.field(description="NPS (0-10) or CSAT (1-5).")
    score: int = strawberry.field(description="The score, within its kind's range.")
    comment: str | None = strawberry.field(
        description="What the member said, up to 2,000 characters; null if nothing."
    )
    created_at: datetime = strawberry.field(description="When it was submitted.")

    @strawberry.field(description="Opaque identifier of the feedback.")
    def id(self, root: Parent[FeedbackRow]) -> strawberry.ID:
        return strawberry.ID(encode_id("Feedback", root.id))

    @strawberry.field(description="The purchase it is about; null when it is about no purchase.")
    async def purchase(self, root: Parent[FeedbackRow], info: strawberry.Info) -> Purchase | None:
        if root.purchase_id is None:
            return None
        return await info.context.loaders.purchase.load(root.purchase_id)

    @strawberry.field(description="The member who gave it.")
    async def member(self, root: Parent[FeedbackRow], info: strawberry.Info) -> Member:
        return await info.context.loaders.member.load(root.member_id)


@strawberry.input(description="A member's NPS or CSAT score, and optionally what they said.")
class SubmitFeedbackInput:
    idempotency_key: str = strawberry.field(
        description="Your unique key for this submission: a retry with it stores nothing twice."
    )
    member_id: strawberry.ID = strawberry.field(
        description="The member giving it (a member token: itself)."
    )
    kind: FeedbackKind = strawberry.field(description="NPS (score 0-10) or CSAT (score 1-5).")
    score: int = strawberry.field(description="Within the kind's range, else INVALID.")
    purchase_id: strawberry.ID | None = strawberry.field(
        default=None,
        description="The member's purchase it is about: one of each kind per purchase. "
        "Omitted: one of each kind per day in the program's time zone.",
    )
    comment: str | None = strawberry.field(
        default=None, description="What the member said, up to 2,000 characters."
    )


@strawberry.type(description="The result of submitFeedback.")
class SubmitFeedbackPayload(Payload):
    feedback: Feedback | None = strawberry.field(default=None, description="The stored feedback.")


@strawberry.type
class FeedbackMutations:
    @strawberry.mutation(
        permission_classes=[CanRedeem],
        extensions=[OwnMember(lambda args: args["input"].member_id)],
        description=(
            "Store a member's NPS or CSAT score. Admin and POS for a member; a member token for "
            "itself. Idempotent per idempotencyKey; a second of the same kind for the same "
            "purchase (or, without one, the same day) is ALREADY_EXISTS."
        ),
    )
    async def submit_feedback(
        self,
        info: strawberry.Info,
        input: Annotated[
            SubmitFeedbackInput, strawberry.argument(description="The member, kind and score.")
        ],
    ) -> SubmitFeedbackPayload:
        member_id = key_or_zero("Member", input.member_id)
        given = feedback.FeedbackIn(
            member_id=member_id,
            kind=DomainFeedbackKind(input.kind),
            score=input.score,
            purchase_id=None
            if input.purchase_id is None
            else key_or_zero("Purchase", input.purchase_id),
            comment=input.comment,
        )
        return await mutate(
            info,
            SubmitFeedbackPayload,
            lambda session: feedback.submit_feedback(
                session,
                scope=info.context.principal.scope,
                idempotency_key=input.idempotency_key,
                feedback=given,
            ),
            lambda result: {"feedback": result},
        )


@strawberry.type
class FeedbackQueries:
    @strawberry.field(
        permission_classes=[IsAdmin],
        description="Members' feedback, newest first, optionally narrowed. Admin only.",
        graphql_type=Connection[Feedback],
    )
    async def feedback(
        self,
        info: strawberry.Info,
        first: First = None,
        after: After = None,
        kind: Annotated[
            FeedbackKind | None, strawberry.argument(description="Only this kind.")
        ] = None,
        min_score: Annotated[
            int | None, strawberry.argument(description="Only scores at least this.")
        ] = None,
        max_score: Annotated[
            int | None, strawberry.argument(description="Only scores at most this.")
        ] = None,
        since: Annotated[
            datetime | None,
            strawberry.argument(name="from", description="Only feedback submitted at or after."),
        ] = None,
        until: Annotated[
            datetime | None,
            strawberry.argument(name="to", description="Only feedback submitted before."),
        ] = None,
    ) -> Connection[FeedbackRow]:
        async def load(request: PageRequest) -> Page[FeedbackRow]:
            found = feedback.FeedbackFilter(
                kind=None if kind is None else DomainFeedbackKind(kind),
                min_score=min_score,
                max_score=max_score,
                since=None if since is None else instant(since, "from"),
                until=None if until is None else instant(until, "to"),
            )
            return await info.context.read(
                lambda session: feedback.list_feedback(session, page=request, filter=found)
            )

        return await paged(info, first, after, load)
