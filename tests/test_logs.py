"""One structured log line per request: who, what, how it ended, how long; never a secret."""

import json
import logging
import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from loyalty.logs import JsonFormatter, TextFormatter, log_config
from tests.cli import free_port, printed_key, wait_ready
from tests.helpers import ENROLL, key


def request_lines(caplog: pytest.LogCaptureFixture) -> list[dict]:
    return [r.fields for r in caplog.records if r.name == "loyalty.requests"]


async def test_a_request_logs_its_id_key_operation_outcome_and_duration(client, admin_key, caplog):
    caplog.set_level(logging.INFO, logger="loyalty.requests")
    response = await client.post(
        "/graphql",
        json={"query": ENROLL, "variables": {"input": {"externalId": f"log-{key()[:8]}"}}},
        headers={"Authorization": f"Bearer {admin_key}", "X-Request-Id": "till-7-0042"},
    )
    assert response.status_code == 200
    [line] = request_lines(caplog)
    assert line["request_id"] == "till-7-0042"
    assert (line["role"], line["operation"], line["outcome"]) == ("admin", "Enroll", "ok")
    assert line["key_id"] is not None and line["member_id"] is None
    assert (line["route"], line["status"]) == ("/graphql", 200)
    assert line["duration_ms"] > 0
    assert admin_key not in json.dumps(line)


async def test_user_errors_and_refusals_are_the_outcome(admin, pos, caplog):
    caplog.set_level(logging.INFO, logger="loyalty.requests")
    await admin(
        "mutation Adjust($input: AdjustPointsInput!) { adjustPoints(input: $input) "
        "{ errors { code } } }",
        input={"idempotencyKey": key(), "memberId": "nope", "points": 5, "reason": "x"},
    )
    await pos("query Everyone { members(first: 1) { edges { cursor } } }")
    await admin("{ program { name } }")
    outcomes = [(line["operation"], line["outcome"]) for line in request_lines(caplog)]
    assert outcomes == [("Adjust", "NOT_FOUND"), ("Everyone", "FORBIDDEN"), ("program", "ok")]


async def test_unauthenticated_requests_log_without_a_caller(client, caplog):
    caplog.set_level(logging.INFO, logger="loyalty.requests")
    await client.post("/graphql", json={"query": "{ program { name } }"})
    [line] = request_lines(caplog)
    assert line["status"] == 401 and "role" not in line and line["request_id"]


def test_formatters_carry_the_fields():
    record = logging.LogRecord(
        "loyalty.requests", logging.INFO, __file__, 1, "POST %s", ("/x",), None
    )
    record.fields = {"request_id": "r-1", "status": 200}
    parsed = json.loads(JsonFormatter().format(record))
    assert (parsed["message"], parsed["request_id"], parsed["level"]) == ("POST /x", "r-1", "INFO")
    assert TextFormatter().format(record).endswith("request_id=r-1 status=200")
    assert log_config("json")["formatters"]["loyalty"]["()"] is JsonFormatter
    assert log_config("text")["formatters"]["loyalty"]["()"] is TextFormatter


def test_serve_writes_json_lines(tmp_path: Path):
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "loyalty", "serve", "--demo", "--port", str(port)],
        env={
            **os.environ,
            "LOYALTY_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'logs.db'}",
            "LOYALTY_LOG_FORMAT": "json",
        },
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 60
        secret = printed_key(server, deadline)
        base = f"http://127.0.0.1:{port}"
        wait_ready(base, deadline)
        httpx.post(
            f"{base}/graphql",
            json={"query": "query Name { program { name } }"},
            headers={"Authorization": f"Bearer {secret}", "X-Request-Id": "json-line-test"},
            timeout=10,
        )
    finally:
        server.terminate()
        _, stderr = server.communicate(timeout=30)
    lines = [json.loads(line) for line in stderr.splitlines() if line.startswith("{")]
    assert lines, stderr
    [request] = [line for line in lines if line.get("request_id") == "json-line-test"]
    assert (request["operation"], request["outcome"], request["status"]) == ("Name", "ok", 200)
    assert secret not in stderr
