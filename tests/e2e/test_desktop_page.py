"""The desktop page in a real browser around a real local desktop: panels hidden until asked
for, full screen, keyboard shortcuts, Send file into the user's storage, an administrator's
opening shown to the owner, Start for a stopped machine and an end state for a deleted one.

The tests share one machine and run in file order (the last one deletes it)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from playwright.sync_api import expect

from tests.support.browser import api, signed_in_page, wait_until
from tests.support.paths import OUTPUT

pytestmark = pytest.mark.e2e
H5_SIGNATURE = b"\x89HDF\r\n\x1a\n"




def wait_connected(page: Any, timeout: float) -> None:
    """Wait until the page says it is connected (a locator: the portal's CSP forbids the eval
    that wait_for_function needs)."""
    expect(page.locator("#status")).to_have_text("Connected.", timeout=timeout * 1000)


def wait_for_state(page: Any, machine_id: str, state: str, timeout: float) -> None:
    seen: list[str] = []

    def reached() -> bool:
        now = api(page, "GET", f"/api/v1/machines/{machine_id}")["body"]["state"]
        if not seen or seen[-1] != now:
            seen.append(now)
        assert now != "error", seen
        return bool(now == state)

    wait_until(reached, timeout, f"state {state} (seen {seen})")


def shot(page: Any, name: str) -> None:
    OUTPUT.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(OUTPUT / name))


@pytest.fixture(scope="module")
def machine(portal_url: str, browser: Any) -> Iterator[str]:
    """A ready base desktop of the scientist, launched through the API."""
    page = signed_in_page(browser, portal_url)
    launched = api(page, "POST", "/api/v1/machines", {"environment": "base-desktop"})
    assert launched["status"] == 202, launched
    machine_id = str(launched["body"]["id"])
    wait_for_state(page, machine_id, "ready", 90)
    page.close()
    yield machine_id


def open_desktop(browser: Any, portal_url: str, machine_id: str, username: str = "scientist",
                 password: str = "scientist-demo") -> Any:
    page = signed_in_page(browser, portal_url, username, password)
    page.goto(f"{portal_url}/machines/{machine_id}/desktop")
    wait_connected(page, 30)
    page.wait_for_timeout(2000)  # let the desktop paint its icons
    return page


def test_panels_are_hidden_until_asked_for_and_full_screen(portal_url: str, browser: Any,
                                                          machine: str) -> None:
    page = open_desktop(browser, portal_url, machine)
    for panel in ("#clipboard-panel", "#keys-panel", "#send-panel", "#end-card"):
        assert page.locator(panel).is_hidden(), panel
    bar = page.locator(".desktop-bar").bounding_box()
    assert bar and bar["height"] <= 40, bar  # a compact bar: the desktop gets the rest
    screen = page.locator("#screen").bounding_box()
    assert screen and screen["height"] >= 860 - 40, screen
    shot(page, "desktop-page.png")

    page.click("#clipboard-toggle")
    assert page.locator("#clipboard-panel").is_visible()
    send = page.locator("#clipboard-send").bounding_box()
    assert send and send["width"] < 400, send  # a button, not a bar across the page
    assert page.get_attribute("#clipboard-toggle", "aria-expanded") == "true"
    shot(page, "desktop-clipboard-open.png")
    page.click("#clipboard-toggle")
    assert page.locator("#clipboard-panel").is_hidden()

    page.locator("#screen canvas").click(position={"x": 600, "y": 500})
    page.keyboard.press("Control+Alt+Shift+KeyK")  # the shortcut, with the desktop focused
    assert page.locator("#keys-panel").is_visible()
    assert "Ctrl+Alt+Shift+F" in page.locator("#keys-panel").inner_text().replace(" ", "")
    shot(page, "desktop-keys-help.png")
    page.keyboard.press("Control+Alt+Shift+KeyK")
    assert page.locator("#keys-panel").is_hidden()

    page.click("#fullscreen")
    wait_until(lambda: page.evaluate("document.fullscreenElement?.id") == "desktop", 5,
               "full screen")
    # (fullscreenchange, which updates the button, follows fullscreenElement by a frame)
    expect(page.locator("#fullscreen")).to_have_attribute("aria-pressed", "true")
    expect(page.locator("#fullscreen")).to_have_text("Leave full screen")
    page.wait_for_timeout(1500)  # the desktop follows the new size
    shot(page, "desktop-fullscreen.png")
    page.click("#fullscreen")
    wait_until(lambda: page.evaluate("document.fullscreenElement") is None, 5,
               "full screen to end")
    assert page.inner_text("#status") == "Connected."
    page.close()


def test_send_file_lands_in_storage_and_says_where(portal_url: str, browser: Any,
                                                   machine: str) -> None:
    page = open_desktop(browser, portal_url, machine)
    page.click("#send-toggle")
    assert page.locator("#drop-zone").is_visible()
    assert "~/storage" in page.inner_text("#drop-zone")
    page.set_input_files("#send-input", files=[{
        "name": "crystal 7.h5", "mimeType": "application/x-hdf5",
        "buffer": H5_SIGNATURE + b"chosen"}])
    done = page.locator("#send-results p.done", has_text="crystal 7.h5")
    done.wait_for(timeout=10_000)
    assert done.get_attribute("data-path") == "~/storage/crystal 7.h5"
    assert "My storage" in done.inner_text()

    # a file dropped on the zone (a DataTransfer, as a drag from the file manager makes)
    page.evaluate("""() => {
        const transfer = new DataTransfer();
        transfer.items.add(new File(["dropped text\\n"], "notes.txt", {type: "text/plain"}));
        const zone = document.getElementById("drop-zone");
        for (const type of ["dragenter", "dragover", "drop"]) {
            zone.dispatchEvent(new DragEvent(type, {dataTransfer: transfer, bubbles: true,
                                                    cancelable: true}));
        }
    }""")
    dropped = page.locator("#send-results p.done", has_text="notes.txt")
    dropped.wait_for(timeout=10_000)
    assert dropped.get_attribute("data-path") == "~/storage/notes.txt"
    shot(page, "desktop-send-file.png")

    # an unusable name is refused in place, as in My Data
    page.set_input_files("#send-input", files=[{"name": "..", "mimeType": "text/plain",
                                                "buffer": b"x"}])
    page.locator("#send-results p.failed").wait_for(timeout=10_000)

    listing = page.context.request.get(f"{portal_url}/my-data/").text()
    assert "crystal 7.h5" in listing and "notes.txt" in listing
    saved = page.context.request.get(f"{portal_url}/my-data/storage/crystal%207.h5")
    assert saved.body() == H5_SIGNATURE + b"chosen"
    page.close()


def test_an_administrator_opening_is_shown_to_the_owner(portal_url: str, browser: Any,
                                                        machine: str) -> None:
    admin = open_desktop(browser, portal_url, machine, "admin", "admin-demo-pass")
    note = admin.locator(".desktop-notice.admin-view")
    assert note.is_visible() and "as an administrator" in note.inner_text()
    assert admin.locator("#send-toggle").count() == 0
    shot(admin, "desktop-admin-view.png")
    events = api(admin, "GET", f"/api/v1/machines/{machine}")["body"]["events"]
    assert [e["message"] for e in events].count(
        "desktop opened by administrator Facility Admin (admin)") == 1
    admin.close()

    owner = open_desktop(browser, portal_url, machine)
    notice = owner.locator("#watch-notice")
    notice.wait_for(state="visible", timeout=20_000)
    assert "Administrator Facility Admin (admin) opened this desktop" in notice.inner_text()
    shot(owner, "desktop-admin-notice.png")
    owner.click("#watch-notice button")
    assert notice.is_hidden()
    owner.close()


def test_a_stopped_machine_offers_start_and_comes_back(portal_url: str, browser: Any,
                                                      machine: str) -> None:
    page = signed_in_page(browser, portal_url)
    assert api(page, "POST", f"/api/v1/machines/{machine}/stop")["status"] == 202
    wait_for_state(page, machine, "stopped", 60)
    page.goto(f"{portal_url}/machines/{machine}/desktop")
    card = page.locator("#end-card")
    card.wait_for(state="visible", timeout=15_000)
    assert page.inner_text("#end-title") == "This machine is stopped"
    assert page.locator("#end-start").is_visible()
    assert page.locator("#reconnect").is_hidden() and page.locator("#fullscreen").is_hidden()
    assert "Trying again" not in page.inner_text("#status")
    shot(page, "desktop-stopped.png")

    page.click("#end-start")
    card.wait_for(state="hidden", timeout=10_000)
    wait_connected(page, 120)
    page.wait_for_timeout(2000)
    assert page.locator("#end-card").is_hidden() and page.locator("#fullscreen").is_visible()
    shot(page, "desktop-started-again.png")
    page.close()


def test_a_deleted_machine_ends_without_retrying(portal_url: str, browser: Any,
                                                 machine: str) -> None:
    page = open_desktop(browser, portal_url, machine)
    assert api(page, "DELETE", f"/api/v1/machines/{machine}")["status"] == 202
    card = page.locator("#end-card")
    card.wait_for(state="visible", timeout=60_000)  # the open connection ends with the machine
    wait_for_state(page, machine, "deleted", 60)
    page.reload()
    card.wait_for(state="visible", timeout=15_000)
    assert page.inner_text("#end-title") == "This machine has been deleted"
    assert page.locator("#end-start").is_hidden() and page.locator("#reconnect").is_hidden()
    page.wait_for_timeout(4000)  # no retry happens behind the card
    assert "Trying again" not in page.inner_text("#status")
    assert page.inner_text("#status") == "The desktop has ended."
    shot(page, "desktop-deleted.png")
    page.close()
