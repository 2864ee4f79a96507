"""The ``loyalty`` command as an operator uses it."""

import os
import subprocess
import sys
import time
from pathlib import Path

import httpx

from loyalty.graphql.schema import export_sdl
from tests.cli import arun_cli, free_port, printed_key, run_cli, wait_ready
from tests.conftest import GraphQLClient
from tests.helpers import MEMBER, enroll, record


async def test_the_whole_flow_with_a_key_made_by_the_cli(client, database_url):
    # given an admin key and a till key created on the command line
    created = await arun_cli(database_url, "apikey", "create", "--role", "admin", "--name", "hq")
    assert created.returncode == 0, created.stderr
    admin = GraphQLClient(client, created.stdout.strip().splitlines()[-1])
    till = await arun_cli(database_url, "apikey", "create", "--role", "pos", "--name", "till 1")
    pos = GraphQLClient(client, till.stdout.strip().splitlines()[-1])

    # when a member enrolls, buys twice and gets a correction
    member_id = await enroll(pos, "card-42", email="ann@example.com", firstName="Ann")
    assert (await record(pos, member_id, "19.99"))["pointsAwarded"] == 19
    assert (await record(pos, member_id, "5.00"))["pointsAwarded"] == 5
    adjusted = await admin.data(
        """mutation($input: AdjustPointsInput!) { adjustPoints(input: $input) {
             member { points { available } } errors { code } } }""",
        input={"idempotencyKey": "fix-1", "memberId": member_id, "points": -4, "reason": "typo"},
    )
    assert adjusted["adjustPoints"]["member"]["points"]["available"] == 20

    # then balance and ledger agree, newest first, and the ledger verifies
    member = (await admin.data(MEMBER, id=member_id))["member"]
    assert member["points"] == {
        "available": 20,
        "pending": 0,
        "lifetimeEarned": 24,
        "redeemed": 0,
        "expired": 0,
    }
    assert [
        (e["node"]["kind"], e["node"]["points"], e["node"]["balanceAfter"])
        for e in member["ledger"]["edges"]
    ] == [("ADJUST", -4, 20), ("EARN", 5, 24), ("EARN", 19, 19)]
    verified = await arun_cli(database_url, "ledger", "verify")
    assert verified.returncode == 0, verified.stdout

    # and a revoked key is refused from then on
    listed = await arun_cli(database_url, "apikey", "list")
    assert "till 1" in listed.stdout and "hq" in listed.stdout
    key_id = next(line.split()[0] for line in listed.stdout.splitlines() if "till 1" in line)
    revoked = await arun_cli(database_url, "apikey", "revoke", key_id)
    assert revoked.returncode == 0, revoked.stderr
    refused = await pos.post("{ program { name } }")
    assert refused.status_code == 401
    assert refused.json()["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"


async def test_apikey_create_refuses_an_unknown_role(database_url):
    result = await arun_cli(database_url, "apikey", "create", "--role", "root", "--name", "x")
    assert result.returncode == 2
    assert "Role must be one of admin, pos, app" in result.stderr


def test_schema_export_prints_the_sdl():
    result = run_cli("sqlite+aiosqlite:///unused.db", "schema", "export")
    assert result.returncode == 0
    assert result.stdout == export_sdl()


def test_db_upgrade_is_safe_twice_and_works_from_any_directory(tmp_path: Path):
    url = f"sqlite+aiosqlite:///{tmp_path / 'cli.db'}"
    for _ in range(2):
        result = subprocess.run(
            [sys.executable, "-m", "loyalty", "db", "upgrade"],
            env={**os.environ, "LOYALTY_DATABASE_URL": url},
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert result.returncode == 0, result.stderr
        assert "Database at revision" in result.stdout


def test_serve_demo_gives_a_working_api_with_demo_data(tmp_path: Path):
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "loyalty", "serve", "--demo", "--port", str(port)],
        env={**os.environ, "LOYALTY_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'demo.db'}"},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        deadline = time.monotonic() + 60
        key = printed_key(server, deadline)
        assert key, "no admin key printed"
        base = f"http://127.0.0.1:{port}"
        wait_ready(base, deadline)
        response = httpx.post(
            f"{base}/graphql",
            json={
                "query": "{ program { name } rewards { edges { node { name } } } "
                "members(first: 10) { edges { node { points { available } tier { name } } } } }"
            },
            headers={"Authorization": f"Bearer {key}"},
            timeout=10,
        )
        data = response.json()["data"]
        assert data["program"]["name"] == "Demo Coffee Co."
        assert len(data["rewards"]["edges"]) == 3
        members = [e["node"] for e in data["members"]["edges"]]
        assert len(members) == 5
        assert all(m["points"]["available"] > 0 and m["tier"] for m in members)
        assert "graphiql" in httpx.get(f"{base}/graphql", timeout=5).text.lower()
    finally:
        server.terminate()
        server.wait(timeout=20)


def test_serve_with_two_workers_shares_one_database(postgres_template: str):
    created = run_cli(postgres_template, "apikey", "create", "--role", "admin", "--name", "w")
    key = created.stdout.strip().splitlines()[-1]
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "loyalty", "serve", "--workers", "2", "--port", str(port)],
        env={**os.environ, "LOYALTY_DATABASE_URL": postgres_template},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        wait_ready(base, time.monotonic() + 60)
        headers = {"Authorization": f"Bearer {key}"}
        external_id = f"w-{os.getpid()}-{port}"
        enrolled = httpx.post(
            f"{base}/graphql",
            json={
                "query": "mutation($input: EnrollMemberInput!) { enrollMember(input: $input) "
                "{ member { id } errors { code } } }",
                "variables": {"input": {"externalId": external_id}},
            },
            headers=headers,
            timeout=10,
        ).json()["data"]["enrollMember"]
        assert enrolled["errors"] == []
        # whichever worker answers, each sees what the other wrote
        for _ in range(6):
            found = httpx.post(
                f"{base}/graphql",
                json={
                    "query": "query($e: String!) { memberByExternalId(externalId: $e) { id } }",
                    "variables": {"e": external_id},
                },
                headers=headers,
                timeout=10,
            ).json()["data"]["memberByExternalId"]
            assert found == enrolled["member"]
    finally:
        server.terminate()
        server.wait(timeout=30)


def test_default_workers_follow_the_database():
    from loyalty.cli import default_workers

    assert default_workers("sqlite+aiosqlite:///./x.db") == 1
    assert default_workers("postgresql+asyncpg://u@h/db") == (os.cpu_count() or 1)
