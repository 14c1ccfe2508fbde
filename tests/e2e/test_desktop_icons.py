"""What a scientist does on the embedded default, in Chromium: launch every environment the
Analysis page offers, open its desktop page (noVNC), double-click every icon on the desktop
in the browser, see that application's window, and close it.

Icon positions are read from the session's own screen (python-xlib on its X display, with its
cookie, found from its Xvnc process); the double-click goes through the noVNC canvas at that
position, so it travels the path a person's does (browser, websocket, desktop proxy, VNC).
Windows are the window manager's list with their classes. What each icon must open comes from
the session's launchers and cvmfs/local-source.yaml: a launcher whose program does not exist
fails before anything is clicked, and one that opens the wrong window (pcmanfm's "Invalid
desktop entry" dialog) fails after. One machine per environment at a time; each is deleted,
and a finalizer deletes whatever is left even when a check fails.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from playwright.sync_api import expect

from tests.support.browser import api, signed_in_page, wait_until
from tests.support.desktop_icons import Session, expected_windows, find_session, open_every_icon
from tests.support.paths import OUTPUT

pytestmark = pytest.mark.e2e
#: What the embedded default ships software for (cvmfs/local-source.yaml)
LOCAL_ENVIRONMENTS = {"base-desktop", "hdf5-viewers"}


@pytest.fixture
def page(portal_url: str, browser: Any) -> Iterator[Any]:
    """The scientist's signed-in page; every machine launched from it is deleted afterwards
    (its processes ended), whatever the test's outcome."""
    signed_in = signed_in_page(browser, portal_url)
    yield signed_in
    machines = api(signed_in, "GET", "/api/v1/machines")["body"]["machines"]
    left = [m["id"] for m in machines if m["state"] != "deleted"]
    for machine_id in left:
        api(signed_in, "DELETE", f"/api/v1/machines/{machine_id}")
    for machine_id in left:
        wait_until(lambda mid=machine_id: state(signed_in, mid) == "deleted", 60,
                   f"machine {machine_id} to be deleted")
    signed_in.close()


def state(page: Any, machine_id: str) -> str:
    return str(api(page, "GET", f"/api/v1/machines/{machine_id}")["body"]["state"])


def offered(page: Any) -> list[str]:
    """The environments whose card can be launched: available here, Launch enabled."""
    cards = page.locator("li.card:not(.unavailable)")
    return [str(cards.nth(i).get_attribute("data-environment")) for i in range(cards.count())
            if cards.nth(i).locator("button.launch-button").is_enabled()]


def launch(page: Any, portal_url: str, name: str) -> str:
    """Press Launch on the card of ``name``; wait until the machine is ready and its page has
    opened the desktop; return its id."""
    page.goto(portal_url + "/analysis")
    page.click(f'li.card[data-environment="{name}"] button.launch-button')
    page.wait_for_url("**/machines/*")
    machine_id = str(page.url.rstrip("/").rsplit("/", 1)[1])
    seen: list[str] = []

    def ready() -> bool:
        now = state(page, machine_id)
        seen.append(now)
        assert now != "error", api(page, "GET", f"/api/v1/machines/{machine_id}")["body"]
        return now == "ready"

    wait_until(ready, 120, f"{name} to be ready (seen {sorted(set(seen))})")
    # launched from this tab, the machine page opens the desktop itself at ready (the push); a
    # page.goto of its own here raced that navigation and could wait for a load that never came
    page.wait_for_url(f"**/machines/{machine_id}/desktop", timeout=30_000)
    return machine_id


def browser_double_click(page: Any, session: Session) -> Any:
    """Return a double-click at a screen position of ``session``, made on the noVNC canvas
    (scaled from the session's screen to the canvas as drawn)."""
    canvas = page.locator("#screen canvas")

    def double_click(x: int, y: int) -> None:
        box = canvas.bounding_box()
        width, height = page.evaluate(
            "() => { const c = document.querySelector('#screen canvas');"
            " return [c.width, c.height]; }")
        assert box and width and height, "the desktop's canvas is not shown"
        left, top = box["x"] + x * box["width"] / width, box["y"] + y * box["height"] / height
        page.mouse.move(left, top)
        page.wait_for_timeout(300)
        page.mouse.dblclick(left, top)

    return double_click


def screenshots(page: Any, prefix: str) -> Any:
    """Return a callback that saves the page as ``<prefix>-<n>.png`` (n = 1, 2, …) in
    test-output/, once per window shown."""
    taken: list[str] = []

    def shoot(windows: list[str]) -> None:
        taken.append(",".join(windows))
        page.screenshot(path=str(OUTPUT / f"{prefix}-{len(taken)}.png"))

    return shoot


def test_every_icon_of_every_offered_environment_opens_its_window(portal_url: str,
                                                                  page: Any) -> None:
    names = offered(page)
    assert set(names) >= LOCAL_ENVIRONMENTS, names  # the embedded default's own software
    OUTPUT.mkdir(parents=True, exist_ok=True)
    for name in names:
        machine_id = launch(page, portal_url, name)
        expect(page.locator("#status")).to_have_text("Connected.", timeout=30_000)
        session = find_session(machine_id)
        expected = expected_windows(session)
        assert len(expected) >= 4, expected  # launchers, My storage, the experiment

        page.screenshot(path=str(OUTPUT / f"desktop-icons-{name}-0.png"))
        opened = open_every_icon(session, expected, browser_double_click(page, session),
                                 screenshots(page, f"desktop-icons-{name}"))
        assert sorted(opened) == sorted(expected), name
        assert api(page, "DELETE", f"/api/v1/machines/{machine_id}")["status"] == 202
        wait_until(lambda mid=machine_id: state(page, mid) == "deleted", 60,
                   f"{name} to be deleted")
