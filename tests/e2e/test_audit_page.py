"""The audit page in a real Chromium: an administrator filters the trail and exports CSV."""

from __future__ import annotations

import urllib.error
import urllib.request
from typing import Any

import pytest
from flask import Flask
from playwright.sync_api import expect

from tests.support.browser import signed_in_page
from tests.support.paths import OUTPUT
from tests.support.web import bearer, served


@pytest.fixture
def settings_override(settings_override: dict[str, Any]) -> dict[str, Any]:
    return {**settings_override, "provider": "memory"}


def post(url: str, headers: dict[str, str], body: bytes) -> int:
    request = urllib.request.Request(url, data=body, method="POST", headers={
        **headers, "Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=10) as answer:
            return int(answer.status)
    except urllib.error.HTTPError as error:
        return int(error.code)


def test_an_administrator_filters_the_trail_and_exports_csv(app: Flask, browser: Any) -> None:
    with served(app) as url:
        scientist = bearer(app, "scientist")
        for environment in ("ccp4", "ccp4"):
            assert post(f"{url}/api/v1/machines", scientist,
                        f'{{"environment": "{environment}"}}'.encode()) == 202
        signed_in_page(browser, url, "scientist", "scientist-demo").close()
        page = signed_in_page(browser, url, "admin", "admin-demo-pass")
        page.click("nav >> text=Audit")
        page.wait_for_url("**/admin/audit")
        expect(page.locator("#audit-events tbody tr")).to_have_count(4)  # 2 launches, 2 sign-ins
        page.fill("#actor", "scientist")
        page.select_option("#action", "machine.launch")
        page.click("#audit-filters button[type=submit]")
        page.wait_for_url("**/admin/audit?*action=machine.launch*")
        rows = page.locator("#audit-events tbody tr")
        expect(rows).to_have_count(2)
        expect(rows.first).to_contain_text("scientist")
        expect(rows.first).to_contain_text("ccp4 on")
        OUTPUT.mkdir(parents=True, exist_ok=True)
        page.set_viewport_size({"width": 1280, "height": 700})
        page.screenshot(path=str(OUTPUT / "admin-audit.png"), full_page=True)
        with page.expect_download() as download:
            page.click("#audit-csv")
        text = download.value.path().read_text(encoding="utf-8")
        assert text.splitlines()[0] == "id,at,actor,action,target,detail,source,admin"
        assert len(text.splitlines()) == 3 and text.count("machine.launch") == 2
        page.fill("#since", "2001-01-01")
        page.fill("#until", "2001-01-02")
        page.click("#audit-filters button[type=submit]")
        expect(page.locator("#no-events")).to_be_visible()
        page.close()
