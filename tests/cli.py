"""Running the ``loyalty`` command as a user would, in a subprocess."""

import asyncio
import os
import subprocess
import sys


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
