"""OIDC sign-in in a real browser: Chromium presses "Sign in with Test OP" on a real `daaas
serve`, signs in on the real OpenID provider's page (the certified ``oidc-provider`` package,
tests/support/oidc_op) and lands signed in; signing out ends the portal's session (a copy of
its cookie gets 401) and, through the provider's sign-out page, the provider's (the next
sign-in asks for the login again). The CSP's form-action must let both forms lead there."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from playwright.sync_api import expect

from tests.support.browser import api, free_port
from tests.support.oidc import OpenIdProvider, running_op
from tests.support.paths import OUTPUT, ROOT, passable

pytestmark = pytest.mark.e2e
COOKIE = "daaas_session"


@pytest.fixture(scope="module")
def oidc_portal(tmp_path_factory: pytest.TempPathFactory
                ) -> Iterator[tuple[str, OpenIdProvider]]:
    """A real OpenID provider and a `daaas serve` signing in there (no worker, no desktop
    proxy: this test launches nothing)."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    with running_op(url) as op:
        var_dir = passable(tmp_path_factory.mktemp("oidc-portal")) / "var"
        settings = {f"DAAAS_{key.upper()}": str(value)
                    for key, value in op.portal_settings(url).items()}
        env = {**{k: v for k, v in os.environ.items() if not k.startswith("DAAAS_")},
               **settings, "DAAAS_PORT": str(port), "DAAAS_VAR_DIR": str(var_dir),
               "DAAAS_EMBEDDED_WORKER": "false", "DAAAS_START_WEBSOCKIFY": "false",
               "DAAAS_LOCAL_SOFTWARE_DIR": ""}
        log_path = var_dir.parent / "serve.log"
        with log_path.open("w") as log:
            process = subprocess.Popen(
                [sys.executable, "-c", "from daaas.portal.cli import main; main()", "serve"],
                cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
                start_new_session=True)
            try:
                _wait_for(url, process)
                yield url, op
            finally:
                os.killpg(process.pid, signal.SIGTERM)
                process.wait(30)
        log_text = log_path.read_text()
        print(log_text[-3000:])
        assert op.client_secret not in log_text, "the client secret is in the portal's log"


def _wait_for(url: str, process: subprocess.Popen[bytes]) -> None:
    import time

    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        assert process.poll() is None, "daaas serve stopped"
        try:
            requests.get(url + "/sign-in", timeout=2)
            return
        except requests.RequestException:
            time.sleep(0.3)
    raise AssertionError("daaas serve did not answer within 90 s")


def _portal_cookie(browser: Any) -> str:
    values = [c["value"] for c in browser.cookies() if c["name"] == COOKIE]
    assert values, "no portal cookie"
    return str(values[0])


def test_sign_in_at_the_provider_and_out_at_both_ends(
        browser: Any, oidc_portal: tuple[str, OpenIdProvider]) -> None:
    portal, op = oidc_portal
    browser.clear_cookies()
    page = browser.new_page()
    page.goto(portal + "/sign-in")
    button = page.locator("#external-sign-in-button")
    expect(button).to_have_text("Sign in with Test OP")
    expect(page.locator("#password-sign-in")).to_be_visible()  # break-glass local accounts
    button.click()

    # the provider's own login page (oidc-provider's development interaction)
    login = page.locator("input[name=login]")
    expect(login).to_be_visible()
    assert page.url.startswith(op.issuer + "/interaction/")
    login.fill("alice")
    page.fill("input[name=password]", "any-password")
    page.click("button[type=submit]")

    page.wait_for_url(portal + "/analysis")
    expect(page.locator("a.who")).to_have_text("Alice Adams")
    me = api(page, "GET", "/api/v1/me")
    assert me["status"] == 200 and me["body"]["username"] == "alice"
    assert me["body"]["groups"] == ["mx", "scientists"]
    page.screenshot(path=str(Path(OUTPUT) / "oidc-signed-in.png"))
    captured = _portal_cookie(browser)

    # sign out: the portal's session ends, then the provider asks to confirm its own
    page.click("form.signout button")
    yes = page.locator("button[name=logout][value=yes]")
    expect(yes).to_be_visible()
    assert page.url.startswith(op.issuer + "/session/end")
    answer = requests.get(portal + "/api/v1/me", cookies={COOKIE: captured}, timeout=10)
    assert answer.status_code == 401, "a copy of the cookie still works after sign-out"
    yes.click()
    page.wait_for_url(portal + "/sign-in")
    expect(page.locator("#external-sign-in-button")).to_be_visible()

    # the provider's session has ended too: signing in again asks for the login
    page.click("#external-sign-in-button")
    expect(page.locator("input[name=login]")).to_be_visible()
    assert page.url.startswith(op.issuer + "/interaction/")
    page.close()
