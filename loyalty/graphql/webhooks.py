"""Webhook endpoints and their deliveries over GraphQL (admin only)."""

from datetime import datetime
from typing import Annotated, TypeVar

import strawberry
from strawberry import UNSET, Parent

from loyalty.graphql.errors import Payload, mutate
from loyalty.graphql.pagination import After, Connection, First, paged
from loyalty.graphql.permissions import IsAdmin
from loyalty.ids import decode_id, encode_id, key_or_zero
from loyalty.outbox import webhooks
from loyalty.outbox.models import DeliveryStatus
from loyalty.outbox.models import Webhook as WebhookRow
from loyalty.outbox.service import EVENT_TYPES
from loyalty.outbox.webhooks import DeliveryView
from loyalty.pagination import Page, PageRequest

# strawberry.enum registers the domain enum in place; the plain alias stays a type for mypy.
WebhookDeliveryStatus = DeliveryStatus
strawberry.enum(
    WebhookDeliveryStatus,
    name="WebhookDeliveryStatus",
    description="PENDING: not yet delivered (retries included); DELIVERED: the receiver "
    "answered 2xx; FAILED: given up (a final 4xx, or the attempt limit reached).",
)
EVENT_LIST = ", ".join(EVENT_TYPES)


@strawberry.type(description="An endpoint that receives events, signed per Standard Webhooks.")
class Webhook:
    url: str = strawberry.field(description="Where events are POSTed.")
    events: list[str] = strawberry.field(description=f"Event types it receives: {EVENT_LIST}.")
    description: str | None = strawberry.field(description="The admin's note.")
    active: bool = strawberry.field(description="False: disabled, nothing is sent.")
    disabled_reason: str | None = strawberry.field(
        description="Why the worker disabled it (failing too long); null if not disabled so."
    )
    created_at: datetime = strawberry.field(description="When it was created.")

    @strawberry.field(description="Opaque identifier of the webhook.")
    def id(self, root: Parent[WebhookRow]) -> strawberry.ID:
        return strawberry.ID(encode_id("Webhook", root.id))


@strawberry.type(description="One event sent (or to be sent) to one webhook.")
class WebhookDelivery:
    @strawberry.field(description="Opaque identifier; pass it to redeliverWebhookDelivery.")
    def id(self, root: Parent[webhooks.DeliveryView]) -> strawberry.ID:
        return strawberry.ID(encode_id("WebhookDelivery", root.delivery.id))

    @strawberry.field(description="The event's id: the webhook-id header; de-duplicate on it.")
    def event_id(self, root: Parent[webhooks.DeliveryView]) -> str:
        return root.event_id

    @strawberry.field(description="The event's type, such as points.earned.")
    def event_type(self, root: Parent[webhooks.DeliveryView]) -> str:
        return root.event_type

    @strawberry.field(description="Where the delivery stands.")
    def status(self, root: Parent[webhooks.DeliveryView]) -> WebhookDeliveryStatus:
        return DeliveryStatus(root.delivery.status)

    @strawberry.field(description="Requests made so far (since the last redelivery).")
    def attempts(self, root: Parent[webhooks.DeliveryView]) -> int:
        return root.delivery.attempts

    @strawberry.field(description="When the last request was made; null before the first.")
    def last_attempt_at(self, root: Parent[webhooks.DeliveryView]) -> datetime | None:
        return root.delivery.last_attempt_at

    @strawberry.field(description="PENDING: when the next attempt is due.")
    def next_attempt_at(self, root: Parent[webhooks.DeliveryView]) -> datetime | None:
        if root.delivery.status != DeliveryStatus.PENDING:
            return None
        return root.delivery.next_attempt_at

    @strawberry.field(description="The receiver's last HTTP status; null if none answered.")
    def response_status(self, root: Parent[webhooks.DeliveryView]) -> int | None:
        return root.delivery.response_status

    @strawberry.field(description="The start of the receiver's last response body (1 KB).")
    def response_body(self, root: Parent[webhooks.DeliveryView]) -> str | None:
        return root.delivery.response_body

    @strawberry.field(description="Why the last attempt failed (timeout, connection, status).")
    def last_error(self, root: Parent[webhooks.DeliveryView]) -> str | None:
        return root.delivery.last_error


