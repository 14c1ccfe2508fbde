"""Lifetimes in a real browser: the card counts down the time left, Extend moves it, and the
expiry banner appears inside the desktop page (a real `daaas serve` on the local provider,
warning 200 hours ahead so a new machine is already within its last warning)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest
from playwright.sync_api import expect

from tests.support.browser import (
    delete_from_machine_page,
    launch_and_watch,
    signed_in_page,
)
from tests.support.serve import served_portal

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def portal_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """`daaas serve` as tests/e2e/conftest.py starts it, warning 200 h before a machine's end."""
    with served_portal(tmp_path_factory, {"DAAAS_EXPIRY_WARNING_HOURS": "200"}) as url:
        yield url


def test_time_left_counts_down_extend_moves_it_and_the_desktop_warns(portal_url: str,
                                                                      browser: Any) -> None:
    page = signed_in_page(browser, portal_url)
    machine_id, row, seen = launch_and_watch(page, portal_url)
    assert seen[-1] == "ready", seen
    left = row.locator("[data-fact=time-left] .time-left")
    expect(left).to_have_text(re.compile(r"^(2 days 23 h|3 days) left$"))
    expect(left).to_have_attribute("data-soon", "")  # within the 200 h warning
    expect(page.locator("#expiry-banner")).to_be_visible()
    expect(page.locator("#expiry-banner")).to_contain_text("save your work to ~/storage")

    row.locator("button[data-action=extend]").click()
    expect(row.locator("[data-fact=time-left] .time-left")).to_have_text(
        re.compile(r"^(3 days 23 h|4 days) left$"), timeout=10_000)

    page.goto(f"{portal_url}/machines/{machine_id}/desktop")
    banner = page.locator("#expiry-banner")
    expect(banner).to_be_visible()
    expect(banner.locator("[data-expires-at]")).to_have_text(
        re.compile(r"^(3 days 23 h|4 days) left$"))
    delete_from_machine_page(page, portal_url, machine_id)
    page.close()
