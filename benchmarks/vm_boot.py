"""Launch → ready → first desktop frame of a REAL VM (QEMU provider) per phase, KVM and TCG.

Under KVM and under software emulation (TCG) on the same machine.

    .venv/bin/python benchmarks/vm_boot.py [--runs 3] [--image vm-desktop.qcow2] [--accel both]

Builds the light desktop image as the VM test tier does (mmdebstrap from the elements'
package lists; skipped with --image), then for each accelerator starts `daaas serve` with the
QEMU provider, signs in as the demo scientist in Debian's Chromium, and for each run launches
the tier's `vm-desktop` environment, follows the VM's serial console (host time at which lines
first appear) and the portal's own records, opens the desktop through noVNC until the light
desktop shows, and deletes the machine. ``--accel both`` (the default) runs KVM when the
provider's boot probe says KVM works here (else it says why and runs TCG only), then TCG.
Prints each run, the accelerator the machine really ran under (its state.json), and the
median of each phase side by side:

- qemu → kernel: QEMU started (the provider's record) → "Linux version" on the console;
- kernel → cloud-init: → cloud-init's "running 'init-local'";
- cloud-init → exchange: → the portal recorded the bootstrap token's use;
- exchange → ready: → the machine's `ready` event (agent's report + one reconciler cycle);
- ready → frame: → the noVNC canvas shows the desktop (page load, websockify, VNC login).
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import statistics
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from daaas.portal.providers.qemu import accel, newest_cloud_kernel  # noqa: E402
from tests.support.browser import CHROMIUM, CHROMIUM_ARGS  # noqa: E402
from tests.vm import harness  # noqa: E402
from tests.vm.harness import desktop_problems  # noqa: E402

PHASES = ["qemu → kernel", "kernel → cloud-init", "cloud-init → exchange", "exchange → ready",
          "ready → frame", "launch → frame"]


def epoch(text: str) -> float:
    """Return an ISO timestamp from the portal as seconds since the epoch."""
    return datetime.fromisoformat(text).timestamp()


def used_at(var_dir: Path, machine_id: str) -> float:
    """Return when the portal recorded the machine's bootstrap exchange."""
    with sqlite3.connect(var_dir / "daaas.sqlite") as db:
        row = db.execute("SELECT used_at FROM machine_contexts WHERE machine_id = ?",
                         (machine_id,)).fetchone()
    return epoch(row[0] if "+" in row[0] else row[0] + "+00:00")


def one_run(page: Any, url: str, var_dir: Path, run: int,
            folder: Path) -> tuple[dict[str, float], str]:
    """Launch, wait for ready and the first frame, delete; return the phase durations and the
    accelerator the machine ran under."""
    page.goto(url + "/analysis")
    clicked = time.time()
    page.click('li.card[data-environment="vm-desktop"] button.launch-button')
    page.wait_for_url("**/machines/*")
    machine_id = page.url.rstrip("/").rsplit("/", 1)[1]
    vm_dir = var_dir / "qemu" / machine_id
    watch = harness.ConsoleWatch(vm_dir / "console.log")
    deadline = time.monotonic() + 1200
    while (machine := harness.api(page, f"/api/v1/machines/{machine_id}"))["state"] not in (
            "ready", "error") and time.monotonic() < deadline:
        time.sleep(1)
    if machine["state"] != "ready":
        raise SystemExit(f"run {run}: machine ended {machine['state']}: "
                         f"{machine.get('error_reason')}")
    ready = max(epoch(e["at"]) for e in machine["events"] if e["to"] == "ready")
    state = json.loads((vm_dir / "state.json").read_text())
    started = state["started_at"]
    exchange = used_at(var_dir, machine_id)
    page.goto(f"{url}/machines/{machine_id}/desktop")
    shot = folder / f"run{run}.png"
    while True:
        page.locator("#screen canvas").screenshot(path=str(shot))
        if not desktop_problems(shot) or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    frame = time.time()
    seen = watch.stop()
    page.goto(f"{url}/machines/{machine_id}")
    page.once("dialog", lambda dialog: dialog.accept())
    page.click("form[data-confirm] button")
    page.wait_for_url("**/analysis")
    while harness.api(page, f"/api/v1/machines/{machine_id}")["state"] != "deleted":
        time.sleep(1)
    return {"qemu → kernel": seen["kernel"] - started,
            "kernel → cloud-init": seen["cloud_init_start"] - seen["kernel"],
            "cloud-init → exchange": exchange - seen["cloud_init_start"],
            "exchange → ready": ready - exchange, "ready → frame": frame - ready,
            "launch → frame": frame - clicked}, state["accel"]


def accelerators(wanted: str) -> list[str]:
    """Return the accelerators to measure: for "both", KVM first when the provider's probe
    says it works on this machine (printing the verdict either way), then TCG."""
    if wanted != "both":
        return [wanted]
    choice = accel.probe(newest_cloud_kernel())
    print(f"KVM boot probe: {choice.reason}")
    if choice.accel == "kvm":
        return ["kvm", "tcg"]
    print("KVM does not work on this machine: software emulation (TCG) only.")
    return ["tcg"]


def measure(image: Path, mode: str, runs: int, folder: Path) -> list[dict[str, float]]:
    """Boot ``runs`` machines one after the other under ``mode``; return their phases.

    Raises SystemExit when a machine ran under another accelerator than asked."""
    from playwright.sync_api import sync_playwright

    folder.mkdir()
    process, url = harness.start_portal(folder, image,
                                        {"DAAAS_LOG_LEVEL": "WARNING", "DAAAS_QEMU_ACCEL": mode})
    results = []
    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            page = browser.new_page(viewport={"width": 1280, "height": 860})
            page.goto(url + "/sign-in")
            page.fill("#username", "scientist")
            page.fill("#password", "scientist-demo")
            page.click("button[type=submit]")
            for run in range(1, runs + 1):
                result, used = one_run(page, url, folder / "var", run, folder)
                if used != mode:
                    raise SystemExit(f"asked for {mode}, the machine ran under {used}")
                results.append(result)
                print(f"{mode} run {run}: " + ", ".join(
                    f"{k} {v:.1f} s" for k, v in result.items()), flush=True)
            browser.close()
    finally:
        harness.stop_portal(process)
        harness.kill_leftover_vms(folder / "var")
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--image", type=Path, help="Use this image instead of building one.")
    parser.add_argument("--accel", choices=["both", "kvm", "tcg"], default="both")
    args = parser.parse_args()
    problem = harness.tools_problem()
    if problem:
        raise SystemExit(f"this host lacks: {problem}")
    folder = Path(tempfile.mkdtemp(prefix="daaas-vm-bench-"))
    image = args.image
    if image is None:
        began = time.monotonic()
        image = harness.build_image(folder)
        print(f"image built in {time.monotonic() - began:.0f} s: {image}")
    results = {mode: measure(image.resolve(), mode, args.runs, folder / mode)
               for mode in accelerators(args.accel)}
    print(f"\nmedian of {args.runs} runs (seconds), min-max in brackets:")
    print(f"  {'phase':24}" + "".join(f"{mode.upper():>22}" for mode in results))
    for phase in PHASES:
        cells = []
        for runs in results.values():
            values = [r[phase] for r in runs]
            cells.append(f"{statistics.median(values):7.1f} ({min(values):5.1f}-"
                         f"{max(values):5.1f})")
        print(f"  {phase:24}" + "".join(f"{cell:>22}" for cell in cells))


if __name__ == "__main__":
    main()