@strawberry.input(description="A new webhook endpoint.")
class CreateWebhookInput:
    url: str = strawberry.field(
        description="https URL with a public address (http and local addresses only with "
        "LOYALTY_WEBHOOK_ALLOW_HTTP=1)."
    )
    events: list[str] = strawberry.field(description=f"Event types to send: {EVENT_LIST}.")
    description: str | None = strawberry.field(
        default=None, description="A note for admins, up to 500 characters."
    )


@strawberry.input(description="Changes to a webhook: fields left out stay as they are.")
class UpdateWebhookInput:
    id: strawberry.ID = strawberry.field(description="The webhook to change.")
    url: str | None = strawberry.field(default=UNSET, description="A new receiving URL.")
    events: list[str] | None = strawberry.field(
        default=UNSET, description="The event types to send from now on."
    )
    description: str | None = strawberry.field(
        default=UNSET, description="A note for admins; null clears it."
    )
    active: bool | None = strawberry.field(
        default=UNSET,
        description="false pauses it (deliveries wait); true resumes it, also after the "
        "worker disabled it.",
    )


@strawberry.input(description="A webhook to delete, with its delivery history.")
class DeleteWebhookInput:
    id: strawberry.ID = strawberry.field(description="The webhook to delete.")


@strawberry.input(description="A webhook whose signing secret to replace.")
class RotateWebhookSecretInput:
    id: strawberry.ID = strawberry.field(description="The webhook.")


@strawberry.input(description="A delivery to send again.")
class RedeliverWebhookDeliveryInput:
    delivery_id: strawberry.ID = strawberry.field(description="The delivery, any status.")


@strawberry.type(description="The result of updateWebhook or deleteWebhook.")
class WebhookPayload(Payload):
    webhook: Webhook | None = strawberry.field(default=None, description="The webhook.")


@strawberry.type(description="The result of createWebhook or rotateWebhookSecret.")
class WebhookSecretPayload(Payload):
    webhook: Webhook | None = strawberry.field(default=None, description="The webhook.")
    secret: str | None = strawberry.field(
        default=None,
        description="The signing secret (whsec_…), shown this once: give it to the receiver's "
        "Standard Webhooks library.",
    )


@strawberry.type(description="The result of redeliverWebhookDelivery.")
class RedeliverWebhookDeliveryPayload(Payload):
    delivery: WebhookDelivery | None = strawberry.field(
        default=None, description="The delivery, PENDING and due now."
    )


T = TypeVar("T")


def _no_unset(value: T) -> T | None:
    return None if value is UNSET else value


