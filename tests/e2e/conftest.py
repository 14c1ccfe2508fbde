"""Real-browser helpers: Debian's Chromium driven by Playwright (never `playwright install`).

The `browser` fixture itself is in tests/conftest.py: one Playwright for the whole session
(the e2e and the VM tier share it; a second sync Playwright in one process is refused)."""

from __future__ import annotations

import socket
from typing import Any

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                 "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]


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
