"""Machines you can tell apart, in a real browser on the embedded default (issue 14, point 4):
two desktops of one environment and one experiment on the Analysis page, first with their
default names, then one renamed in place on its card (a refused name first, its reason next
to the field). The screenshots are saved under test-output/ and their key facts asserted in
the DOM.
"""

from __future__ import annotations

import re
from typing import Any

import pytest

from daaas.portal.db import utcnow
from daaas.portal.machines.naming import short_date
from tests.support.browser import api, delete_machines, signed_in_page, wait_until
from tests.support.paths import OUTPUT

pytestmark = pytest.mark.e2e

STARTED = re.compile(r"^Started \d{1,2} [A-Z][a-z]{2}, \d\d:\d\d UTC \((just now|\d+ min ago)\)$")




def facts(card: Any) -> dict[str, str]:
    return {str(item.get_attribute("data-fact")): str(item.inner_text())
            for item in card.locator("ul.facts li").all()}


def test_two_machines_of_one_environment_told_apart(portal_url: str, browser: Any) -> None:
    page = signed_in_page(browser, portal_url)
    page.set_viewport_size({"width": 1280, "height": 860})
    experiments = api(page, "GET", "/api/v1/experiments")["body"]["experiments"]
    mx = next(e["id"] for e in experiments if e["visit_id"] == "MX31850-12")
    ids: list[str] = []
    try:
        for _ in range(2):
            created = api(page, "POST", "/api/v1/machines",
                          {"environment": "base-desktop", "experiment": mx})
            assert created["status"] == 202, created
            ids.append(created["body"]["id"])
        page.goto(portal_url + "/analysis")
        cards = [page.locator(f'#my-machines tr[data-machine="{i}"]') for i in ids]
        for card in cards:
            card.wait_for()
            wait_until(lambda c=card: c.get_attribute("data-state") in ("ready", "error"), 120,
                       "the machines to be ready")
        page.wait_for_timeout(300)
        section = page.locator("section.my-machines")
        section.screenshot(path=str(OUTPUT / "analysis-two-machines.png"))

        name = f"Analysis desktop · MX31850-12 · {short_date(utcnow())}"
        names = [str(card.locator(".machine-name").inner_text()) for card in cards]
        assert names == [name, f"{name} (2)"]
        for card in cards:
            shown = facts(card)
            assert shown["environment"] == "Analysis desktop"
            assert shown["experiment"] == "Experiment MX31850-12"
            assert shown["size"] == "4 cores · 16 GiB"
            assert STARTED.match(shown["started"]), shown["started"]
            assert card.locator("td.state").inner_text().lower() in ("ready", "error")
        assert [c.get_attribute("data-state") for c in cards] == ["ready", "ready"], \
            "a local desktop did not start"
        for card in cards:  # a ready desktop: open it, or stop or delete it
            assert card.locator(".row-actions a", has_text="Desktop").is_visible()

        # rename the second on its card: an empty name is refused next to the field
        second = cards[1]
        second.locator("button.rename-button").click()
        field = second.locator("form.rename-form input[name=name]")
        assert field.input_value() == f"{name} (2)"
        field.fill("   ")
        second.locator("form.rename-form button[type=submit]").click()
        note = second.locator("form.rename-form .field-note.error")
        note.wait_for()
        assert note.get_attribute("role") == "alert"
        assert "Give the machine a name: 1 to 80 characters." in note.inner_text()
        assert field.get_attribute("aria-invalid") == "true"
        page.wait_for_timeout(2500)  # a refresh of the list keeps the card being edited
        assert note.is_visible() and field.input_value() == "   "
        second.screenshot(path=str(OUTPUT / "analysis-rename-refused.png"))

        field.fill("Crystal 2 refinement")
        second.locator("form.rename-form button[type=submit]").click()
        wait_until(lambda: second.locator(".machine-name").count() == 1 and
                   second.locator(".machine-name").inner_text() == "Crystal 2 refinement", 10,
                   "the new name on the card")
        page.wait_for_timeout(300)
        section.screenshot(path=str(OUTPUT / "analysis-two-machines-renamed.png"))
        page.evaluate("window.scrollTo(0, 0)")
        page.screenshot(path=str(OUTPUT / "analysis-two-machines-page.png"))  # the README's
        assert cards[0].locator(".machine-name").inner_text() == name
        assert api(page, "GET", f"/api/v1/machines/{ids[1]}")["body"]["name"] == \
            "Crystal 2 refinement"
        assert facts(second)["experiment"] == "Experiment MX31850-12"

        # the machine page: its name, what it is, and its folders as the desktop has them
        page.goto(f"{portal_url}/machines/{ids[1]}")
        assert page.locator("h1#machine-name").inner_text() == "Crystal 2 refinement"
        assert page.title().startswith("Crystal 2 refinement")
        folders = page.locator("#machine-folders")
        assert "~/storage" in folders.inner_text()
        assert "~/experiment-MX31850-12" in folders.inner_text()
        assert "of your 100.0 GiB quota used" in folders.inner_text()
        assert "/var/experiments" not in page.content()
        page.screenshot(path=str(OUTPUT / "machine-page-named.png"), full_page=True)
    finally:
        delete_machines(page, ids)
        page.close()
