"""Real-browser helpers: Debian's Chromium driven by Playwright (never `playwright install`).

The `browser` fixture itself is in tests/conftest.py: one Playwright for the whole session
(the e2e and the VM tier share it; a second sync Playwright in one process is refused)."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from playwright.sync_api import Error as PlaywrightError

from tests.integration.process_scan import session_processes
from tests.support.machines import wait_for as wait_until

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


def api(page: Any, method: str, path: str, body: Any = None) -> Any:
    """Call the portal's API from the signed-in ``page`` (its cookie and CSRF token); return
    ``{"status": ..., "body": <JSON or None>}``.

    A page that navigates by itself (the machine page moving on to the desktop when ready)
    destroys the call's context: a GET or DELETE (idempotent) is then made again on the new
    page, up to three times."""
    for attempt in range(3):
        try:
            return _fetch(page, method, path, body)
        except PlaywrightError as error:
            if ("context was destroyed" not in str(error) or method not in ("GET", "DELETE")
                    or attempt == 2):
                raise
            page.wait_for_load_state()
    raise AssertionError("unreachable")


def _fetch(page: Any, method: str, path: str, body: Any) -> Any:
    return page.evaluate("""async ([method, path, body]) => {
        const token = document.querySelector('meta[name="csrf-token"]').content;
        const response = await fetch(path, {method, credentials: "same-origin",
            headers: {"X-CSRF-Token": token, "Accept": "application/json",
                      "Content-Type": "application/json"},
            body: body === null ? undefined : JSON.stringify(body)});
        return {status: response.status, body: await response.json().catch(() => null)};
    }""", [method, path, body])


def signed_in_page(browser: Any, portal_url: str, username: str = "scientist",
                   password: str = "scientist-demo") -> Any:
    """Return a new page signed in to ``portal_url`` as ``username``, on the Analysis page.

    The browser profile is shared by every test, and cookies belong to 127.0.0.1 whatever the
    port, so an earlier test's sign-in is cleared first.
    """
    browser.clear_cookies()
    return sign_in(browser.new_page(), portal_url, username, password)


@contextmanager
def second_browser(browser: Any) -> Iterator[Any]:
    """Yield a fresh browser context in a second, separate Debian Chromium (same executable and
    flags as the session's ``browser``, no profile on disk): a second person with their own
    cookies. The second browser is closed on the way out."""
    other = browser.browser.browser_type.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS,
                                                headless=True)
    try:
        yield other.new_context(viewport={"width": 1280, "height": 860})
    finally:
        other.close()


def sign_in(page: Any, portal_url: str, username: str, password: str) -> Any:
    """Sign ``page`` in to ``portal_url`` as ``username``; return it, on the Analysis page."""
    page.goto(portal_url + "/sign-in")
    page.fill("#username", username)
    page.fill("#password", password)
    page.click("button[type=submit]")
    page.wait_for_url("**/analysis")
    return page


def launch_base_desktop(page: Any) -> str:
    """Press Launch on the base desktop's card; return the new machine's id."""
    page.click('li.card[data-environment="base-desktop"] button.launch-button')
    page.wait_for_url("**/machines/*")
    return str(page.url.rstrip("/").rsplit("/", 1)[1])


def launch_and_watch(page: Any, portal_url: str) -> tuple[str, Any, list[str]]:
    """Launch the base desktop from its card, then follow it on the Analysis page's list
    until it is ready or failed (90 s); return (its id, its row, the states seen)."""
    machine_id = launch_base_desktop(page)
    page.goto(portal_url + "/analysis")
    row = page.locator(f'tr[data-machine="{machine_id}"]')
    return machine_id, row, watch_states(row, until="ready", timeout=90)


def delete_from_machine_page(page: Any, portal_url: str, machine_id: str) -> None:
    """Delete the machine from its page (confirming) and wait until nothing of it is left."""
    page.goto(f"{portal_url}/machines/{machine_id}")
    page.on("dialog", lambda dialog: dialog.accept())
    page.click("form[data-confirm] button")
    page.wait_for_url("**/analysis")
    wait_until(lambda: session_processes(machine_id) == [], 30, "the session's processes to end")
    wait_until(lambda: api_state(page, machine_id) == "deleted", 30, "the machine to be deleted")


def delete_machines(page: Any, machine_ids: list[str]) -> None:
    """Delete the machines through the API from the signed-in ``page``, then wait until each
    is deleted (60 s)."""
    for machine_id in machine_ids:
        api(page, "DELETE", f"/api/v1/machines/{machine_id}")
    for machine_id in machine_ids:
        wait_until(lambda m=machine_id: api(page, "GET", f"/api/v1/machines/{m}")["body"]
                   ["state"] == "deleted", 60, "the machines to be deleted")


def api_state(page: Any, machine_id: str) -> str:
    machine = page.evaluate(f"fetch('/api/v1/machines/{machine_id}').then(r => r.json())")
    return str(machine["state"])


def watch_states(row: Any, until: str, timeout: float) -> list[str]:
    seen: list[str] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if row.count():
            state = row.get_attribute("data-state")
            if state and (not seen or seen[-1] != state):
                seen.append(state)
            if state == until or state == "error":
                return seen
        time.sleep(0.2)
    raise AssertionError(f"machine did not reach {until}; states seen: {seen}")
