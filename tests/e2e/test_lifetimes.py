"""Lifetimes in a real browser: the card counts down the time left, Extend moves it, and the
expiry banner appears inside the desktop page (a real `daaas serve` on the local provider,
warning 200 hours ahead so a new machine is already within its last warning)."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import expect

from daaas.portal.providers.local.desktop import detach
from tests.support.browser import (
    delete_from_machine_page,
    free_port,
    launch_base_desktop,
    signed_in_page,
    watch_states,
)
from tests.support.paths import ROOT, passable

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def portal_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """`daaas serve` as tests/e2e/conftest.py starts it, warning 200 h before a machine's end."""
    if not Path("/usr/bin/Xvnc").exists() and not os.environ.get("CI"):
        pytest.skip("TigerVNC (Xvnc) not installed")
    var_dir = passable(tmp_path_factory.mktemp("portal")) / "var"
    port = free_port()
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("DAAAS_")},
           "DAAAS_PORT": str(port), "DAAAS_WEBSOCKIFY_PORT": str(free_port()),
           "DAAAS_VAR_DIR": str(var_dir), "DAAAS_RECONCILE_INTERVAL_SECONDS": "0.5",
           "DAAAS_EXPIRY_WARNING_HOURS": "200"}
    log = (var_dir.parent / "serve.log").open("w")
    process = subprocess.Popen([sys.executable, "-c", "from daaas.portal.cli import main; main()",
                                "serve"], cwd=ROOT, env=env, stdout=log,
                               stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while True:
            assert process.poll() is None and time.monotonic() < deadline, "no daaas serve"
            try:
                urllib.request.urlopen(url + "/sign-in", timeout=2)
                break
            except OSError:
                time.sleep(0.3)
        yield url
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(30)
        detach(var_dir)
        log.close()


def test_time_left_counts_down_extend_moves_it_and_the_desktop_warns(portal_url: str,
                                                                      browser: Any) -> None:
    page = signed_in_page(browser, portal_url)
    machine_id = launch_base_desktop(page)
    page.goto(portal_url + "/analysis")
    row = page.locator(f'tr[data-machine="{machine_id}"]')
    assert watch_states(row, until="ready", timeout=90)[-1] == "ready"
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
