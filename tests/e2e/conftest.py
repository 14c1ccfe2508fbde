"""Real-browser fixtures: Debian's Chromium driven by Playwright (never `playwright install`)."""

from __future__ import annotations

import os
import shutil
import socket
import tempfile
from collections.abc import Iterator
from typing import Any

import pytest

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                 "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]


@pytest.fixture(scope="session")
def browser() -> Iterator[object]:
    """A headless Chromium with a fresh profile."""
    if not os.path.exists(CHROMIUM):
        if os.environ.get("CI"):
            pytest.fail(f"{CHROMIUM} is missing: install Debian's chromium package.")
        pytest.skip(f"{CHROMIUM} not installed")
    from playwright.sync_api import sync_playwright

    profile = tempfile.mkdtemp(prefix="daaas-chromium-")
    with sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            profile, executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True,
            viewport={"width": 1280, "height": 860})
        yield context
        context.close()
    shutil.rmtree(profile, ignore_errors=True)


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that is free right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def signed_in_page(browser: Any, portal_url: str, username: str = "scientist",
                   password: str = "scientist-demo") -> Any:
    """Return a new page signed in to ``portal_url`` as ``username``, on the Analysis page.

    The browser profile is shared by every test, and cookies belong to 127.0.0.1 whatever the
    port, so an earlier test's sign-in is cleared first.
    """
    browser.clear_cookies()
    page = browser.new_page()
    page.goto(portal_url + "/sign-in")
    page.fill("#username", username)
    page.fill("#password", password)
    page.click("button[type=submit]")
    page.wait_for_url("**/analysis")
    return page
