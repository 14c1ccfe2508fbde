"""The browser desktop page and the installed noVNC served by the portal."""

from __future__ import annotations

import re
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from daaas.portal import create_app
from daaas.portal.machines.secrets import vnc_password
from tests.support.access import make_machine
from tests.support.web import sign_in


@pytest.fixture
def settings_override(settings_override: dict[str, Any]) -> dict[str, Any]:
    """The conftest portal, with machines held by the in-memory provider."""
    return {**settings_override, "provider": "memory"}


def test_desktop_page_for_the_owner(app: Flask, client: FlaskClient) -> None:
    machine_id = make_machine(app, "scientist")
    sign_in(client, "scientist", "scientist-demo")
    response = client.get(f"/machines/{machine_id}/desktop")
    assert response.status_code == 200
    page = response.get_data(as_text=True)
    assert re.search(r'<script [^>]*type="module" src="/static/access/desktop\.js"', page)
    assert re.search(r'<meta name="csrf-token" content="[^"]+">', page)
    assert 'id="screen"' in page
    assert f'data-access-url="/api/v1/machines/{machine_id}/access"' in page
    assert 'data-rfb-module="/novnc/core/rfb.js"' in page
    assert f'href="/machines/{machine_id}"' in page
    assert vnc_password("test-secret-key", machine_id) not in page


def test_desktop_script_fetches_a_token_and_drives_rfb(client: FlaskClient) -> None:
    script = client.get("/static/access/desktop.js").get_data(as_text=True)
    for needed in ('"X-CSRF-Token"', 'method: "POST"', "rfb.resizeSession = true",
                   "rfb.scaleViewport = false", "clipboardPasteFrom", '"clipboard"',
                   '"disconnect"', "access.websocket_url"):
        assert needed in script, needed
    assert "?password" not in script and "console.log" not in script
    # the page never has a VNC password: the proxy signs in to the desktop itself
    assert "access.password" not in script and "sendCredentials" not in script


def test_desktop_page_of_another_users_machine_is_not_found(app: Flask,
                                                            client: FlaskClient) -> None:
    theirs = make_machine(app, "neutron")
    sign_in(client, "scientist", "scientist-demo")
    assert client.get(f"/machines/{theirs}/desktop").status_code == 404


def test_desktop_page_needs_sign_in(app: Flask, client: FlaskClient) -> None:
    machine_id = make_machine(app, "scientist")
    response = client.get(f"/machines/{machine_id}/desktop")
    assert response.status_code == 302 and "/sign-in" in response.headers["Location"]


def test_novnc_is_served_from_the_installed_package(client: FlaskClient) -> None:
    response = client.get("/novnc/core/rfb.js")
    assert response.status_code == 200
    assert "javascript" in (response.mimetype or "")
    assert "export default class RFB" in response.get_data(as_text=True)
    assert client.get("/novnc/../../../etc/passwd").status_code == 404
    assert client.get("/novnc/core/no-such-file.js").status_code == 404


def test_missing_novnc_names_the_debian_package(settings_override: dict[str, Any],
                                                tmp_path: Any) -> None:
    app = create_app({**settings_override, "novnc_dir": str(tmp_path / "nowhere")})
    response = app.test_client().get("/novnc/core/rfb.js")
    assert response.status_code == 503
    assert "novnc" in response.get_data(as_text=True)
    assert "apt-get install novnc" in response.get_data(as_text=True)
    app.extensions["daaas"].engine.dispose()
