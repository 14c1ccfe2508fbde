"""Stop and Start in a real browser: My machines stops a real desktop and brings it back."""

from __future__ import annotations

from typing import Any

import pytest
from playwright.sync_api import expect

from tests.integration.process_scan import session_processes
from tests.support.browser import (
    launch_and_watch,
    signed_in_page,
    wait_until,
    watch_states,
)

pytestmark = pytest.mark.e2e


def test_stop_and_start_from_my_machines(portal_url: str, browser: Any) -> None:
    page = signed_in_page(browser, portal_url)
    machine_id, row, seen = launch_and_watch(page, portal_url)
    assert seen[-1] == "ready", seen

    page.on("dialog", lambda dialog: dialog.accept())
    row.locator("button[data-action=stop]").click()
    seen = watch_states(row, until="stopped", timeout=60)
    assert seen[-1] == "stopped", seen
    wait_until(lambda: session_processes(machine_id) == [], 30, "the session's processes to end")
    assert row.locator("button[data-action=start]").count() == 1
    assert row.locator("a", has_text="Desktop").count() == 0

    row.locator("button[data-action=start]").click()
    seen = watch_states(row, until="ready", timeout=90)
    assert seen[-1] == "ready", seen
    row.locator("a", has_text="Desktop").click()
    page.wait_for_url(f"**/machines/{machine_id}/desktop")
    expect(page.locator("#status")).to_have_text("Connected.", timeout=30_000)
    page.goto(f"{portal_url}/machines/{machine_id}")
    page.click("form[data-confirm] button.danger")
    page.wait_for_url("**/analysis")
    wait_until(lambda: session_processes(machine_id) == [], 30, "the session's processes to end")
    page.close()
