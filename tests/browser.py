"""Debian's chromium driven by Playwright, launched the way every browser test needs here (headless,
no sandbox, no network beyond the page, a fresh profile)."""

import contextlib
import shutil
import tempfile

import pytest

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--disable-dev-shm-usage",
]


@contextlib.contextmanager
def chromium(viewport: dict):
    """A persistent browser context with its own throw-away profile."""
    if not shutil.which(CHROMIUM):
        pytest.fail("chromium is missing: scripts/test.sh installs it (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    profile = tempfile.mkdtemp(prefix="umo-chromium-")
    try:
        with sync_playwright() as playwright:
            context = playwright.chromium.launch_persistent_context(
                profile, executable_path=CHROMIUM, args=CHROMIUM_FLAGS, headless=True, viewport=viewport)
            yield context
            context.close()
    finally:
        shutil.rmtree(profile, ignore_errors=True)
