"""Click → first desktop frame with the local provider, in real Chromium, over several runs.

    .venv/bin/python benchmarks/launch_to_desktop.py [--runs 10] [--pools no|yes|both]

Starts `daaas serve` (embedded mode: SQLite, reconciler thread, websockify) on free ports in a
temporary folder, signs in as the demo scientist, and for each run, with the browser already
on the Analysis page: clicks Launch on the base desktop's card and does nothing else. The
card's script goes to the machine page, which waits for "ready" by a push (the desktop
status's long poll) with noVNC fetched meanwhile, and opens the desktop page, which connects
at once; a pool hit goes straight to the desktop page, which loads noVNC, waits for "ready"
by the same push and connects. The clock stops at the first canvas frame that shows a desktop
with icons: the page looks at every animation frame with the end-to-end test's pixel checks
(an init script of the benchmark, not of the portal), and a screenshot passing
``desktop_checks`` afterwards confirms it. The steps before it are marks the pages leave
(navigation starts, "Connected." seen by a MutationObserver). Then
deletes the machine. Prints each run's steps, medians and p95 per step, the portal's own
requested → ready, and the host's load. ``--pools yes`` serves with a warm pool of one base
desktop (``warm_pools = "base-desktop=1"``) and waits before each run until its card says
"Instant" (a pool hit every time); ``both`` (the default) runs unpooled then pooled, one
portal each, in the same invocation. One run before the counted ones warms the browser's
cache (noVNC).
"""

from __future__ import annotations

import argparse
import os
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from datetime import datetime
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


#: Marks the pages leave in sessionStorage (epoch ms): each page's navigation start, and when
#: the desktop page's status line says "Connected." (a MutationObserver, not a poll)
MARKS = """
sessionStorage.setItem("mark:" + location.pathname, String(performance.timeOrigin));
document.addEventListener("DOMContentLoaded", () => {
  const status = document.getElementById("status");
  if (!status) return;
  new MutationObserver(() => {
    if (status.textContent === "Connected." && !sessionStorage.getItem("mark:connected"))
      sessionStorage.setItem("mark:connected", String(Date.now()));
  }).observe(status, {childList: true, characterData: true, subtree: true});
  // the first canvas frame that passes the same checks as tests/e2e/pixels.py desktop_checks
  // (a dominant background under 99.5 %, at least 40 colours, 1,500 pixels of icons in the
  // left 220 px), looked at on every animation frame once connected
  const looks = () => {
    const canvas = document.querySelector("#screen canvas");
    if (!sessionStorage.getItem("mark:connected") || !canvas || canvas.width < 640) return false;
    const {width, height} = canvas;
    const data = canvas.getContext("2d").getImageData(0, 0, width, height).data;
    const counts = new Map();
    for (let i = 0; i < data.length; i += 4) {
      const key = (data[i] << 16) | (data[i + 1] << 8) | data[i + 2];
      counts.set(key, (counts.get(key) || 0) + 1);
    }
    let background = 0, most = 0;
    for (const [key, n] of counts) if (n > most) { background = key; most = n; }
    if (most / (width * height) > 0.995 || counts.size < 40) return false;
    const [r, g, b] = [background >> 16, (background >> 8) & 255, background & 255];
    let busy = 0;
    for (let y = 0; y < height; y++) {
      for (let x = 0; x < Math.min(220, width); x++) {
        const i = (y * width + x) * 4;
        const far = Math.abs(data[i] - r) + Math.abs(data[i + 1] - g) + Math.abs(data[i + 2] - b);
        if (far > 60) busy++;
      }
    }
    return busy >= 1500;
  };
  const watchFrames = () => {
    if (looks()) sessionStorage.setItem("mark:frame", String(Date.now()));
    else requestAnimationFrame(watchFrames);
  };
  requestAnimationFrame(watchFrames);
});
"""

STEPS = ("click → first page (machine page; a pool hit: desktop page)",
         "first page → ready (worker)",
         "ready → desktop page (push, navigation; 0 when it was the first page)",
         "ready and desktop page → noVNC connected",
         "connected → first desktop frame", "click → first desktop frame")


