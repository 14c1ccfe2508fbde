"""SSH keys and RDP sign-in in a real browser (issue 18, point 4 and 2): the user adds a key
on the SSH keys page (a weak one first, refused with its reason), a cloud machine's page shows
the ssh command through the facility's jump host and a "Sign in with RDP" button, which shows
a one-time password once. Screenshots go to test-output/.

The portal runs in this process on a threading server with a provider double whose machines
have RDP and SSH ports (what the OpenStack provider gives); the pages are the real ones.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization as ser
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa
from flask import Flask

from daaas.portal import create_app
from daaas.portal.providers import ConnectionTarget
from tests.support.access import FixedTarget, make_machine
from tests.support.browser import signed_in_page
from tests.support.paths import OUTPUT
from tests.support.web import served

pytestmark = pytest.mark.e2e


class CloudTarget(FixedTarget):
    """Machines at 10.0.0.5 with VNC, RDP and SSH, as a cloud gives them."""

    name = "cloud-double"

    def __init__(self) -> None:
        super().__init__(vnc_port=5901, rdp_port=3389, host="10.0.0.5")
        self.target = ConnectionTarget(host="10.0.0.5", vnc_port=5901, rdp_port=3389,
                                       ssh_port=22)


@pytest.fixture
def cloud_app(settings_override: dict[str, Any]) -> Iterator[Flask]:
    app = create_app({**settings_override, "ssh_bastion": "jump.facility.example"})
    runtime = app.extensions["daaas"]
    app.extensions["daaas"] = dataclasses.replace(runtime, provider=CloudTarget())
    yield app
    runtime.engine.dispose()


def public_line(private: Any, comment: str) -> str:
    line = private.public_key().public_bytes(ser.Encoding.OpenSSH, ser.PublicFormat.OpenSSH)
    return f"{line.decode()} {comment}"


def test_ssh_keys_and_rdp_sign_in_pages(cloud_app: Flask, browser: Any) -> None:
    OUTPUT.mkdir(parents=True, exist_ok=True)
    machine_id = make_machine(cloud_app, "scientist", environment="base-desktop")
    with served(cloud_app) as url:
        page = signed_in_page(browser, url)
        page.set_viewport_size({"width": 1100, "height": 820})
        page.goto(url + "/account/ssh-keys")
        page.fill("#public-key", public_line(rsa.generate_private_key(65537, 1024), "old@box"))
        page.click("form.key-form button[type=submit]")
        error = page.locator("#key-error")
        assert "RSA key of 1024 bits, too weak" in error.inner_text()
        page.screenshot(path=str(OUTPUT / "ssh-keys-refused.png"), full_page=True)
        page.fill("#public-key", public_line(ed25519.Ed25519PrivateKey.generate(),
                                             "ada@laptop"))
        page.click("form.key-form button[type=submit]")
        row = page.locator("#key-list tbody tr")
        assert row.count() == 1 and "ada@laptop" in row.inner_text()
        assert "SHA256:" in row.inner_text()
        page.screenshot(path=str(OUTPUT / "ssh-keys.png"), full_page=True)

        page.goto(f"{url}/machines/{machine_id}")
        command = page.locator("#ssh-command-text").inner_text()
        assert command == "ssh -J jump.facility.example scientist@10.0.0.5"
        assert page.locator("#open-desktop").is_visible()
        page.screenshot(path=str(OUTPUT / "machine-access.png"), full_page=True)
        page.click("#rdp-sign-in-button")
        secret = page.locator("#rdp-secret").inner_text()
        assert secret.count(".") == 2 and len(secret) < 512
        assert page.locator("#rdp-user").inner_text() == "scientist"
        assert secret not in page.url
        page.screenshot(path=str(OUTPUT / "rdp-sign-in.png"), full_page=True)
        page.goto(f"{url}/machines/{machine_id}")
        assert secret not in page.content()
        page.close()


def test_a_browser_only_environment_gets_no_rdp_or_ssh(cloud_app: Flask, browser: Any) -> None:
    machine_id = make_machine(cloud_app, "scientist", protocols=["novnc"])
    with served(cloud_app) as url:
        page = signed_in_page(browser, url)
        page.goto(f"{url}/machines/{machine_id}")
        assert page.locator("#open-desktop").is_visible()
        assert page.locator("#rdp-sign-in-button").count() == 0
        assert page.locator("#ssh-command").count() == 0
        assert "offers only the browser desktop" in page.locator("#rdp-reason").inner_text()
        page.close()
