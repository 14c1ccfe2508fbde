"""The desktop page's service side: an administrator opening someone's desktop is recorded on
the machine and shown to its owner, the page learns from the desktop status whether to connect,
offer Start or end, the access API still hands out no password, and the page's Send file zone
uploads into the owner's storage."""

from __future__ import annotations

import html
import os
import re
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from daaas.portal.auth.service import get_user
from daaas.portal.db import unit_of_work
from daaas.portal.machines.models import MachineEvent
from daaas.portal.machines.secrets import vnc_password
from tests.support.access import make_machine, set_state
from tests.support.web import assert_matches, csrf_from, sign_in


@pytest.fixture
def settings_override(settings_override: dict[str, Any]) -> dict[str, Any]:
    """The conftest portal, with machines held by the in-memory provider."""
    return {**settings_override, "provider": "memory"}


def open_desktop(client: FlaskClient, machine_id: str) -> Any:
    token = csrf_from(client, "/my-data/")
    return client.post(f"/api/v1/machines/{machine_id}/access",
                       headers={"X-CSRF-Token": token, "Accept": "application/json"})


def events(app: Flask, machine_id: str) -> list[tuple[str | None, str, str]]:
    with unit_of_work(app.extensions["daaas"].session_factory) as db:
        rows = db.scalars(select(MachineEvent).where(MachineEvent.machine_id == machine_id)
                          .order_by(MachineEvent.id))
        return [(e.from_state, e.to_state, e.message) for e in rows]


def status(client: FlaskClient, machine_id: str) -> Any:
    response = client.get(f"/api/v1/machines/{machine_id}/desktop-status")
    assert response.status_code == 200, response.get_data(as_text=True)
    assert response.headers["Cache-Control"] == "no-store"
    body = response.get_json()
    assert_matches(body, "DesktopStatus")
    return body


def test_the_owner_opening_records_nothing_and_gets_no_password(app: Flask,
                                                                client: FlaskClient) -> None:
    machine_id = make_machine(app, "scientist")
    sign_in(client, "scientist", "scientist-demo")
    answer = open_desktop(client, machine_id)
    assert answer.status_code == 201
    body = answer.get_json()
    assert sorted(body) == ["expires_at", "token", "websocket_url"]
    assert "password" not in answer.get_data(as_text=True).lower()
    assert vnc_password("test-secret-key", machine_id) not in answer.get_data(as_text=True)
    assert events(app, machine_id) == []
    assert status(client, machine_id)["openings"] == []


def test_an_administrator_opening_is_an_event_naming_them_and_a_notice_to_the_owner(
        app: Flask, client: FlaskClient) -> None:
    machine_id = make_machine(app, "scientist")
    sign_in(client, "admin", "admin-demo-pass")
    page = client.get(f"/machines/{machine_id}/desktop").get_data(as_text=True)
    assert "as an administrator" in page and "scientist" in page
    assert 'id="send-panel"' not in page  # an admin's file would land in their own storage
    answer = open_desktop(client, machine_id)
    assert answer.status_code == 201
    assert "password" not in answer.get_data(as_text=True).lower()
    assert events(app, machine_id) == [
        ("ready", "ready", "desktop opened by administrator Facility Admin (admin)")]
    assert open_desktop(client, machine_id).status_code == 201  # a reconnect: no second event
    assert len(events(app, machine_id)) == 1
    assert status(client, machine_id)["openings"] == []  # the admin is not told about themselves
    # the event is on the machine for everyone who reads it (API and page)
    api = client.get(f"/api/v1/machines/{machine_id}").get_json()
    assert any("administrator Facility Admin (admin)" in e["message"] for e in api["events"])

    client.post("/sign-out", data={"csrf_token": csrf_from(client, "/analysis")})
    sign_in(client, "scientist", "scientist-demo")
    openings = status(client, machine_id)["openings"]
    assert [o["who"] for o in openings] == ["Facility Admin (admin)"]
    assert re.match(r"\d{4}-\d\d-\d\dT", openings[0]["at"])
    owner_page = client.get(f"/machines/{machine_id}").get_data(as_text=True)
    assert "desktop opened by administrator Facility Admin (admin)" in html.unescape(owner_page)