def one_run(page: Any, url: str, folder: Path, run: int,
            pooled: bool = False) -> tuple[list[float], float]:
    """Return the step times of one launch (:data:`STEPS`, seconds) and the portal's own
    requested → ready (for a pool hit, claimed → ready)."""
    from playwright.sync_api import expect

    if pooled:
        wait_instant(page, url)
    else:
        page.goto(url + "/analysis")
    page.evaluate("sessionStorage.clear()")
    start = time.time()
    # what a person does: one click; launch.js, the machine page and the desktop page do the rest
    page.click('li.card[data-environment="base-desktop"] button.launch-button')
    page.wait_for_url(re.compile(r"/machines/[0-9a-f]+(/desktop)?$"), wait_until="commit")
    found = re.search(r"/machines/([0-9a-f]+)", page.url)  # a pool hit: the desktop page
    assert found, page.url
    machine_id = found.group(1)
    page.wait_for_url(f"**/machines/{machine_id}/desktop", wait_until="commit",
                      timeout=120_000)
    expect(page.locator("#status")).to_have_text("Connected.", timeout=60_000)
    shot = folder / f"run-{run}{'-pooled' if pooled else ''}.png"
    while True:
        page.locator("#screen canvas").screenshot(path=str(shot))
        if not desktop_checks(shot):
            break
        if time.time() - start > 120:
            raise SystemExit(f"run {run}: no desktop frame within 120 s")
    shot_passed = time.time()
    marks = page.evaluate("Object.fromEntries(Object.keys(sessionStorage).filter(k => "
                          "k.startsWith('mark:')).map(k => [k, Number(sessionStorage[k])]))")
    desktop_page = marks[f"mark:/machines/{machine_id}/desktop"] / 1000
    first_page = marks.get(f"mark:/machines/{machine_id}", desktop_page * 1000) / 1000
    connected = marks["mark:connected"] / 1000
    # the page's own mark of the first passing frame; the screenshot that passed confirms it
    # (it comes up to one screenshot later)
    frame = marks.get("mark:frame", shot_passed * 1000) / 1000
    ready = page.evaluate(f"fetch('/api/v1/machines/{machine_id}').then(r => r.json())")
    csrf = page.evaluate("document.querySelector('meta[name=csrf-token]').content")
    page.evaluate(f"fetch('/api/v1/machines/{machine_id}', {{method: 'DELETE', "
                  f"headers: {{'X-CSRF-Token': '{csrf}'}}}})")
    page.goto(url + "/analysis")
    while page.evaluate(f"fetch('/api/v1/machines/{machine_id}').then(r => r.json())"
                        ".then(m => m.state)") != "deleted":
        time.sleep(0.3)
    became_ready = datetime.fromisoformat(ready["state_changed_at"]).timestamp()
    steps = [first_page - start, became_ready - first_page,
             max(0.0, desktop_page - became_ready),
             connected - max(desktop_page, became_ready), frame - connected, frame - start]
    return steps, portal_part(ready["events"])


def portal_part(events: list[dict[str, Any]]) -> float:
    """Return the portal's own part of a launch from the machine's events: requested → ready,
    or for a pool hit, the claim (the event from ``ready`` back to ``contextualising``) → the
    last ``ready`` (the pooled machine's own first ``ready`` came before the click)."""
    def at(event: dict[str, Any]) -> float:
        return datetime.fromisoformat(event["at"]).timestamp()

    claims = [e for e in events if e["from"] == "ready" and e["to"] == "contextualising"]
    start = at(claims[-1]) if claims else at(events[0])
    return max(at(e) for e in events if e["to"] == "ready") - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--pools", choices=["no", "yes", "both"], default="both")
    args = parser.parse_args()
    print(f"host: {os.cpu_count()} cores, load average {os.getloadavg()[0]:.2f} "
          f"{os.getloadavg()[1]:.2f} {os.getloadavg()[2]:.2f} (1, 5, 15 min) at the start")
    summaries = []
    for pooled in {"no": [False], "yes": [True], "both": [False, True]}[args.pools]:
        print("pooled (warm pool of one base desktop):" if pooled else "unpooled:")
        summaries.append((pooled, measure(args.runs, pooled)))
    print(f"load average {os.getloadavg()[0]:.2f} {os.getloadavg()[1]:.2f} "
          f"{os.getloadavg()[2]:.2f} at the end")
    print("\n| step | " + " | ".join(f"{'pooled' if p else 'unpooled'} p50 | p95"
                                     for p, _ in summaries) + " |")
    print("|---|" + "---|---|" * len(summaries))
    for index, step in enumerate((*STEPS, "portal: requested (claimed) → ready")):
        cells = " | ".join(f"{s[index][0]:.2f} s | {s[index][1]:.2f} s" for _, s in summaries)
        print(f"| {step} | {cells} |")


def p50_p95(values: list[float]) -> tuple[float, float]:
    """Return the median and the 95th percentile (inclusive method) of ``values``."""
    if len(values) < 2:
        return values[0], values[0]
    return statistics.median(values), statistics.quantiles(values, n=20, method="inclusive")[18]


def measure(runs: int, pooled: bool) -> list[tuple[float, float]]:
    """Run ``runs`` launches on a fresh portal, print them and their summary; return (p50,
    p95) per step and of the portal's requested → ready."""
    from playwright.sync_api import sync_playwright

    folder = Path(tempfile.mkdtemp(prefix="daaas-bench-desktop-"))
    folder.chmod(0o711)  # as root, each desktop runs as its user, who must pass through
    process, url = start_portal(folder, pooled)
    try:
        with sync_playwright() as playwright:
            context = playwright.chromium.launch_persistent_context(
                str(folder / "profile"), executable_path=CHROMIUM, args=CHROMIUM_ARGS,
                headless=True, viewport={"width": 1280, "height": 860})
            context.add_init_script(MARKS)
            page = context.new_page()
            page.goto(url + "/sign-in")
            page.fill("#username", "scientist")
            page.fill("#password", "scientist-demo")
            page.click("button[type=submit]")
            one_run(page, url, folder, 0, pooled)  # warm-up (not counted): caches noVNC
            results = [one_run(page, url, folder, run, pooled) for run in range(1, runs + 1)]
            context.close()
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(30)
    for run, (steps, ready) in enumerate(results, 1):
        print(f"run {run:2}: " + "  ".join(f"{value:5.2f}" for value in steps)
              + f"   (portal requested → ready {ready:5.2f} s)")
    summary = [p50_p95([steps[index] for steps, _ in results]) for index in range(len(STEPS))]
    summary.append(p50_p95([ready for _, ready in results]))
    for step, (p50, p95) in zip((*STEPS, "portal requested → ready"), summary, strict=True):
        print(f"  {step}: median {p50:.2f} s, p95 {p95:.2f} s, n={len(results)}")
    print(f"  screenshots: {folder}")
    return summary


if __name__ == "__main__":
    main()
