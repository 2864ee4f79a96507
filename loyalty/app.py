"""The ASGI application: GraphQL (with subscriptions over WebSocket), health, readiness,
metrics and the admin console."""

import asyncio
import gc
import json
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from cross_web import HTTPException
from graphql import (
    GraphQLError,
    GraphQLFormattedError,
    OperationDefinitionNode,
    OperationType,
    parse,
)
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Mount, Route, WebSocketRoute
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from starlette.websockets import WebSocket
from strawberry.asgi import GraphQL
from strawberry.exceptions import ConnectionRejectionError
from strawberry.http import GraphQLHTTPResponse
from strawberry.schema import BaseSchema
from strawberry.subscriptions import GRAPHQL_TRANSPORT_WS_PROTOCOL
from strawberry.subscriptions.protocols.graphql_transport_ws.handlers import (
    BaseGraphQLTransportWSHandler,
)
from strawberry.subscriptions.protocols.graphql_transport_ws.types import (
    ErrorMessage,
    SubscribeMessage,
)
from strawberry.types import ExecutionResult
from strawberry.types.unset import UNSET, UnsetType

from loyalty import migrate
from loyalty.admin_console import console_app
from loyalty.auth import service as auth
from loyalty.auth.service import Principal
from loyalty.config import Settings, get_settings
from loyalty.db import Database, utcnow
from loyalty.graphql.context import Context, SubscriptionContext
from loyalty.graphql.schema import build_schema
from loyalty.logs import log_request
from loyalty.metrics import HTTP_REQUESTS, OUTBOX_LAG, WEBHOOK_ATTEMPTS, WEBHOOK_DELIVERIES
from loyalty.outbox.live import Feed
from loyalty.outbox.webhooks import delivery_stats
from loyalty.ratelimit import RateLimiter, rate_limited_response
from loyalty.request_id import RequestId, request_id_of
from loyalty.validation import json_depth


class MemberTokenSecret:
    """The signing secret, read (or generated) once per process."""

    def __init__(self, db: Database, configured: str | None) -> None:
        self._db = db
        self._value = configured
        self._lock = asyncio.Lock()

    async def __call__(self) -> str:
        if self._value is None:
            async with self._lock:
                if self._value is None:
                    async with self._db.transaction() as session:
                        self._value = await auth.signing_secret(session, configured=None)
        return self._value


GRAPHQL_RESPONSE_JSON = "application/graphql-response+json"


def _error(
    message: str, code: str, status_code: int, headers: dict[str, str] | None = None
) -> JSONResponse:
    return JSONResponse(
        {"data": None, "errors": [{"message": message, "extensions": {"code": code}}]},
        status_code=status_code,
        headers=headers,
    )


def _unauthenticated(message: str) -> JSONResponse:
    return _error(message, "UNAUTHENTICATED", 401, {"WWW-Authenticate": "Bearer"})


async def read_body(receive: Receive, limit: int) -> bytes | None:
    """The request body, or None once it grows past ``limit`` bytes."""
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            break
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
        if not message.get("more_body", False):
            break
    return b"".join(chunks)


def replay(body: bytes) -> Receive:
    """A ``receive`` that hands GraphQL the body already read, then waits for a disconnect."""
    sent = False

    async def receive() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return {"type": "http.disconnect"}

    return receive


def operation_type(
    query: object, operation_name: object, *, max_tokens: int
) -> OperationType | None:
    """The type of the operation a request would run; None when the document does not parse
    or names no such operation (GraphQL then reports it as usual)."""
    if not isinstance(query, str):
        return None
    try:
        document = parse(query, max_tokens=max_tokens)
    except GraphQLError:
        return None
    for node in document.definitions:
        if isinstance(node, OperationDefinitionNode) and (
            operation_name is None or (node.name is not None and node.name.value == operation_name)
        ):
            return node.operation
    return None


def is_subscription(data: object, *, max_tokens: int) -> bool:
    """Whether an HTTP request would run a subscription (only WebSockets do); parses only
    documents that mention the word, so other requests pay a substring test."""
    query = getattr(data, "query", None)
    if not isinstance(query, str) or "subscription" not in query:
        return False
    name = getattr(data, "operation_name", None)
    return operation_type(query, name, max_tokens=max_tokens) == OperationType.SUBSCRIPTION


