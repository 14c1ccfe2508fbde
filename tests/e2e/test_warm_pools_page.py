"""Warm pools in a real browser (issue 20): `daaas serve` (local provider, real Xvnc) keeps one
base desktop slot pooled; its card says "Instant"; one click on Launch claims it and the
desktop opens through noVNC as the user's own, by the push (the machine page is never
reloaded); the admin page shows the claim, and a schedule set through the admin API changes
the size it shows. Screenshots in test-output/."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlparse

import pytest
from playwright.sync_api import expect

from tests.e2e.pixels import desktop_checks
from tests.support.browser import api, delete_from_machine_page, signed_in_page
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
    loads: list[str] = []
    page.on("framenavigated", lambda frame: loads.append(frame.url)
            if frame == page.main_frame else None)
    clicked = time.monotonic()
    # one click: a pool hit goes straight to the desktop page, which learns "ready" by the push
    page.click('li.card[data-environment="base-desktop"] button.launch-button')
    page.wait_for_url(re.compile(r"/machines/[0-9a-f]+/desktop$"), timeout=30_000)
    machine_id = page.url.rsplit("/", 2)[1]
    expect(page.locator("#status")).to_have_text("Connected.", timeout=30_000)
    print(f"\npooled: click -> noVNC connected {time.monotonic() - clicked:.2f}s")
    # the desktop page was the one page shown, never reloaded: "ready" came by the push
    assert [urlparse(url).path for url in loads] == [f"/machines/{machine_id}/desktop"], loads
    page.wait_for_timeout(2500)
    shot = OUTPUT / "desktop-pooled.png"
    page.locator("#screen canvas").screenshot(path=str(shot))
    assert desktop_checks(shot) == []
    page.goto(f"{portal_url}/machines/{machine_id}")
    assert "claimed from the warm pool" in page.locator("main").inner_text()
    admin = signed_in_page(browser, portal_url, "admin", "admin-demo-pass")
    admin.goto(portal_url + "/admin/pools")
    expect(admin.locator('tr[data-pool="base-desktop/m1.large"] td.claimed')).to_have_text("1")
    admin.screenshot(path=str(OUTPUT / "admin-pools.png"), full_page=True)
    admin.close()
    page = signed_in_page(browser, portal_url)
    delete_from_machine_page(page, portal_url, machine_id)
    page.close()


def test_a_schedule_changes_the_size_on_the_admin_page(portal_url: str, browser: Any) -> None:
    admin = signed_in_page(browser, portal_url, "admin", "admin-demo-pass")
    admin.goto(portal_url + "/admin/pools")
    row = admin.locator('tr[data-pool="base-desktop/m1.large"]')
    expect(row.locator("td.size-now strong")).to_have_text("1")
    expect(row.locator("td.schedule")).to_contain_text("none")
    # a window over the whole of today (facility time: UTC here), set through the admin API
    today = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")[datetime.now(UTC).weekday()]
    window = {"days": today, "start": "00:00", "end": "24:00", "size": 2}
    answer = api(admin, "PUT", "/api/v1/admin/pools/base-desktop/m1.large",
                 {"size": 1, "schedule": [window]})
    assert answer["status"] == 200, answer
    assert answer["body"]["size_now"] == 2 and answer["body"]["window_now"] == window
    admin.reload()
    expect(row.locator("td.size-now strong")).to_have_text("2")
    expect(row.locator("td.size-now")).to_contain_text(
        f"by the schedule, {today} 00:00\N{EN DASH}24:00")
    expect(row.locator("td.schedule li.in-force")).to_have_text(f"{today} 00:00\N{EN DASH}24:00: 2")
    admin.screenshot(path=str(OUTPUT / "admin-pools-schedule.png"), full_page=True)
    # the worker follows: two machines in the pool, then back to one without the schedule
    deadline = time.monotonic() + 60
    while api(admin, "GET", "/api/v1/admin/pools")["body"]["pools"][0]["figures"]["size"] != 2:
        assert time.monotonic() < deadline, "the worker never applied the schedule's size"
        admin.wait_for_timeout(500)
    assert api(admin, "PATCH", "/api/v1/admin/pools/base-desktop/m1.large",
               {"schedule": []})["status"] == 200
    admin.reload()
    expect(row.locator("td.size-now strong")).to_have_text("1")
    admin.close()
