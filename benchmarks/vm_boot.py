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

``--pools yes`` measures launches from a warm pool instead (``--pools both``: unpooled, then
pooled, side by side). The portal keeps one ``vm-desktop`` booted with no user
(``warm_pools = "vm-desktop=1"``, one machine at most); each run waits until the pooled VM's
agent reported ``pooled-ready`` and the card says "Instant", clicks Launch (a hit: the same
machine, checked) and splits the hand-over from the portal's records (``claimed_at``,
``personalised_at``, the claim's answer taken, the agent's report, the ``ready`` event), the
and the page:

- launch → claimed: the launch request claimed the pooled machine;
- claimed → handed over: the worker's hand-over (``personalised_at``);
- handed over → taken: the agent's next claim request took the claimer's session;
- taken → reported: the agent's per-user work (account, secrets, home, mounts, Desktop files,
  the VNC server as the user; xrdp and sshd run already, started in the pool) and its report;
- reported → ready: → the machine's ``ready`` event (one reconciler cycle);
- ready → frame: the desktop page (open since the click) connects → the noVNC canvas shows
  the desktop;
- launch → ready and launch → frame.

Deleting the claimed machine frees the slot and the pool refills (a full boot): each run
prints the refill (deleted → QEMU started → pooled-ready), the pool's cost, and the first fill
after the portal started. The load average is printed at the start and the end. SIGTERM or
SIGINT stops the portal, its VMs and the browser.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import sqlite3
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from playwright.sync_api import TimeoutError as PlaywrightTimeout  # noqa: E402

from daaas.portal.providers.qemu import accel, newest_cloud_kernel  # noqa: E402
from tests.support.browser import CHROMIUM, CHROMIUM_ARGS  # noqa: E402
from tests.vm import harness  # noqa: E402
from tests.vm.harness import desktop_problems  # noqa: E402

PHASES = ["qemu → kernel", "kernel → cloud-init", "cloud-init → exchange", "exchange → ready",
          "ready → frame", "launch → frame"]
POOL_PHASES = ["launch → claimed", "claimed → handed over", "handed over → taken",
               "taken → reported", "reported → ready", "ready → frame", "launch → ready",
               "launch → frame"]
REFILL_PHASES = ["deleted → QEMU started", "QEMU → pooled-ready", "deleted → pooled-ready"]
POOL_SETTINGS = {"DAAAS_WARM_POOLS": "vm-desktop=1", "DAAAS_WARM_POOL_FREE_SESSIONS": "0"}
CARD = 'li.card[data-environment="vm-desktop"]'
TIMEOUT = 1200  # seconds: a boot under TCG on a loaded host


@dataclass
class Measured:
    """One portal's runs: each run's phases, and (pooled) each refill's and the first fill."""

    runs: list[dict[str, float]] = field(default_factory=list)
    refills: list[dict[str, float]] = field(default_factory=list)
    first_fill: float | None = None


def epoch(text: str) -> float:
    """Return an ISO timestamp from the portal as seconds since the epoch."""
    return datetime.fromisoformat(text).timestamp()


def stamp(text: str) -> float:
    """Return a timestamp the portal stored (naive UTC in SQLite) as seconds since the
    epoch."""
    return epoch(text if "+" in text else text + "+00:00")


def row(var_dir: Path, sql: str, *args: str) -> Any:
    """Return the first row of ``sql`` on the portal's SQLite database, or None."""
    with sqlite3.connect(var_dir / "daaas.sqlite") as db:
        return db.execute(sql, args).fetchone()


def used_at(var_dir: Path, machine_id: str) -> float:
    """Return when the portal recorded the machine's bootstrap exchange (for a pooled machine,
    once claimed: when its agent took the claimer's session)."""
    return stamp(row(var_dir, "SELECT used_at FROM machine_contexts WHERE machine_id = ?",
                     machine_id)[0])


def pooled_ready(var_dir: Path) -> tuple[str, float] | None:
    """Return the pooled machine waiting for a claim and when its agent reported
    ``pooled-ready``, or None while there is none."""
    found = row(var_dir, "SELECT m.id, c.reported_at FROM machines m JOIN machine_contexts c "
                "ON c.machine_id = m.id WHERE m.pool IS NOT NULL AND m.state = 'ready' "
                "AND c.reported_status = 'pooled-ready' ORDER BY m.created_at")
    return None if found is None else (str(found[0]), stamp(found[1]))


def wait_for_pool(page: Any, url: str, var_dir: Path) -> tuple[str, float]:
    """Wait until a pooled machine is ready to be claimed and the Analysis page's card says
    "Instant"; return the machine and when it reported ``pooled-ready`` (the page is left on
    the Analysis page). Raises SystemExit when that does not happen within TIMEOUT."""
    deadline = time.monotonic() + TIMEOUT
    while (found := pooled_ready(var_dir)) is None:
        if time.monotonic() > deadline:
            raise SystemExit(f"no pooled machine was ready within {TIMEOUT} s")
        time.sleep(1)
    while True:
        page.goto(url + "/analysis")
        if page.locator(f"{CARD} .badge.instant").count():
            return found
        if time.monotonic() > deadline:
            raise SystemExit("the card never said Instant")
        time.sleep(1)


