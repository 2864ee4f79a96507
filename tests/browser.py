"""Headless Chromium for the tests that open a page: Debian's ``chromium`` driven by Playwright.

Playwright never downloads a browser here: it starts the system's binary. Without one the
browser tests skip and say why, except under ``LOYALTY_REQUIRE_POSTGRES=1`` (CI), where
``.ci/run`` installs it first and a missing browser fails the run. Screenshots go to
``test-artifacts/`` (or ``LOYALTY_TEST_ARTIFACTS``) for a person to look at.
"""

import os
import shutil
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
from playwright.async_api import Browser, async_playwright

from tests.conftest import REQUIRE_POSTGRES

CHROMIUM = os.environ.get("LOYALTY_TEST_CHROMIUM") or shutil.which("chromium") or ""
ARTIFACTS = Path(os.environ.get("LOYALTY_TEST_ARTIFACTS", "test-artifacts"))


def require_chromium() -> str:
    if CHROMIUM:
        return CHROMIUM
    message = "no chromium on PATH (Debian: apt-get install chromium)"
    if REQUIRE_POSTGRES:
        pytest.fail(f"LOYALTY_REQUIRE_POSTGRES=1 but {message}")
    pytest.skip(message)


@asynccontextmanager
async def chromium() -> AsyncIterator[Browser]:
    executable = require_chromium()
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=executable, args=["--no-sandbox", "--disable-gpu"]
        )
        try:
            yield browser
        finally:
            await browser.close()


def artifact(name: str) -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    return ARTIFACTS / name
