"""A burst of requests from one member token against real servers: how many the rate limit
lets through (HTTP 200) and refuses (HTTP 429), and the Retry-After values it sends.

It starts S ``loyalty serve`` processes (uvicorn) on free ports of 127.0.0.1 over one fresh
SQLite database in a temporary directory, with the server's default member rate
(``LOYALTY_RATE_LIMIT_MEMBER``, 120/minute unless the environment sets it) and, with
--redis-url, counts shared through Redis under a key prefix of this run alone. It enrolls a
member with an admin key, issues the member a token, then sends R ``{ me { id } }`` requests
with C in flight at once, spread round-robin over the servers, and prints the outcome. With
S > 1 and no Redis every server counts on its own, so S times the rate gets through.

Run it from the project root with the project's virtualenv::

    python bench/rate_limit_burst.py [--requests 200] [--concurrency 20] [--servers 1]
        [--redis-url redis://127.0.0.1:6379/0]

The exit status is 0 when every response was a 200 or a well-formed 429.
"""

import argparse
import asyncio
import collections
import os
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from loyalty import migrate  # noqa: E402
from loyalty.auth import service as auth  # noqa: E402
from loyalty.db import Database  # noqa: E402
from tests.cli import free_port  # noqa: E402

SECRET = "burst-bench-secret-that-signs-member-tokens"


async def admin_key(database_url: str) -> str:
    db = Database(database_url)
    try:
        async with db.transaction() as session:
            return (await auth.create_api_key(session, role="admin", name="burst")).secret
    finally:
        await db.dispose()


async def wait_until_up(base: str) -> None:
    async with httpx.AsyncClient() as http:
        for _ in range(300):
            try:
                if (await http.get(f"{base}/healthz")).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            await asyncio.sleep(0.1)
    raise SystemExit(f"server at {base} did not come up")


async def member_token(base: str, key: str) -> str:
    headers = {"Authorization": f"Bearer {key}"}
    async with httpx.AsyncClient(base_url=base, headers=headers) as http:
        enrolled = await http.post(
            "/graphql",
            json={
                "query": "mutation($i: EnrollMemberInput!) { enrollMember(input: $i) "
                "{ member { id } errors { message } } }",
                "variables": {"i": {"externalId": "burst-member"}},
            },
        )
        member_id = enrolled.json()["data"]["enrollMember"]["member"]["id"]
        issued = await http.post(
            "/graphql",
            json={
                "query": "mutation($i: IssueMemberTokenInput!) { issueMemberToken(input: $i) "
                "{ token errors { message } } }",
                "variables": {"i": {"memberId": member_id}},
            },
        )
        return issued.json()["data"]["issueMemberToken"]["token"]


async def burst(bases: list[str], token: str, requests: int, concurrency: int) -> list:
    gate = asyncio.Semaphore(concurrency)
    headers = {"Authorization": f"Bearer {token}"}
    async with httpx.AsyncClient(headers=headers, timeout=60) as http:

        async def one(index: int) -> httpx.Response:
            async with gate:
                return await http.post(
                    f"{bases[index % len(bases)]}/graphql", json={"query": "{ me { id } }"}
                )

        return await asyncio.gather(*(one(i) for i in range(requests)))


def well_formed_429(response: httpx.Response) -> bool:
    body = response.json()
    return (
        int(response.headers.get("Retry-After", "0")) >= 1
        and body["data"] is None
        and body["errors"][0]["extensions"]["code"] == "RATE_LIMITED"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--concurrency", type=int, default=20)
    parser.add_argument("--servers", type=int, default=1)
    parser.add_argument("--redis-url")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as directory:
        database_url = f"sqlite+aiosqlite:///{Path(directory) / 'burst.db'}"
        migrate.upgrade(database_url)
        key = asyncio.run(admin_key(database_url))
        env = {**os.environ, "LOYALTY_DATABASE_URL": database_url, "LOYALTY_SECRET_KEY": SECRET}
        if args.redis_url:
            env |= {
                "LOYALTY_REDIS_URL": args.redis_url,
                "LOYALTY_REDIS_KEY_PREFIX": f"loyalty-burst-{uuid.uuid4().hex}",
            }
        ports = [free_port() for _ in range(args.servers)]
        servers = [
            subprocess.Popen(
                [sys.executable, "-m", "loyalty", "serve", "--port", str(port)],
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            for port in ports
        ]
        try:
            bases = [f"http://127.0.0.1:{port}" for port in ports]

            async def run() -> tuple[list, float]:
                await asyncio.gather(*(wait_until_up(base) for base in bases))
                token = await member_token(bases[0], key)
                started = time.perf_counter()
                responses = await burst(bases, token, args.requests, args.concurrency)
                return responses, time.perf_counter() - started

            responses, elapsed = asyncio.run(run())
        finally:
            for server in servers:
                server.terminate()
                server.wait(timeout=30)

    statuses = collections.Counter(response.status_code for response in responses)
    limited = [response for response in responses if response.status_code == 429]
    retry_after = collections.Counter(int(response.headers["Retry-After"]) for response in limited)
    store = f"Redis ({args.redis_url})" if args.redis_url else "process memory"
    print(f"{args.requests} requests, {args.concurrency} in flight, {args.servers} server(s)")
    print(f"rate {env.get('LOYALTY_RATE_LIMIT_MEMBER', '120/minute')}, counts in {store}")
    print(f"took {elapsed:.2f} s; statuses: {dict(sorted(statuses.items()))}")
    print(f"Retry-After (seconds: responses): {dict(sorted(retry_after.items()))}")
    good = set(statuses) <= {200, 429} and all(well_formed_429(r) for r in limited)
    return 0 if good else 1


if __name__ == "__main__":
    raise SystemExit(main())