class SubscriptionsOnly(BaseGraphQLTransportWSHandler[Context | SubscriptionContext, None]):
    """A WebSocket carries subscriptions only: queries and mutations go over HTTP, where each
    request is rate-limited, timed out and logged."""

    async def handle_subscribe(self, message: SubscribeMessage) -> None:
        payload = message.get("payload") or {}
        kind = operation_type(
            payload.get("query"),
            payload.get("operationName"),
            max_tokens=self.view.settings.max_tokens,  # type: ignore[attr-defined]  # the view is a LoyaltyGraphQL
        )
        if self.connection_acknowledged and kind not in (None, OperationType.SUBSCRIPTION):
            error: GraphQLFormattedError = {
                "message": "Only subscriptions run over the WebSocket; send queries and "
                "mutations over HTTP.",
                "extensions": {"code": "BAD_REQUEST"},
            }
            refusal: ErrorMessage = {"id": message["id"], "type": "error", "payload": [error]}
            await self.send_message(refusal)
            return
        await super().handle_subscribe(message)


def bearer_token(params: dict[str, object]) -> str | None:
    """The token of ``{"Authorization": "Bearer <token>"}`` (the key in any case)."""
    value = next((v for k, v in params.items() if k.lower() == "authorization"), None)
    if not isinstance(value, str):
        return None
    scheme, _, token = value.partition(" ")
    return token.strip() if scheme.lower() == "bearer" and token.strip() else None


