"""Honest choices and pages that fit, in a real browser on the embedded default (issue 14):
a GPU environment disabled with its reason on a host without GPU, the Analysis page and My
Data at phone width (390 px), and a launch over the limit refused next to its button.

Each test saves what a person would see under test-output/ and asserts its key facts in the
DOM.
"""

from __future__ import annotations

import time
from typing import Any

import pytest

from tests.support.browser import api, delete_machines, signed_in_page, wait_until
from tests.support.paths import OUTPUT

pytestmark = pytest.mark.e2e

PHONE = {"width": 390, "height": 844}
#: What a card says on a host without GPU: the local provider reports none free (its total,
#: 0, would make it "This portal's machines have no GPU.").
NO_GPU = ("This portal's machines have no GPU.", "No GPU is free on this portal's machines.")
#: A folder name of 255 characters (the most a Linux file name may have), no spaces to break at.
LONG_NAME = ("beamtime-2026-11-MX31850-12-" * 10)[:255]




def no_wider_than_screen(page: Any) -> None:
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= PHONE["width"], f"the page is {width} px wide on a {PHONE['width']} px screen"


def gpu_card_once_capacity_is_known(page: Any, portal_url: str) -> Any:
    """Return the GPU environment's card once the reconciler has recorded the capacity (its
    first cycle, within a second of start-up), reloading until then."""
    card = page.locator('li.card[data-environment="tomography-gpu"]')
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        page.goto(portal_url + "/analysis")
        if card.locator(".launch-note").is_visible():  # says why no size can start
            return card
        time.sleep(0.5)
    raise AssertionError("the GPU environment's card never said why it cannot start")


def unavailable(card: Any) -> str:
    """The card's "Not available on this portal" reason without its prefix, or ""."""
    shown = card.locator(".unavailable-reason")
    return str(shown.inner_text()).removeprefix("Not available on this portal: ") \
        if shown.count() else ""


def ccp4_note(page: Any) -> str:
    return str(page.locator('li.card[data-environment="ccp4"] .launch-note').inner_text())


def test_gpu_environment_disabled_with_its_reason(portal_url: str, browser: Any) -> None:
    page = signed_in_page(browser, portal_url)
    card = gpu_card_once_capacity_is_known(page, portal_url)
    card.scroll_into_view_if_needed()
    card.screenshot(path=str(OUTPUT / "analysis-gpu-disabled.png"))
    page.screenshot(path=str(OUTPUT / "analysis-choices.png"), full_page=True)

    button = card.locator("button.launch-button")
    assert button.is_disabled() and button.get_attribute("title")
    reason = card.locator(".launch-note").inner_text()
    assert reason in NO_GPU and button.get_attribute("title") in (reason, unavailable(card))
    assert ccp4_note(page) == f"GPU sizes cannot be chosen: {reason}"
    for option in card.locator("select[name=flavor] option").all():
        assert option.is_disabled() and option.get_attribute("title") == reason
    assert "NVIDIA A100" in card.locator("select[name=flavor]").inner_text()
    # GPU optional: only its GPU size is off; sizes read as cores and memory
    ccp4 = page.locator('li.card[data-environment="ccp4"]')
    gpu_size = ccp4.locator('option[value="g1.l40s-1"]')
    assert gpu_size.is_disabled() and "(not available)" in gpu_size.inner_text()
    assert "8 cores · 32 GiB" in ccp4.locator('option[value="m1.xlarge"]').inner_text()
    assert "8 cores · 32 GiB" in page.locator(
        'li.card[data-environment="base-desktop"] option[value="m1.xlarge"]').inner_text()
    # the API refuses what the page disables
    refused = api(page, "POST", "/api/v1/machines", {"environment": "tomography-gpu"})
    assert refused["status"] == 409, refused
    page.close()


