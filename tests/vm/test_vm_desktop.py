"""A real VM, end to end: the portal launches it with the QEMU provider, cloud-init applies OUR
user-data from a NoCloud seed, the bootstrap agent trades its token and reports ready through
QEMU's forwarded address, and the browser shows the VM's desktop through websockify and noVNC.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import expect

from tests.support.paths import OUTPUT, ROOT
from tests.vm import harness
from tests.vm.harness import desktop_problems

pytestmark = pytest.mark.vm
SCREENSHOT = ROOT / "docs" / "screenshots" / "vm-desktop.png"


@dataclass(frozen=True)
class Portal:
    url: str
    var_dir: Path

    def console(self, machine_id: str) -> Path:
        return self.var_dir / "qemu" / machine_id / "console.log"


@pytest.fixture(scope="module")
def portal(vm_image: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Portal]:
    folder = tmp_path_factory.mktemp("vm-portal")
    process, url = harness.start_portal(folder, vm_image)
    try:
        yield Portal(url, folder / "var")
    finally:
        harness.stop_portal(process)
        harness.kill_leftover_vms(folder / "var")
        print((folder / "serve.log").read_text()[-3000:])


def test_vm_boots_with_our_user_data_reports_ready_and_shows_its_desktop(
        portal: Portal, browser: Any) -> None:
    page = browser.new_page()
    page.goto(portal.url + "/sign-in")
    page.fill("#username", "scientist")
    page.fill("#password", "scientist-demo")
    page.click("button[type=submit]")
    page.click('li.card[data-environment="vm-desktop"] button.launch-button')
    page.wait_for_url("**/machines/*")
    machine_id = page.url.rstrip("/").rsplit("/", 1)[1]

    machine = _wait_for_ready(page, machine_id, timeout=900)
    assert machine["state"] == "ready", machine
    messages = [event["message"] for event in machine["events"]]
    assert "the machine reported it is set up" in messages  # the VM's own report, not QEMU's

    console = _console(portal.console(machine_id))

    page.goto(f"{portal.url}/machines/{machine_id}/desktop")
    expect(page.locator("#status")).to_have_text("Connected.", timeout=60_000)
    shot = OUTPUT / "vm-desktop.png"
    _wait_for_desktop(page, shot)
    SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy(shot, SCREENSHOT)

    assert harness.cloud_init_problems(console) == [], console[-4000:]
    assert "daaas-bootstrap: ready" in console
    assert "status: done" in console  # `cloud-init status --long` from daaas-boot-report

    page.goto(f"{portal.url}/machines/{machine_id}")
    page.on("dialog", lambda dialog: dialog.accept())
    page.click("form[data-confirm] button")
    page.wait_for_url("**/analysis")
    _wait(lambda: harness.api(page, f"/api/v1/machines/{machine_id}")["state"] == "deleted",
          120, "the machine to be deleted")
    assert not portal.console(machine_id).parent.exists()  # overlay, seed and logs removed
    page.close()


def _wait_for_desktop(page: Any, shot: Path, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while True:
        page.locator("#screen canvas").screenshot(path=str(shot))
        problems = desktop_problems(shot)
        if not problems or time.monotonic() > deadline:
            break
        time.sleep(2)  # the session may still be starting its xterm
    assert problems == [], problems


def _wait_for_ready(page: Any, machine_id: str, timeout: float) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        machine: dict[str, Any] = harness.api(page, f"/api/v1/machines/{machine_id}")
        if machine["state"] in ("ready", "error") or time.monotonic() > deadline:
            return machine
        time.sleep(2)


def _console(path: Path, timeout: float = 180) -> str:
    """Return the VM's console once daaas-boot-report has shown cloud-init's status.

    A copy goes to the test output for CI.
    """
    deadline = time.monotonic() + timeout
    text = ""
    while time.monotonic() < deadline:
        text = harness.clean(path.read_text(errors="replace"))
        if "daaas-boot-report: end" in text:
            break
        time.sleep(2)
    (OUTPUT / "vm-console.log").write_text(text)
    return text


def _wait(check: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(1)
    raise AssertionError(f"timed out waiting for {what}")
