"""A request id per HTTP request, for tying an audit entry (or a log line) to one call.

The caller's ``X-Request-Id`` is kept when it is short printable ASCII, so a request can be
followed from a till or a gateway through this service; otherwise a fresh one is made. Either
way it is echoed in the response's ``X-Request-Id`` and put in ``scope["state"]``.
"""

import uuid

from starlette.types import ASGIApp, Message, Receive, Scope, Send

HEADER = b"x-request-id"
MAX_LENGTH = 128
STATE_KEY = "request_id"


def accepted(value: bytes) -> str | None:
    """The header's value when it is 1-128 printable ASCII characters (spaces trimmed)."""
    text = value.strip()
    if not 0 < len(text) <= MAX_LENGTH or any(not 0x20 <= byte <= 0x7E for byte in text):
        return None
    return text.decode("ascii")


def request_id_of(scope: Scope) -> str | None:
    request_id: str | None = scope.get("state", {}).get(STATE_KEY)
    return request_id


class RequestId:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        given = next((accepted(v) for k, v in scope["headers"] if k.lower() == HEADER), None)
        request_id = given or uuid.uuid4().hex
        scope.setdefault("state", {})[STATE_KEY] = request_id

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = [(k, v) for k, v in message.get("headers", []) if k.lower() != HEADER]
                message["headers"] = [*headers, (HEADER, request_id.encode())]
            await send(message)

        await self.app(scope, receive, send_with_id)