def test_the_status_tells_the_page_to_start_wait_or_end(app: Flask,
                                                       client: FlaskClient) -> None:
    machine_id = make_machine(app, "scientist")
    sign_in(client, "scientist", "scientist-demo")
    ready = status(client, machine_id)
    assert (ready["state"], ready["message"], ready["can_start"], ready["ended"]) == \
        ("ready", None, False, False)
    set_state(app, machine_id, "stopped")
    stopped = status(client, machine_id)
    assert stopped["can_start"] and not stopped["ended"] and "Start it" in stopped["message"]
    refused = open_desktop(client, machine_id)
    assert refused.status_code == 409 and "stopped" in refused.get_json()["error"]["message"]
    set_state(app, machine_id, "provisioning")
    starting = status(client, machine_id)
    assert not starting["can_start"] and not starting["ended"]
    for final in ("deleted", "error"):
        set_state(app, machine_id, final)
        gone = status(client, machine_id)
        assert gone["ended"] and not gone["can_start"] and gone["message"]
    theirs = make_machine(app, "neutron")
    assert client.get(f"/api/v1/machines/{theirs}/desktop-status").status_code == 404


def test_the_page_starts_with_its_panels_hidden_and_a_full_screen_button(
        app: Flask, client: FlaskClient) -> None:
    machine_id = make_machine(app, "scientist")
    sign_in(client, "scientist", "scientist-demo")
    page = client.get(f"/machines/{machine_id}/desktop").get_data(as_text=True)
    for panel in ("clipboard-panel", "send-panel", "keys-panel", "end-card"):
        assert re.search(rf'id="{panel}"[^>]*\shidden[\s>]', page, re.S), panel
    assert 'id="fullscreen"' in page and "Ctrl</kbd>+<kbd>Alt</kbd>+<kbd>Shift</kbd>" in page
    assert f'data-status-url="/api/v1/machines/{machine_id}/desktop-status"' in page
    assert f'data-start-url="/api/v1/machines/{machine_id}/start"' in page
    assert "as an administrator" not in page
    css = client.get("/static/access/desktop.css").get_data(as_text=True)
    assert "[hidden] { display:none !important; }" in css


def test_send_file_lands_in_the_owners_storage(app: Flask, client: FlaskClient) -> None:
    machine_id = make_machine(app, "scientist")
    sign_in(client, "scientist", "scientist-demo")
    page = client.get(f"/machines/{machine_id}/desktop").get_data(as_text=True)
    found = re.search(r'data-upload-url="([^"]+)"', page)
    assert found
    url = html.unescape(found.group(1)) + "&name=" + "sample%201.h5"
    token = csrf_from(client, "/my-data/")
    answer = client.post(url, data=b"\x89HDF\r\n\x1a\n payload",
                         headers={"X-CSRF-Token": token, "Accept": "application/json",
                                  "Content-Type": "application/octet-stream"})
    assert answer.status_code == 201, answer.get_data(as_text=True)
    assert answer.get_json() == {"name": "sample 1.h5", "size": 16}
    home = Path(app.extensions["daaas"].settings.var_path) / "storage" / "scientist"
    saved = home / "sample 1.h5"
    assert saved.read_bytes() == b"\x89HDF\r\n\x1a\n payload"
    assert (saved.stat().st_uid, saved.stat().st_gid) == (home.stat().st_uid,
                                                          home.stat().st_gid)
    if os.geteuid() == 0:
        with unit_of_work(app.extensions["daaas"].session_factory) as db:
            assert saved.stat().st_uid == get_user(db, "scientist").uid
    # names and quota are checked as in My Data
    bad = client.post(html.unescape(found.group(1)) + "&name=..", data=b"x",
                      headers={"X-CSRF-Token": token, "Accept": "application/json",
                               "Content-Type": "application/octet-stream"})
    assert bad.status_code == 400
    assert not (home.parent / "x").exists()
