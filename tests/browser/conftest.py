"""Headless Chromium (Debian's `chromium` package) driven by playwright, for the page tests.

Playwright's own browser downloads are never used: it drives the system Chromium through
`executable_path`. `make test` installs Chromium when it runs as root (`make chromium`);
elsewhere, without Chromium, these tests skip and say why, except under CI, where they fail.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from playwright.async_api import BrowserContext, async_playwright

# What Chromium needs to run headless as root in a container, with no network of its own.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--headless",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


def chromium_path() -> str | None:
    """`$CHROMIUM` if set, else `chromium` on the PATH."""
    return os.environ.get("CHROMIUM") or shutil.which("chromium")


@pytest.fixture
async def browser(tmp_path: Path) -> AsyncIterator[BrowserContext]:
    """A fresh Chromium with an empty profile and JavaScript off: pages must work without it."""
    path = chromium_path()
    if path is None:
        reason = "Chromium not found: `make chromium` as root (apt-get install chromium)"
        if os.environ.get("CI"):
            pytest.fail(reason)
        pytest.skip(reason)
    async with async_playwright() as playwright:
        context = await playwright.chromium.launch_persistent_context(
            tmp_path / "chromium-profile",
            executable_path=path,
            args=CHROMIUM_ARGS,
            headless=True,
            java_script_enabled=False,
            viewport={"width": 1280, "height": 800},
        )
        try:
            yield context
        finally:
            await context.close()
