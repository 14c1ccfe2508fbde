"""The heart of the product in a real browser: sign in, launch, watch progress, open the
desktop through noVNC and websockify, check its pixels, delete, and no process is left."""

from __future__ import annotations

from typing import Any

import pytest
from playwright.sync_api import expect

from tests.e2e.pixels import desktop_checks, desktop_labels
from tests.support.browser import (
    delete_from_machine_page,
    launch_and_watch,
    signed_in_page,
    watch_states,
)
from tests.support.paths import OUTPUT

pytestmark = pytest.mark.e2e


def test_launch_open_desktop_and_delete(portal_url: str, browser: Any) -> None:
    page = signed_in_page(browser, portal_url)
    machine_id, row, seen = launch_and_watch(page, portal_url)
    assert seen[-1] == "ready" and len(seen) >= 2, seen
    page.screenshot(path=str(OUTPUT / "analysis-my-machines.png"))

    row.locator("a", has_text="Desktop").click()
    page.wait_for_url(f"**/machines/{machine_id}/desktop")
    expect(page.locator("#status")).to_have_text("Connected.", timeout=30_000)
    page.wait_for_timeout(2500)  # let the desktop paint its icons
    shot = OUTPUT / "desktop-novnc.png"
    page.locator("#screen canvas").screenshot(path=str(shot))
    problems = desktop_checks(shot)
    assert problems == [], problems

    delete_from_machine_page(page, portal_url, machine_id)
    page.close()


def test_launch_bound_to_experiment_shows_its_data_and_storage(portal_url: str,
                                                              browser: Any) -> None:
    page = signed_in_page(browser, portal_url)
    card = page.locator('li.card[data-environment="base-desktop"]')
    choice = card.locator("select[name=experiment] option", has_text="MX31850-12")
    card.locator("select[name=experiment]").select_option(choice.get_attribute("value"))
    card.locator("button.launch-button").click()
    page.wait_for_url("**/machines/*")
    machine_id = page.url.rstrip("/").rsplit("/", 1)[1]
    assert "MX31850-12" in page.locator("main").inner_text()

    page.goto(portal_url + "/analysis")
    seen = watch_states(page.locator(f'tr[data-machine="{machine_id}"]'), "ready", 90)
    assert seen[-1] == "ready", seen
    page.goto(f"{portal_url}/machines/{machine_id}/desktop")
    expect(page.locator("#status")).to_have_text("Connected.", timeout=30_000)
    page.wait_for_timeout(2500)
    shot = OUTPUT / "desktop-experiment.png"
    page.locator("#screen canvas").screenshot(path=str(shot))
    assert desktop_checks(shot) == []
    labels = desktop_labels(shot)
    for label in ("My storage", "Experiment", "MX31850"):  # pcmanfm cuts long labels: "MX31850-…"
        assert label in labels, labels

    delete_from_machine_page(page, portal_url, machine_id)
    page.close()

