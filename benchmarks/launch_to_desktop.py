"""Click → first desktop frame with the local provider, in real Chromium, over several runs.

    .venv/bin/python benchmarks/launch_to_desktop.py [--runs 5] [--pools no|yes|both]

Starts `daaas serve` (embedded mode: SQLite, reconciler thread, websockify) on free ports in a
temporary folder, signs in as the demo scientist, and for each run: clicks Launch on the
Analysis desktop card, follows the machine page until "Open desktop" appears, opens it, and
stops the clock when the noVNC canvas shows a desktop with icons (the same pixel checks as the
end-to-end test). Then deletes the machine. Prints each run, the median and the spread, and the
portal's own requested→ready time for comparison. ``--pools yes`` serves with a warm pool of
one base desktop (``warm_pools = "base-desktop=1"``) and waits before each run until its card
says "Instant" (a pool hit every time); ``both`` runs unpooled then pooled, one portal each.
"""

from __future__ import annotations

import argparse
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.e2e.pixels import desktop_checks  # noqa: E402
from tests.support.browser import CHROMIUM, CHROMIUM_ARGS, free_port  # noqa: E402


def start_portal(folder: Path, pooled: bool = False) -> tuple[subprocess.Popen[bytes], str]:
    """Start `daaas serve` (with a warm pool of one base desktop if ``pooled``) and return it
    with its URL once it answers."""
    port = free_port()
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("DAAAS_")},
           "DAAAS_PORT": str(port), "DAAAS_WEBSOCKIFY_PORT": str(free_port()),
           "DAAAS_VAR_DIR": str(folder / "var"), "DAAAS_RECONCILE_INTERVAL_SECONDS": "0.5",
           "DAAAS_LOG_LEVEL": "WARNING",
           **({"DAAAS_WARM_POOLS": "base-desktop=1", "DAAAS_WARM_POOL_FREE_SESSIONS": "0"}
              if pooled else {})}
    process = subprocess.Popen([sys.executable, "-c", "from daaas.portal.cli import main; main()",
                                "serve"], cwd=ROOT, env=env, start_new_session=True,
                               stdout=(folder / "serve.log").open("w"), stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    for _ in range(300):
        try:
            urllib.request.urlopen(url + "/sign-in", timeout=2)
            return process, url
        except OSError:
            time.sleep(0.3)
    raise SystemExit("daaas serve did not start; see serve.log")


def wait_instant(page: Any, url: str) -> None:
    """Reload the Analysis page until the base desktop's card says Instant (60 s at most)."""
    for _ in range(120):
        page.goto(url + "/analysis")
        if page.locator('li.card[data-environment="base-desktop"] .badge.instant').count():
            return
        time.sleep(0.5)
    raise SystemExit("the pool never had a machine waiting")


def one_run(page: Any, url: str, folder: Path, run: int,
            pooled: bool = False) -> tuple[float, float]:
    """Return (click→first frame seconds, portal requested→ready seconds; for a pool hit,
    claimed→ready)."""
    from playwright.sync_api import expect

    if pooled:
        wait_instant(page, url)
    else:
        page.goto(url + "/analysis")
    start = time.perf_counter()
    page.click('li.card[data-environment="base-desktop"] button.launch-button')
    page.wait_for_url("**/machines/*")
    machine_id = page.url.rstrip("/").rsplit("/", 1)[1]
    # the machine page has no "Open desktop" link any more: wait for ready as the Analysis
    # page's script does (asking the API), then open the desktop page
    while page.evaluate(f"fetch('/api/v1/machines/{machine_id}').then(r => r.json())"
                        ".then(m => m.state)") != "ready":
        if time.perf_counter() - start > 120:
            raise SystemExit(f"run {run}: not ready within 120 s")
        time.sleep(0.05)
    page.goto(f"{url}/machines/{machine_id}/desktop")
    expect(page.locator("#status")).to_have_text("Connected.", timeout=60_000)
    shot = folder / f"run-{run}.png"
    while True:
        page.locator("#screen canvas").screenshot(path=str(shot))
        if not desktop_checks(shot):
            break
        if time.perf_counter() - start > 120:
            raise SystemExit(f"run {run}: no desktop frame within 120 s")
    elapsed = time.perf_counter() - start
    ready = page.evaluate(f"fetch('/api/v1/machines/{machine_id}').then(r => r.json())")
    csrf = page.evaluate("document.querySelector('meta[name=csrf-token]').content")
    page.evaluate(f"fetch('/api/v1/machines/{machine_id}', {{method: 'DELETE', "
                  f"headers: {{'X-CSRF-Token': '{csrf}'}}}})")
    while page.evaluate(f"fetch('/api/v1/machines/{machine_id}').then(r => r.json())"
                        ".then(m => m.state)") != "deleted":
        time.sleep(0.3)
    return elapsed, ready["phases"]["total_to_ready"] or float("nan")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--pools", choices=["no", "yes", "both"], default="no")
    args = parser.parse_args()
    for pooled in {"no": [False], "yes": [True], "both": [False, True]}[args.pools]:
        print("pooled (warm pool of one base desktop):" if pooled else "unpooled:")
        measure(args.runs, pooled)


def measure(runs: int, pooled: bool) -> None:
    """Run ``runs`` launches on a fresh portal and print them and their summary."""
    from playwright.sync_api import sync_playwright

    folder = Path(tempfile.mkdtemp(prefix="daaas-bench-desktop-"))
    folder.chmod(0o711)  # as root, each desktop runs as its user, who must pass through
    process, url = start_portal(folder, pooled)
    try:
        with sync_playwright() as playwright:
            context = playwright.chromium.launch_persistent_context(
                str(folder / "profile"), executable_path=CHROMIUM, args=CHROMIUM_ARGS,
                headless=True, viewport={"width": 1280, "height": 860})
            page = context.new_page()
            page.goto(url + "/sign-in")
            page.fill("#username", "scientist")
            page.fill("#password", "scientist-demo")
            page.click("button[type=submit]")
            results = [one_run(page, url, folder, run, pooled) for run in range(1, runs + 1)]
            context.close()
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(30)
    for run, (frame, ready) in enumerate(results, 1):
        print(f"run {run}: click → first desktop frame {frame:6.2f} s   "
              f"(portal requested → ready {ready:5.2f} s)")
    frames = [frame for frame, _ in results]
    readies = [ready for _, ready in results]
    print(f"click → first desktop frame: median {statistics.median(frames):.2f} s, "
          f"min {min(frames):.2f}, max {max(frames):.2f}, "
          f"stdev {statistics.pstdev(frames):.2f}, n={len(frames)}")
    print(f"requested → ready (portal events): median {statistics.median(readies):.2f} s")


if __name__ == "__main__":
    main()
