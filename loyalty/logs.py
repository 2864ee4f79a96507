"""Structured logs: one JSON object per line for log collectors, or plain text for a terminal.

Every request gets one line from ``loyalty.requests`` with its request id, the credential's
key id or member id (never a secret), the GraphQL operation, the outcome code, the HTTP status
and the duration, so a till's complaint can be traced from its ``X-Request-Id`` to the audit
log and back.
"""

import json
import logging
import logging.config
import sys
from datetime import UTC, datetime
from typing import Any, Literal

from starlette.types import Scope

REQUESTS = logging.getLogger("loyalty.requests")
QUIET_ROUTES = frozenset({"/healthz", "/readyz", "/metrics"})
"""Probed every few seconds: logged at DEBUG, so they do not drown the requests that matter."""

LogFormat = Literal["json", "text"]


class JsonFormatter(logging.Formatter):
    """A JSON object per record: time, level, logger, message and the record's ``fields``."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            **getattr(record, "fields", {}),
        }
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return json.dumps(line, default=str)


class TextFormatter(logging.Formatter):
    """The usual one-line text, with the record's ``fields`` as key=value pairs."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        fields = getattr(record, "fields", None)
        if not fields:
            return text
        return text + " " + " ".join(f"{k}={v}" for k, v in fields.items() if v is not None)


def chosen_format(configured: LogFormat | None) -> LogFormat:
    """JSON unless set otherwise, or text when stderr is a terminal."""
    if configured is not None:
        return configured
    return "text" if sys.stderr.isatty() else "json"


def log_config(configured: LogFormat | None, level: str = "INFO") -> dict[str, Any]:
    """A ``logging.config.dictConfig`` for the server and each uvicorn worker process."""
    formatter = JsonFormatter if chosen_format(configured) == "json" else TextFormatter
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"loyalty": {"()": formatter}},
        "handlers": {
            "stderr": {
                "class": "logging.StreamHandler",
                "formatter": "loyalty",
                "stream": "ext://sys.stderr",
            }
        },
        "root": {"handlers": ["stderr"], "level": level},
        "loggers": {
            "uvicorn": {"handlers": ["stderr"], "level": level, "propagate": False},
            "uvicorn.error": {"level": level},
            "uvicorn.access": {"handlers": [], "level": "WARNING", "propagate": False},
        },
    }


def log_request(scope: Scope, *, route: str, status: int, seconds: float) -> None:
    """The request's one line; what GraphQL learned about it comes from its context."""
    state = scope.get("state", {})
    fields: dict[str, Any] = {
        "request_id": state.get("request_id"),
        "method": scope.get("method"),
        "route": route,
        "status": status,
        "duration_ms": round(seconds * 1000, 2),
    }
    context = state.get("context")
    if context is not None:
        principal = context.principal
        fields |= {
            "role": principal.role.value,
            "key_id": principal.api_key_id,
            "member_id": principal.member_id,
            "operation": context.operation,
            "outcome": context.outcome,
        }
    level = logging.DEBUG if route in QUIET_ROUTES and status < 400 else logging.INFO
    REQUESTS.log(level, "%s %s %s", fields["method"], route, status, extra={"fields": fields})
