"""Running the ``loyalty`` command as a user would, in a subprocess."""

import asyncio
import os
import socket
import subprocess
import sys
import time

import httpx


def run_cli(database_url: str, *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    env = {**os.environ, "LOYALTY_DATABASE_URL": database_url}
    return subprocess.run(
        [sys.executable, "-m", "loyalty", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


async def arun_cli(database_url: str, *args: str) -> subprocess.CompletedProcess:
    return await asyncio.to_thread(run_cli, database_url, *args)


def free_port() -> int:
    """A port nothing listens on now, for a ``loyalty serve`` of the test's own."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def wait_ready(base: str, deadline: float, process: subprocess.Popen | None = None) -> bool:
    """Poll ``/readyz`` until it answers 200 (True), or until the deadline (a
    ``time.monotonic()`` instant) passes or ``process`` exits (False)."""
    while time.monotonic() < deadline and (process is None or process.poll() is None):
        try:
            if httpx.get(f"{base}/readyz", timeout=2).status_code == 200:
                return True
        except httpx.TransportError:
            time.sleep(0.2)
    return False


def printed_key(server: subprocess.Popen, deadline: float) -> str | None:
    """The admin key ``loyalty serve --demo`` prints (a line starting ``lyk_``), read from the
    server's output until the deadline."""
    assert server.stdout is not None
    while time.monotonic() < deadline:
        line = server.stdout.readline()
        assert line, "the server exited before printing a key"
        if line.startswith("lyk_"):
            return str(line.strip())
    return None