class LoyaltyGraphQL(GraphQL[Context | SubscriptionContext, None]):
    """Authenticates every request before GraphQL runs; 401 when the credentials are bad.
    A WebSocket (graphql-transport-ws) authenticates in ``connection_init`` instead."""

    graphql_transport_ws_handler_class = SubscriptionsOnly

    def __init__(self, schema: BaseSchema, *, db: Database, settings: Settings) -> None:
        super().__init__(
            schema,
            graphql_ide="graphiql" if settings.debug else None,
            allow_queries_via_get=settings.debug,
            subscription_protocols=(GRAPHQL_TRANSPORT_WS_PROTOCOL,),
        )
        self.db = db
        self.settings = settings
        self.member_token_secret = MemberTokenSecret(db, settings.secret_key)
        self.rate_limiter = RateLimiter.from_settings(settings)
        self.feed = Feed(db, listen_url=settings.listen_database_url)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "websocket":
            try:
                await super().__call__(scope, receive, send)
            finally:
                context = scope.get("state", {}).get("context")
                if context is not None:
                    await context.close()
            return
        if scope["type"] != "http":
            await Response(status_code=404)(scope, receive, send)
            return
        request = Request(scope, receive)
        if request.method == "GET" and "query" not in request.query_params:
            page = (
                await self.render_graphql_ide(request)
                if self.graphql_ide
                else PlainTextResponse("GraphiQL is served in debug mode only.", 404)
            )
            await page(scope, receive, send)
            return
        body = await self._body(request, receive)
        if isinstance(body, Response):
            await body(scope, receive, send)
            return
        receive = replay(body)
        signed_in = await self._sign_in(request)
        if isinstance(signed_in, Response):
            await signed_in(scope, receive, send)
            return
        principal, session = signed_in
        context = Context(
            db=self.db,
            settings=self.settings,
            principal=principal,
            session=session,
            member_token_secret=self.member_token_secret,
            request_id=request_id_of(scope),
        )
        scope.setdefault("state", {})["context"] = context
        started = False

        async def send_tracking(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            async with asyncio.timeout(self.settings.request_timeout_seconds):
                await super().__call__(scope, receive, send_tracking)
        except TimeoutError:
            if started:
                raise
            await _error(
                "The request took too long and was stopped; nothing it was doing was kept.",
                "TIMEOUT",
                503,
            )(scope, receive, send)
        finally:
            await context.close()

    async def _body(self, request: Request, receive: Receive) -> bytes | Response:
        """The request body, or a 413 when it is over the limit (declared or sent)."""
        declared = request.headers.get("content-length", "")
        if (
            declared.isascii()
            and declared.isdigit()
            and int(declared) > self.settings.max_body_bytes
        ):
            return self._too_large()
        body = await read_body(receive, self.settings.max_body_bytes)
        return self._too_large() if body is None else body

    async def _sign_in(self, request: Request) -> tuple[Principal, AsyncSession] | Response:
        """The caller the bearer credentials name, with the read session that looked them up
        (kept for the request's reads), or the 401 or 429 to answer with."""
        header = request.headers.get("authorization", "")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            return _unauthenticated("Send Authorization: Bearer <API key or member token>.")
        session = self.db.read_session()
        try:
            principal = await self._authenticate(session, token.strip())
            if principal is None:
                await session.close()
                return _unauthenticated("Unknown, revoked or expired credentials.")
            await session.rollback()
            retry_after = await self.rate_limiter.check(principal)
        except BaseException:
            await session.close()
            raise
        if retry_after is not None:
            await session.close()
            return rate_limited_response(retry_after)
        return principal, session

    async def execute_operation(self, **kwargs: Any) -> Any:  # type: ignore[override]  # passes the base's arguments on as keywords
        """Subscriptions over HTTP are a 400: they run over WebSocket."""
        data = kwargs["request_data"]
        batch = data if isinstance(data, list) else [data]
        if any(is_subscription(item, max_tokens=self.settings.max_tokens) for item in batch):
            raise HTTPException(
                400, "Subscriptions run over a WebSocket on /graphql (graphql-transport-ws)."
            )
        return await super().execute_operation(**kwargs)

    def _too_large(self) -> Response:
        limit = self.settings.max_body_bytes
        return _error(f"The request body is over {limit} bytes.", "PAYLOAD_TOO_LARGE", 413)

    async def _authenticate(self, session: AsyncSession, token: str) -> Principal | None:
        if token.startswith(auth.KEY_PREFIX):
            found = await auth.authenticate_api_key(session, secret=token)
            if found is None:
                return None
            if found.needs_touch:
                await session.rollback()  # give the read connection back before taking another
                async with self.db.transaction() as write:
                    await auth.touch_api_key(write, key_id=found.principal.api_key_id or 0)
            return found.principal
        principal = auth.authenticate_member_token(token, secret=await self.member_token_secret())
        if principal is None or not await auth.member_may_sign_in(
            session, member_id=principal.member_id or 0
        ):
            return None
        return principal

    async def run(  # type: ignore[override]  # HTTP requests only: WebSockets never reach run
        self,
        request: Request,
        context: Context | SubscriptionContext = UNSET,
        root_value: None = UNSET,
    ) -> Response:
        """Strawberry answers a malformed request (not JSON, no query, a GET mutation) in plain
        text; clients parse JSON, so the same status comes back as a GraphQL error."""
        try:
            return await super().run(request, context, root_value)
        except HTTPException as error:
            return _error(error.reason, "BAD_REQUEST", error.status_code)

    def decode_json(self, data: str | bytes) -> object:
        """Only an object (or a batch of objects) nesting no deeper than the limit is a GraphQL
        request; anything else is a 400."""
        try:
            decoded = json.loads(data)
        except RecursionError as error:
            raise json.JSONDecodeError("the JSON nests too deeply", "", 0) from error
        items = decoded if isinstance(decoded, list) else [decoded]
        if not all(isinstance(item, dict) for item in items):
            raise json.JSONDecodeError("a GraphQL request must be a JSON object", "", 0)
        if json_depth(decoded) > self.settings.max_json_depth:
            raise json.JSONDecodeError("the JSON nests too deeply", "", 0)
        return decoded

    async def get_context(
        self, request: Request | WebSocket, response: Response | WebSocket
    ) -> Context | SubscriptionContext:
        if isinstance(request, WebSocket):
            request.state.context = SubscriptionContext(
                db=self.db,
                settings=self.settings,
                member_token_secret=self.member_token_secret,
                feed=self.feed,
                authenticate=self._authenticate,
                request_id=request_id_of(request.scope),
            )
        context: Context | SubscriptionContext = request.state.context
        return context

    async def on_ws_connect(  # type: ignore[override]  # WebSockets carry a SubscriptionContext
        self, context: SubscriptionContext
    ) -> UnsetType:
        """Accepts the connection for the credentials in ``connection_init``'s payload, as a
        request would be (rate limit included); otherwise it is closed with 4403."""
        token = bearer_token(context.connection_params)
        if token is None or not await context.sign_in(token):
            raise ConnectionRejectionError()
        if await self.rate_limiter.check(context.principal) is not None:
            raise ConnectionRejectionError()
        no_ack_payload: UnsetType = UNSET
        return no_ack_payload

    async def get_sub_response(self, request: Request | WebSocket) -> Response:
        """Answers in application/graphql-response+json when the client asks for it."""
        sub_response = await super().get_sub_response(request)
        sub_response.media_type = (
            GRAPHQL_RESPONSE_JSON
            if GRAPHQL_RESPONSE_JSON in request.headers.get("accept", "")
            else None
        )
        request.state.sub_response = sub_response
        return sub_response

    async def process_result(
        self, request: Request, result: ExecutionResult
    ) -> GraphQLHTTPResponse:
        """With application/graphql-response+json, a document that failed to parse or validate
        (no data at all) is a 400, as the GraphQL-over-HTTP specification recommends."""
        sub_response = request.state.sub_response
        if (
            sub_response.media_type == GRAPHQL_RESPONSE_JSON
            and result.data is None
            and result.errors
        ):
            sub_response.status_code = 400
        return await super().process_result(request, result)

    def create_response(
        self, response_data: GraphQLHTTPResponse | list[GraphQLHTTPResponse], sub_response: Response
    ) -> Response:
        response = super().create_response(response_data, sub_response)
        if sub_response.media_type:
            response.headers["content-type"] = sub_response.media_type
        return response


class RequestMetrics:
    """Latency by route and status for /metrics, and the request's one log line."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        status = 500
        started = time.perf_counter()

        async def send_with_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_with_status)
        finally:
            # Labelled by route, never by raw path: unknown paths would each add a series.
            route = scope.get("route")
            path = route.path if isinstance(route, Route | Mount) else "unmatched"
            elapsed = time.perf_counter() - started
            HTTP_REQUESTS.labels(path, str(status)).observe(elapsed)
            log_request(scope, route=path, status=status, seconds=elapsed)


def create_app(settings: Settings | None = None, db: Database | None = None) -> Starlette:
    settings = settings or get_settings()
    database = db or Database(
        settings.database_url,
        pool_size=settings.db_pool_size,
        busy_timeout=settings.sqlite_busy_timeout_seconds,
        pgbouncer=settings.db_pgbouncer,
    )
    graphql_app = LoyaltyGraphQL(build_schema(settings), db=database, settings=settings)
    head = migrate.head_revision()

    async def healthz(_: Request) -> Response:
        return JSONResponse({"status": "ok"})

    async def readyz(_: Request) -> Response:
        try:
            async with database.read_engine.connect() as connection:
                revision = await migrate.current_revision(connection)
        except Exception as error:
            return JSONResponse({"status": "unavailable", "error": type(error).__name__}, 503)
        if revision != head:
            return JSONResponse(
                {"status": "migrations pending", "revision": revision, "head": head}, 503
            )
        return JSONResponse({"status": "ready", "revision": revision})

    async def metrics(_: Request) -> Response:
        async with database.read_session() as session:
            stats = await delivery_stats(session, now=utcnow())
        OUTBOX_LAG.set(stats.lag_seconds)
        for status, count in stats.deliveries.items():
            WEBHOOK_DELIVERIES.labels(status).set(count)
            WEBHOOK_ATTEMPTS.labels(status).set(stats.attempts[status])
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    @asynccontextmanager
    async def lifespan(_: Starlette) -> AsyncIterator[None]:
        # What start-up made (modules, the schema) lives as long as the process: frozen, the
        # garbage collector's full collections skip it, and their pauses shrink (bench/
        # validation.py: the slowest of 60 documents 133 ms -> 43 ms).
        gc.collect()
        gc.freeze()
        yield
        await graphql_app.feed.close()
        await database.dispose()

    app = Starlette(
        routes=[
            Route("/graphql", graphql_app, methods=["GET", "POST"]),
            WebSocketRoute("/graphql", graphql_app),
            Route("/healthz", healthz),
            Route("/readyz", readyz),
            Route("/metrics", metrics),
            Mount("/admin", console_app(), name="admin"),
        ],
        lifespan=lifespan,
    )
    app.state.db = database
    app.state.settings = settings
    app.state.feed = graphql_app.feed
    app.add_middleware(RequestMetrics)
    app.add_middleware(RequestId)
    return app