def first_frame(page: Any, shot: Path, deadline: float) -> float:
    """Screenshot noVNC's canvas until it shows the light desktop (or ``deadline``, a
    time.monotonic() value, passes); return the time.time() at which it did."""
    while True:
        page.locator("#screen canvas").screenshot(path=str(shot))
        if not desktop_problems(shot) or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    return time.time()


def delete_machine(page: Any, url: str, machine_id: str) -> float:
    """Delete the machine on its page (confirming) and wait until it is deleted; return when
    the portal recorded that."""
    page.goto(f"{url}/machines/{machine_id}")
    page.once("dialog", lambda dialog: dialog.accept())
    page.click("form[data-confirm] button")
    page.wait_for_url("**/analysis")
    while (machine := harness.api(page, f"/api/v1/machines/{machine_id}"))["state"] != "deleted":
        time.sleep(1)
    return max((epoch(e["at"]) for e in machine["events"] if e["to"] == "deleted"),
               default=time.time())


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
    frame = first_frame(page, folder / f"run{run}.png", deadline)
    seen = watch.stop()
    delete_machine(page, url, machine_id)
    return {"qemu → kernel": seen["kernel"] - started,
            "kernel → cloud-init": seen["cloud_init_start"] - seen["kernel"],
            "cloud-init → exchange": exchange - seen["cloud_init_start"],
            "exchange → ready": ready - exchange, "ready → frame": frame - ready,
            "launch → frame": frame - clicked}, state["accel"]


def pooled_run(page: Any, url: str, var_dir: Path, run: int, folder: Path,
               pooled_id: str) -> tuple[dict[str, float], str, float]:
    """Click Launch on the card that says Instant, check the launch claimed the pooled machine
    ``pooled_id``, wait for ready and the first frame, delete; return the phase durations,
    the accelerator the machine ran under and when it was deleted.

    Raises SystemExit when the launch did not claim the pooled machine or it did not get
    ready."""
    vm_dir = var_dir / "qemu" / pooled_id
    clicked = time.time()
    page.locator(f"{CARD} button.launch-button").click()
    # a pool hit opens the desktop page at once (a miss: the machine page)
    page.wait_for_url(re.compile(r"/machines/[0-9a-f]+(/desktop)?$"))
    found = re.search(r"/machines/([0-9a-f]+)", page.url)
    machine_id = found.group(1) if found else ""
    if machine_id != pooled_id:
        raise SystemExit(f"run {run}: the launch made {machine_id}, not the pooled "
                         f"{pooled_id} (a pool miss)")
    deadline = time.monotonic() + TIMEOUT
    machine = harness.wait_for_state(page, machine_id, TIMEOUT, every=0.25)
    if machine["state"] != "ready":
        raise SystemExit(f"run {run}: machine ended {machine['state']}: "
                         f"{machine.get('error_reason')}")
    ready = max(epoch(e["at"]) for e in machine["events"] if e["to"] == "ready")
    try:  # the desktop page is open already (a pool hit)
        page.wait_for_url("**/desktop", timeout=15_000)
    except PlaywrightTimeout:
        page.goto(f"{url}/machines/{machine_id}/desktop")
    frame = first_frame(page, folder / f"pooled-run{run}.png", deadline)
    accel_used = json.loads((vm_dir / "state.json").read_text())["accel"]
    claimed, personalised = (stamp(value) for value in row(
        var_dir, "SELECT claimed_at, personalised_at FROM machines WHERE id = ?", machine_id))
    taken, reported = (stamp(value) for value in row(
        var_dir, "SELECT used_at, reported_at FROM machine_contexts WHERE machine_id = ?",
        machine_id))
    deleted = delete_machine(page, url, machine_id)
    phases = {"launch → claimed": claimed - clicked,
              "claimed → handed over": personalised - claimed,
              "handed over → taken": taken - personalised,
              "taken → reported": reported - taken}
    return phases | {"reported → ready": ready - reported, "ready → frame": frame - ready,
                     "launch → ready": ready - clicked,
                     "launch → frame": frame - clicked}, accel_used, deleted


def refill(page: Any, url: str, var_dir: Path, deleted: float) -> tuple[str, dict[str, float]]:
    """Wait until the pool has refilled after a deletion at ``deleted``; return the new pooled
    machine and the refill's phases."""
    pooled_id, at = wait_for_pool(page, url, var_dir)
    started = json.loads((var_dir / "qemu" / pooled_id / "state.json").read_text())
    return pooled_id, {"deleted → QEMU started": started["started_at"] - deleted,
                       "QEMU → pooled-ready": at - started["started_at"],
                       "deleted → pooled-ready": at - deleted}


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


