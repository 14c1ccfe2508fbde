"""My Data's New folder form in a real browser, at phone width (390 px): a bad folder name is
told next to the field on the same page, what was typed kept, nothing created (issue 14,
point 5). Screenshots under test-output/; the key facts asserted in the DOM."""

from __future__ import annotations

from typing import Any

import pytest

from tests.support.browser import signed_in_page
from tests.support.paths import OUTPUT

pytestmark = pytest.mark.e2e

PHONE = {"width": 390, "height": 844}
#: 128 letters but 256 bytes: the field's maxlength lets it through, the server refuses it
TOO_LONG = "é" * 128


def create(page: Any, name: str) -> None:
    page.fill("#new-folder", name)
    page.click("form.inline-form:has(#new-folder) button[type=submit]")
    page.wait_for_load_state()


def listed(page: Any) -> list[str]:
    return [str(name) for name in
            page.locator("#listing tr[data-name]").evaluate_all(
                "rows => rows.map(row => row.dataset.name)")]


@pytest.mark.parametrize(("name", "told"), [
    ("..", "'..' is not a valid name"),
    ("a/b", "'a/b' is not a valid name"),
    (TOO_LONG, "This name is 256 bytes long; a name can be at most 255 bytes"),
], ids=["dotdot", "slash", "over-long"])
def test_a_bad_folder_name_is_told_next_to_the_field(portal_url: str, browser: Any, name: str,
                                                     told: str) -> None:
    page = signed_in_page(browser, portal_url)
    page.set_viewport_size(PHONE)
    page.goto(portal_url + "/my-data/")
    before = listed(page)

    create(page, name)

    error = page.locator("form:has(#new-folder) #new-folder-error")
    assert error.is_visible() and told in error.inner_text()
    assert page.locator("h1").inner_text() == "My Data"  # the page kept, not an error page
    field = page.locator("#new-folder")
    assert field.input_value() == name and field.get_attribute("aria-invalid") == "true"
    assert field.get_attribute("aria-describedby") == "new-folder-error"
    below, at = error.bounding_box(), field.bounding_box()
    assert below and at and 0 <= below["y"] - (at["y"] + at["height"]) < 80  # right under it
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= PHONE["width"], f"the page is {width} px wide"
    assert listed(page) == before  # nothing created
    if name == "..":
        page.locator(".files").screenshot(path=str(OUTPUT / "my-data-folder-error.png"))
        page.screenshot(path=str(OUTPUT / "my-data-folder-error-390px.png"), full_page=True)

    corrected = f"results-{len(name)}"
    create(page, corrected)  # corrected in place: the folder is made, the error gone
    assert corrected in listed(page)
    assert page.locator("#new-folder-error").count() == 0
    page.close()
