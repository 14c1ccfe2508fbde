"""Idle stop of real desktops: of two real local desktops with a one-minute idle timeout (a
copy of the catalogue with base-desktop's ``idle_timeout_minutes: 1``, the worker looking
every second), the one nobody connects to is stopped after its idle time (its processes end,
Xvnc included), while the one with a connected browser (real Chromium through the real desktop
proxy) stays ready past the same time. Real `daaas serve`, real clock: about 110 seconds (the
catalogue's idle time is in whole minutes)."""

from __future__ import annotations

import re
import shutil
import time
from collections.abc import Iterator
from typing import Any

import pytest

from daaas.catalogue.loader import PACKAGE_DIRECTORY
from tests.integration.process_scan import session_processes
from tests.support.browser import api, signed_in_page, wait_until
from tests.support.serve import served_portal

pytestmark = pytest.mark.e2e
IDLE_SECONDS = 60


@pytest.fixture(scope="module")
def portal_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """`daaas serve` with base-desktop idle after one minute and the idle check every second."""
    catalogue = tmp_path_factory.mktemp("catalogue") / "environments"
    shutil.copytree(PACKAGE_DIRECTORY / "environments", catalogue)
    base = catalogue / "base-desktop.yaml"
    text, count = re.subn(r"idle_timeout_minutes: \d+", "idle_timeout_minutes: 1",
                          base.read_text())
    assert count == 1
    base.write_text(text)
    with served_portal(tmp_path_factory, {"DAAAS_CATALOGUE_DIR": str(catalogue),
                                          "DAAAS_IDLE_CHECK_SECONDS": "1",
                                          "DAAAS_IDLE_WARNING_MINUTES": "0"}) as url:
        yield url


def state(page: Any, machine_id: str) -> str:
    return str(api(page, "GET", f"/api/v1/machines/{machine_id}")["body"]["state"])


def launch(page: Any) -> str:
    answer = api(page, "POST", "/api/v1/machines", {"environment": "base-desktop"})
    assert answer["status"] == 202, answer
    return str(answer["body"]["id"])


def test_an_unconnected_desktop_is_stopped_and_a_connected_one_is_not(
        portal_url: str, browser: Any) -> None:
    page = signed_in_page(browser, portal_url)
    idle, used = launch(page), launch(page)
    desktop = None
    try:
        wait_until(lambda: state(page, idle) == "ready" and state(page, used) == "ready", 90,
                   "both desktops to be ready")
        ready_at = time.monotonic()
        desktop = browser.new_page()  # the same signed-in browser, a second tab
        desktop.goto(f"{portal_url}/machines/{used}/desktop")
        desktop.locator("#status").filter(has_text="Connected.").wait_for(timeout=30_000)

        wait_until(lambda: state(page, idle) in ("stopping", "stopped"), IDLE_SECONDS + 30,
                   "the unconnected desktop to be stopped as idle")
        assert time.monotonic() - ready_at >= IDLE_SECONDS - 5  # not before its idle time
        wait_until(lambda: state(page, idle) == "stopped", 30, "the stop to finish")
        wait_until(lambda: session_processes(idle) == [], 30, "its processes to end")
        machine = api(page, "GET", f"/api/v1/machines/{idle}")["body"]
        assert "stopped as idle" in machine["events"][-2]["message"], machine["events"][-2:]

        # past its idle time, its first connection record's 75 s and the proxy's 60 s renewal:
        # without the renewal it would be stopped at about 78 s
        while time.monotonic() - ready_at < IDLE_SECONDS + 30:
            assert state(page, used) == "ready"
            time.sleep(2)
        assert desktop.locator("#status").inner_text() == "Connected."
        assert session_processes(used) != []
    finally:
        if desktop is not None:
            desktop.close()
        for machine_id in (idle, used):
            api(page, "DELETE", f"/api/v1/machines/{machine_id}")
        wait_until(lambda: session_processes(idle) == [] and session_processes(used) == [],
                   30, "every session's processes (Xvnc included) to end")
        page.close()