@strawberry.type
class WebhookMutations:
    @strawberry.mutation(
        permission_classes=[IsAdmin],
        description="Add a webhook endpoint; the signing secret is returned once. Admin only.",
    )
    async def create_webhook(
        self,
        info: strawberry.Info,
        input: Annotated[CreateWebhookInput, strawberry.argument(description="The endpoint.")],
    ) -> WebhookSecretPayload:
        webhook = webhooks.WebhookIn(
            url=input.url, events=input.events, description=input.description
        )
        allow = info.context.settings.webhook_allow_http
        return await mutate(
            info,
            WebhookSecretPayload,
            lambda session: webhooks.create_webhook(session, webhook=webhook, allow_local=allow),
            lambda made: {"webhook": made.webhook, "secret": made.secret},
        )

    @strawberry.mutation(
        permission_classes=[IsAdmin], description="Change a webhook endpoint. Admin only."
    )
    async def update_webhook(
        self,
        info: strawberry.Info,
        input: Annotated[UpdateWebhookInput, strawberry.argument(description="The changes.")],
    ) -> WebhookPayload:
        changes = webhooks.WebhookChanges(
            url=_no_unset(input.url),
            events=_no_unset(input.events),
            description=_no_unset(input.description),
            description_given=input.description is not UNSET,
            active=_no_unset(input.active),
        )
        allow = info.context.settings.webhook_allow_http
        return await mutate(
            info,
            WebhookPayload,
            lambda session: webhooks.update_webhook(
                session,
                webhook_id=key_or_zero("Webhook", input.id),
                changes=changes,
                allow_local=allow,
            ),
            lambda row: {"webhook": row},
        )

    @strawberry.mutation(
        permission_classes=[IsAdmin],
        description="Delete a webhook endpoint and its deliveries. Admin only.",
    )
    async def delete_webhook(
        self,
        info: strawberry.Info,
        input: Annotated[DeleteWebhookInput, strawberry.argument(description="The webhook.")],
    ) -> WebhookPayload:
        return await mutate(
            info,
            WebhookPayload,
            lambda session: webhooks.delete_webhook(
                session, webhook_id=key_or_zero("Webhook", input.id)
            ),
            lambda row: {"webhook": row},
        )

    @strawberry.mutation(
        permission_classes=[IsAdmin],
        description="Replace a webhook's signing secret; returned once. Admin only.",
    )
    async def rotate_webhook_secret(
        self,
        info: strawberry.Info,
        input: Annotated[RotateWebhookSecretInput, strawberry.argument(description="The webhook.")],
    ) -> WebhookSecretPayload:
        return await mutate(
            info,
            WebhookSecretPayload,
            lambda session: webhooks.rotate_secret(
                session, webhook_id=key_or_zero("Webhook", input.id)
            ),
            lambda made: {"webhook": made.webhook, "secret": made.secret},
        )

    @strawberry.mutation(
        permission_classes=[IsAdmin],
        description="Send a delivery again, whatever its status. Admin only.",
    )
    async def redeliver_webhook_delivery(
        self,
        info: strawberry.Info,
        input: Annotated[
            RedeliverWebhookDeliveryInput, strawberry.argument(description="The delivery.")
        ],
    ) -> RedeliverWebhookDeliveryPayload:
        return await mutate(
            info,
            RedeliverWebhookDeliveryPayload,
            lambda session: webhooks.redeliver(
                session, delivery_id=key_or_zero("WebhookDelivery", input.delivery_id)
            ),
            lambda view: {"delivery": view},
        )


EMPTY: Page[webhooks.DeliveryView] = Page(items=[], keys=[], has_next=False)


@strawberry.type
class WebhookQueries:
    @strawberry.field(
        permission_classes=[IsAdmin], description="Webhook endpoints, oldest first. Admin only."
    )
    async def webhooks(
        self, info: strawberry.Info, first: First = None, after: After = None
    ) -> Connection[Webhook]:
        return await paged(
            info,
            first,
            after,
            lambda request: info.context.read(
                lambda session: webhooks.list_webhooks(session, page=request)
            ),
        )

    @strawberry.field(permission_classes=[IsAdmin], description="One webhook. Admin only.")
    async def webhook(
        self,
        info: strawberry.Info,
        id: Annotated[strawberry.ID, strawberry.argument(description="The webhook's id.")],
    ) -> Webhook | None:
        webhook_id = decode_id("Webhook", id)
        if webhook_id is None:
            return None
        return await info.context.read(
            lambda session: webhooks.get_webhook(session, webhook_id=webhook_id)
        )

    @strawberry.field(
        permission_classes=[IsAdmin],
        description="A webhook's deliveries, newest first. Admin only.",
        graphql_type=Connection[WebhookDelivery],
    )
    async def webhook_deliveries(
        self,
        info: strawberry.Info,
        webhook_id: Annotated[strawberry.ID, strawberry.argument(description="The webhook.")],
        first: First = None,
        after: After = None,
        status: Annotated[
            WebhookDeliveryStatus | None,
            strawberry.argument(description="Only deliveries in this status."),
        ] = None,
    ) -> Connection[DeliveryView]:
        key = decode_id("Webhook", webhook_id)

        async def load(request: PageRequest) -> Page[DeliveryView]:
            if key is None:
                return EMPTY
            return await info.context.read(
                lambda session: webhooks.list_deliveries(
                    session,
                    webhook_id=key,
                    status=None if status is None else status.value,
                    page=request,
                )
            )

        return await paged(info, first, after, load)
