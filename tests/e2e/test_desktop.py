"""The heart of the product in a real browser: sign in, launch, watch progress, open the
desktop through noVNC and websockify, check its pixels, delete, and no process is left."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from daaas.portal.providers.local.desktop import detach
from tests.conftest import OUTPUT, ROOT
from tests.e2e.conftest import free_port, signed_in_page
from tests.e2e.pixels import desktop_checks, desktop_labels
from tests.integration.process_scan import session_processes

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def portal_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """`daaas serve` with its reconciler thread and websockify, on free ports."""
    if not Path("/usr/bin/Xvnc").exists() and not os.environ.get("CI"):
        pytest.skip("TigerVNC (Xvnc) not installed")
    var_dir = tmp_path_factory.mktemp("portal") / "var"
    port = free_port()
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("DAAAS_")},
           "DAAAS_PORT": str(port), "DAAAS_WEBSOCKIFY_PORT": str(free_port()),
           "DAAAS_VAR_DIR": str(var_dir), "DAAAS_RECONCILE_INTERVAL_SECONDS": "0.5"}
    log = (var_dir.parent / "serve.log").open("w")
    process = subprocess.Popen([sys.executable, "-c", "from daaas.portal.cli import main; main()",
                                "serve"], cwd=ROOT, env=env, stdout=log,
                               stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_for_http(url, process)
        yield url
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(30)
        detach(var_dir)  # a failed test may leave a session's read-only experiment mount
        log.close()
        print((var_dir.parent / "serve.log").read_text()[-3000:])


def _wait_for_http(url: str, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        assert process.poll() is None, "daaas serve stopped"
        try:
            urllib.request.urlopen(url + "/sign-in", timeout=2)
            return
        except OSError:
            time.sleep(0.3)
    raise AssertionError("daaas serve did not answer within 90 s")


def test_launch_open_desktop_and_delete(portal_url: str, browser: Any) -> None:
    page = signed_in_page(browser, portal_url)
    machine_id = launch_base_desktop(page)

    page.goto(portal_url + "/analysis")
    row = page.locator(f'tr[data-machine="{machine_id}"]')
    seen = _watch_states(row, until="ready", timeout=90)
    assert seen[-1] == "ready" and len(seen) >= 2, seen
    page.screenshot(path=str(OUTPUT / "analysis-my-machines.png"))

    row.locator("a", has_text="Desktop").click()
    page.wait_for_url(f"**/machines/{machine_id}/desktop")
    page.wait_for_function("document.getElementById('status').textContent === 'Connected.'",
                           timeout=30_000)
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
    seen = _watch_states(page.locator(f'tr[data-machine="{machine_id}"]'), "ready", 90)
    assert seen[-1] == "ready", seen
    page.goto(f"{portal_url}/machines/{machine_id}/desktop")
    page.wait_for_function("document.getElementById('status').textContent === 'Connected.'",
                           timeout=30_000)
    page.wait_for_timeout(2500)
    shot = OUTPUT / "desktop-experiment.png"
    page.locator("#screen canvas").screenshot(path=str(shot))
    assert desktop_checks(shot) == []
    labels = desktop_labels(shot)
    for label in ("My storage", "Experiment", "MX31850"):  # pcmanfm cuts long labels: "MX31850-…"
        assert label in labels, labels

    delete_from_machine_page(page, portal_url, machine_id)
    page.close()


def launch_base_desktop(page: Any) -> str:
    """Press Launch on the base desktop's card; return the new machine's id."""
    page.click('li.card[data-environment="base-desktop"] button.launch-button')
    page.wait_for_url("**/machines/*")
    return str(page.url.rstrip("/").rsplit("/", 1)[1])


def delete_from_machine_page(page: Any, portal_url: str, machine_id: str) -> None:
    """Delete the machine from its page (confirming) and wait until nothing of it is left."""
    page.goto(f"{portal_url}/machines/{machine_id}")
    page.on("dialog", lambda dialog: dialog.accept())
    page.click("form[data-confirm] button")
    page.wait_for_url("**/analysis")
    _wait(lambda: session_processes(machine_id) == [], 30, "the session's processes to end")
    _wait(lambda: _api_state(page, machine_id) == "deleted", 30, "the machine to be deleted")


def _api_state(page: Any, machine_id: str) -> str:
    machine = page.evaluate(f"fetch('/api/v1/machines/{machine_id}').then(r => r.json())")
    return str(machine["state"])


def _watch_states(row: Any, until: str, timeout: float) -> list[str]:
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


def _wait(check: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.3)
    raise AssertionError(f"timed out waiting for {what}")
