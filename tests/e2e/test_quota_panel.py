"""Quotas in a real browser (Debian Chromium), the portal served in-process on the in-memory
provider: the Analysis page's quota panel says "GPU (NVIDIA A100): 1 of 2 used", a launch
past the group's GPU quota is refused next to the card's Launch button with the quota named,
and an administrator raises the quota on the Quotas page. Screenshots go to test-output/."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from flask import Flask

from daaas.portal.auth.service import get_user
from daaas.portal.db import unit_of_work
from daaas.portal.machines import service
from tests.support.browser import signed_in_page
from tests.support.paths import OUTPUT
from tests.support.web import served

pytestmark = pytest.mark.e2e
GROUP = "beamline-i03"


@pytest.fixture
def settings_override(settings_override: dict[str, Any]) -> dict[str, Any]:
    """The in-memory provider and the group's quota."""
    return {**settings_override, "provider": "memory",
            "quotas": f"group {GROUP}: gpu:NVIDIA A100=2, vcpus=64, memory_gib=256"}


@pytest.fixture
def portal(app: Flask) -> Iterator[str]:
    """scientist in the group with one A100 machine, then the portal served; its URL."""
    rt = app.extensions["daaas"]
    with unit_of_work(rt.session_factory) as db:
        user = get_user(db, "scientist")
        user.groups = ["diamond-users", GROUP]
        service.launch(db, rt.settings, rt.catalogue, user, "tomography-gpu", "g1.a100-1")
    with served(app) as base:
        yield base


def panel_lines(page: Any) -> list[str]:
    return [str(li.inner_text()) for li in page.locator("#quota-panel li").all()]


@pytest.mark.parametrize("demo_database_url", ["sqlite"], indirect=True)
def test_the_quota_panel_a_refusal_and_the_admin_page(portal: str, browser: Any) -> None:
    page = signed_in_page(browser, portal)
    assert panel_lines(page) == [
        "Machines: 1 of 3 used", f"vCPUs: 8 of 64 used ({'group ' + repr(GROUP)})",
        f"Memory: 64 of 256 GiB used (group '{GROUP}')",
        f"GPU (NVIDIA A100): 1 of 2 used (group '{GROUP}')"]
    page.locator("#quota-panel").screenshot(path=str(OUTPUT / "quota-panel.png"))
    card = page.locator('li.card[data-environment="tomography-gpu"]')
    card.locator("button.launch-button").click()
    page.wait_for_url("**/machines/*")
    page.goto(portal + "/analysis")
    assert panel_lines(page)[-1] == f"GPU (NVIDIA A100): 2 of 2 used (group '{GROUP}')"
    assert page.locator("#quota-panel li.full").count() == 1
    card.locator("button.launch-button").click()
    note = card.locator(".launch-note.error")
    note.wait_for()
    assert note.inner_text() == (
        f"Launch refused: group '{GROUP}' GPU quota (NVIDIA A100) is 2 and 2 are in use. "
        "Delete or stop a machine, or ask an administrator.")
    page.screenshot(path=str(OUTPUT / "quota-refused.png"), full_page=True)
    page.close()

    admin = signed_in_page(browser, portal, "admin", "admin-demo-pass")
    admin.goto(portal + "/admin/quotas")
    admin.fill("#name", GROUP)
    admin.fill("#vcpus", "64")
    admin.fill("#memory_gib", "256")
    admin.fill("#gpus", "NVIDIA A100=3")
    admin.click("#set-quota button[type=submit]")
    admin.locator("#saved").wait_for()
    row = admin.locator(f'tr[data-quota="group:{GROUP}"]')
    assert "3 \N{MULTIPLICATION SIGN} NVIDIA A100" in row.inner_text()
    assert "admin," in row.locator('td[data-label="Set by"]').inner_text()
    admin.screenshot(path=str(OUTPUT / "quota-admin.png"), full_page=True)
    admin.close()
