"""Headless Chromium for the tests that open a page: Debian's ``chromium`` driven by Playwright.

Playwright never downloads a browser here: it starts the system's binary. Without one the
browser tests skip and say why, except under ``LOYALTY_REQUIRE_POSTGRES=1`` (CI), where
``.ci/run`` installs it first and a missing browser fails the run. ``LOYALTY_CHROMIUM`` names
another binary. Screenshots go to ``test-artifacts/`` (or ``LOYALTY_TEST_ARTIFACTS``) for a
person to look at.
"""

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
from playwright.async_api import Browser, async_playwright

from tests.conftest import REQUIRE_POSTGRES

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = Path(os.environ.get("LOYALTY_CHROMIUM", "/usr/bin/chromium"))
ARTIFACTS = Path(os.environ.get("LOYALTY_TEST_ARTIFACTS", ROOT / "test-artifacts"))


def require_chromium() -> Path:
    if CHROMIUM.is_file():
        return CHROMIUM
    reason = f"Chromium not found at {CHROMIUM} (apt-get install chromium chromium-driver)"
    if REQUIRE_POSTGRES:
        pytest.fail(f"LOYALTY_REQUIRE_POSTGRES=1 but {reason}")
    pytest.skip(reason)


@asynccontextmanager
async def chromium() -> AsyncIterator[Browser]:
    executable = require_chromium()
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=executable)
        try:
            yield browser
        finally:
            await browser.close()


def artifact(name: str) -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    return ARTIFACTS / name