def measure(image: Path, mode: str, runs: int, folder: Path,
            pooled: bool = False) -> Measured:
    """Boot ``runs`` machines one after the other under ``mode`` (``pooled``: claim them from a
    warm pool of one, each after the pool refilled); return their phases.

    Raises SystemExit when a machine ran under another accelerator than asked."""
    from playwright.sync_api import sync_playwright

    folder.mkdir()
    label = f"{mode} pooled" if pooled else mode
    began = time.time()
    process, url = harness.start_portal(
        folder, image, {"DAAAS_LOG_LEVEL": "WARNING", "DAAAS_QEMU_ACCEL": mode,
                        **(POOL_SETTINGS if pooled else {})})
    measured = Measured()
    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            page = browser.new_page(viewport={"width": 1280, "height": 860})
            page.goto(url + "/sign-in")
            page.fill("#username", "scientist")
            page.fill("#password", "scientist-demo")
            page.click("button[type=submit]")
            if pooled:
                pooled_id, at = wait_for_pool(page, url, folder / "var")
                measured.first_fill = at - began
                print(f"{label}: first fill (portal started → pooled-ready) "
                      f"{measured.first_fill:.1f} s", flush=True)
            for run in range(1, runs + 1):
                if pooled:
                    result, used, deleted = pooled_run(page, url, folder / "var", run, folder,
                                                       pooled_id)
                else:
                    result, used = one_run(page, url, folder / "var", run, folder)
                if used != mode:
                    raise SystemExit(f"asked for {mode}, the machine ran under {used}")
                measured.runs.append(result)
                print(f"{label} run {run}: " + ", ".join(
                    f"{k} {v:.1f} s" for k, v in result.items()), flush=True)
                if pooled:
                    pooled_id, refilled = refill(page, url, folder / "var", deleted)
                    measured.refills.append(refilled)
                    print(f"{label} refill {run}: " + ", ".join(
                        f"{k} {v:.1f} s" for k, v in refilled.items()), flush=True)
            browser.close()
    finally:
        harness.stop_portal(process)
        harness.kill_leftover_vms(folder / "var")
    return measured


def table(title: str, rows: list[str], columns: dict[str, list[dict[str, float]]]) -> None:
    """Print the median (min-max) of each row for each column ("-" where a column has none)."""
    print(title)
    print(f"  {'phase':24}" + "".join(f"{name:>22}" for name in columns))
    for phase in rows:
        cells = []
        for runs in columns.values():
            values = [r[phase] for r in runs if phase in r]
            cells.append(f"{statistics.median(values):7.1f} ({min(values):5.1f}-"
                         f"{max(values):5.1f})" if values else "-")
        if any(cell != "-" for cell in cells):
            print(f"  {phase:24}" + "".join(f"{cell:>22}" for cell in cells))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--image", type=Path, help="Use this image instead of building one.")
    parser.add_argument("--accel", choices=["both", "kvm", "tcg"], default="both")
    parser.add_argument("--pools", choices=["no", "yes", "both"], default="no",
                        help="Launch from a warm pool of one VM (yes), not (no), or both.")
    args = parser.parse_args()
    # SIGTERM ends the benchmark as SIGINT does: each portal and its VMs are stopped
    signal.signal(signal.SIGTERM, lambda number, frame: sys.exit(128 + number))
    problem = harness.tools_problem()
    if problem:
        raise SystemExit(f"this host lacks: {problem}")
    print("load average at the start: " + " ".join(f"{v:.2f}" for v in os.getloadavg()))
    folder = Path(tempfile.mkdtemp(prefix="daaas-vm-bench-"))
    image = args.image
    if image is None:
        began = time.monotonic()
        image = harness.build_image(folder)
        print(f"image built in {time.monotonic() - began:.0f} s: {image}")
    results: dict[str, Measured] = {}
    for mode in accelerators(args.accel):
        if args.pools in ("no", "both"):
            results[mode.upper()] = measure(image.resolve(), mode, args.runs, folder / mode)
        if args.pools in ("yes", "both"):
            results[f"{mode.upper()} pooled"] = measure(
                image.resolve(), mode, args.runs, folder / f"{mode}-pooled", pooled=True)
    rows = list(dict.fromkeys((PHASES if args.pools != "yes" else [])
                              + (POOL_PHASES if args.pools != "no" else [])))
    table(f"\nmedian of {args.runs} runs (seconds), min-max in brackets:", rows,
          {name: measured.runs for name, measured in results.items()})
    pools = {name: measured for name, measured in results.items() if measured.refills}
    if pools:
        table("\nthe pool's refill after each deletion (seconds), min-max in brackets:",
              REFILL_PHASES, {name: measured.refills for name, measured in pools.items()})
        for name, measured in pools.items():
            print(f"  {name}: first fill (portal started → pooled-ready) "
                  f"{measured.first_fill:.1f} s")
    print("load average at the end: " + " ".join(f"{v:.2f}" for v in os.getloadavg()))


if __name__ == "__main__":
    main()
