"""Warm pools in a real browser (issue 20): `daaas serve` (local provider, real Xvnc) keeps one
base desktop slot pooled; its card says "Instant"; Launch claims it and the desktop opens
through noVNC as the user's own; the admin page shows the claim. Screenshots in test-output/."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
from playwright.sync_api import expect

from tests.e2e.pixels import desktop_checks
from tests.support.browser import delete_from_machine_page, launch_base_desktop, signed_in_page
from tests.support.paths import OUTPUT
from tests.support.serve import served_portal

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def portal_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with served_portal(tmp_path_factory, {"DAAAS_WARM_POOLS": "base-desktop=1",
                                          "DAAAS_WARM_POOL_FREE_SESSIONS": "0"}) as url:
        yield url


def instant_badge(page: Any, portal_url: str, timeout: float = 30) -> Any:
    """Reload the Analysis page until the base desktop's card says Instant; its badge."""
    deadline = time.monotonic() + timeout
    while True:
        page.goto(portal_url + "/analysis")
        badge = page.locator('li.card[data-environment="base-desktop"] .badge.instant')
        if badge.count():
            return badge
        assert time.monotonic() < deadline, "the card never said Instant"
        page.wait_for_timeout(500)


def test_pooled_launch_says_instant_and_opens_the_users_desktop(portal_url: str,
                                                               browser: Any) -> None:
    page = signed_in_page(browser, portal_url)
    badge = instant_badge(page, portal_url)
    expect(badge).to_have_text("Instant")
    page.locator('li.card[data-environment="base-desktop"]').screenshot(
        path=str(OUTPUT / "card-instant.png"))
    clicked = time.monotonic()
    machine_id = launch_base_desktop(page)
    assert "claimed from the warm pool" in page.locator("main").inner_text()
    page.goto(f"{portal_url}/machines/{machine_id}/desktop")
    expect(page.locator("#status")).to_have_text("Connected.", timeout=30_000)
    print(f"\npooled: click -> noVNC connected {time.monotonic() - clicked:.2f}s")
    page.wait_for_timeout(2500)
    shot = OUTPUT / "desktop-pooled.png"
    page.locator("#screen canvas").screenshot(path=str(shot))
    assert desktop_checks(shot) == []
    admin = signed_in_page(browser, portal_url, "admin", "admin-demo-pass")
    admin.goto(portal_url + "/admin/pools")
    expect(admin.locator('tr[data-pool="base-desktop/m1.large"] td.claimed')).to_have_text("1")
    admin.screenshot(path=str(OUTPUT / "admin-pools.png"), full_page=True)
    admin.close()
    page = signed_in_page(browser, portal_url)
    delete_from_machine_page(page, portal_url, machine_id)
    page.close()