def test_analysis_page_at_phone_width(portal_url: str, browser: Any) -> None:
    page = signed_in_page(browser, portal_url)
    page.set_viewport_size(PHONE)
    page.click('li.card[data-environment="base-desktop"] button.launch-button')
    page.wait_for_url("**/machines/*")  # launch.js follows the portal to the machine's page
    machine_id = page.url.rstrip("/").rsplit("/", 1)[1]
    try:
        page.goto(portal_url + "/analysis")
        row = page.locator(f'tr[data-machine="{machine_id}"]')
        row.wait_for()
        wait_until(lambda: row.get_attribute("data-state") in ("ready", "error"), 90,
                   "the machine to be ready")
        page.wait_for_timeout(500)
        page.screenshot(path=str(OUTPUT / "analysis-390px.png"))
        page.screenshot(path=str(OUTPUT / "analysis-390px-full.png"), full_page=True)
        assert page.title() == "Analysis · Data Analysis as a Service"
        no_wider_than_screen(page)
        for action in row.locator(".row-actions a, .row-actions button").all():
            box = action.bounding_box()
            assert box and box["x"] >= 0 and box["x"] + box["width"] <= PHONE["width"], \
                f"{action.inner_text()} is off-screen: {box}"
        assert row.locator(".row-actions button", has_text="Delete").is_visible()
        assert page.locator("nav[aria-label=Main] a", has_text="Jobs").count() == 0
    finally:
        api(page, "DELETE", f"/api/v1/machines/{machine_id}")
        wait_until(lambda: api(page, "GET", f"/api/v1/machines/{machine_id}")["body"]["state"]
                   == "deleted", 30, "the machine to be deleted")
        page.close()


def test_my_data_at_phone_width_with_a_255_character_folder(portal_url: str,
                                                            browser: Any) -> None:
    page = signed_in_page(browser, portal_url)
    page.set_viewport_size(PHONE)
    page.goto(portal_url + "/my-data/")
    page.fill("#new-folder", LONG_NAME)
    page.click("form.inline-form:has(#new-folder) button[type=submit]")
    folder = page.locator(f'tr[data-name="{LONG_NAME}"] a.folder')
    folder.wait_for()
    page.screenshot(path=str(OUTPUT / "my-data-390px.png"), full_page=True)
    no_wider_than_screen(page)
    assert folder.get_attribute("title") == LONG_NAME  # the whole name as a tooltip too
    box = folder.bounding_box()
    assert box and box["x"] + box["width"] <= PHONE["width"]
    row = page.locator(f'tr[data-name="{LONG_NAME}"]')
    assert row.locator("a.button", has_text="Delete").is_visible()

    folder.click()  # inside it, the long name is the last crumb
    page.wait_for_selector('[aria-current="location"]')
    page.screenshot(path=str(OUTPUT / "my-data-390px-inside.png"), full_page=True)
    no_wider_than_screen(page)
    page.close()


def test_launch_over_the_limit_is_refused_next_to_the_button(portal_url: str,
                                                             browser: Any) -> None:
    page = signed_in_page(browser, portal_url)
    limit = int(page.locator("ul.cards").get_attribute("data-max-machines"))
    ids = []
    try:
        for _ in range(limit):
            created = api(page, "POST", "/api/v1/machines", {"environment": "base-desktop"})
            assert created["status"] == 202, created
            ids.append(created["body"]["id"])
        page.goto(portal_url + "/analysis")
        card = page.locator('li.card[data-environment="base-desktop"]')
        button = card.locator("button.launch-button")
        wait_until(lambda: page.locator("#limit-reason").is_visible(), 10,
                   "the limit to be shown")
        assert button.is_disabled()
        assert f"You already have {limit} machines" in button.get_attribute("title")
        assert f"You already have {limit} machines" in page.locator("#limit-reason").inner_text()
        page.screenshot(path=str(OUTPUT / "analysis-limit-reached.png"))

        # a page left open from before the limit (another tab launched meanwhile): Launch
        # is still pressable there, and the refusal appears next to it
        page.evaluate("""() => {
            const button = document.querySelector(
              'li.card[data-environment="base-desktop"] button.launch-button');
            button.disabled = false;
            button.click();
        }""")
        note = card.locator(".launch-note.error")
        note.wait_for()
        assert page.url.endswith("/analysis")
        assert note.get_attribute("role") == "alert"
        assert f"You already have {limit} machines" in note.inner_text()
        assert page.locator("h1", has_text="Analysis environments").is_visible()
        card.scroll_into_view_if_needed()
        card.screenshot(path=str(OUTPUT / "analysis-inline-launch-error.png"))
        machines = api(page, "GET", "/api/v1/machines")["body"]["machines"]
        assert len(machines) == limit
    finally:
        delete_machines(page, ids)
        page.close()
