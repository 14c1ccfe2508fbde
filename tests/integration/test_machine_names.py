"""Machines you can tell apart, and pages without host details (issue 14, points 4 and 7).

Names: a default from the environment, experiment and launch day, unique among the owner's
machines; renamed by the owner through the API and the machine page, with the reason next to
the field when a name is refused; existing machines named by the migration. Paths: the pages
show folders as the desktop shows them (``~/storage``, ``~/experiment-MX31850-12``), never the
portal host's ``var_dir``.
"""

from __future__ import annotations

import json
import re
from datetime import datetime
from typing import Any

import pytest
import sqlalchemy as sa
from flask import Flask
from flask.testing import FlaskClient

from daaas.portal.auth.service import get_user
from daaas.portal.db import make_engine, unit_of_work, utcnow
from daaas.portal.experiments.binding import experiment_for_launch
from daaas.portal.machines import service
from daaas.portal.machines.naming import short_date
from daaas.portal.migrate import upgrade
from tests.support.web import assert_matches, bearer, csrf_from, sign_in


def experiment_id(client: FlaskClient, headers: dict[str, str], visit: str) -> int:
    listed = client.get("/api/v1/experiments", headers=headers).get_json()["experiments"]
    return next(int(e["id"]) for e in listed if e["visit_id"] == visit)


def launch(client: FlaskClient, headers: dict[str, str], **body: Any) -> dict[str, Any]:
    response = client.post("/api/v1/machines", json=body, headers=headers)
    assert response.status_code == 202, response.get_json()
    machine: dict[str, Any] = response.get_json()
    return machine


class TestOnTheMemoryProvider:
    """The API on the in-memory provider (no desktop is started)."""

    @pytest.fixture
    def settings_override(self, settings_override: dict[str, Any]) -> dict[str, Any]:
        return {**settings_override, "provider": "memory"}

    def test_default_names_tell_machines_of_one_environment_apart(
            self, app: Flask, client: FlaskClient) -> None:
        headers = bearer(app, "scientist")
        mx = experiment_id(client, headers, "MX31850-12")
        day = short_date(utcnow())
        first = launch(client, headers, environment="base-desktop", experiment=mx)
        second = launch(client, headers, environment="base-desktop", experiment=mx)
        plain = launch(client, headers, environment="base-desktop")
        assert first["name"] == f"Analysis desktop · MX31850-12 · {day}"
        assert second["name"] == f"Analysis desktop · MX31850-12 · {day} (2)"
        assert plain["name"] == f"Analysis desktop · {day}"
        assert first["size"] == "4 cores · 16 GiB" and first["flavor"] == "m1.large"
        assert first["folders"] == {"storage": None, "experiment": None}  # not a local desktop
        listing = client.get("/api/v1/machines", headers=headers).get_json()
        assert_matches(listing, "MachineList")
        assert {m["name"] for m in listing["machines"]} == {
            first["name"], second["name"], plain["name"]}

    def test_owner_renames_through_the_api(self, app: Flask, client: FlaskClient) -> None:
        headers = bearer(app, "scientist")
        machine = launch(client, headers, environment="base-desktop")
        other = launch(client, headers, environment="base-desktop")
        url = f"/api/v1/machines/{machine['id']}"
        renamed = client.patch(url, json={"name": "  Refinement of crystal 1 "}, headers=headers)
        assert renamed.status_code == 200
        assert_matches(renamed.get_json(), "Machine")
        assert renamed.get_json()["name"] == "Refinement of crystal 1"
        assert client.get(url, headers=headers).get_json()["name"] == "Refinement of crystal 1"
        assert client.patch(url, json={"name": "Refinement of crystal 1"},
                            headers=headers).status_code == 200  # its own name again: fine
        assert client.patch(url, json={"name": "Ünïcode · 結晶 ✓"},
                            headers=headers).get_json()["name"] == "Ünïcode · 結晶 ✓"
        cases: list[tuple[Any, int, str]] = [
            ({}, 400, "name"),
            ({"name": 3}, 400, "name"),
            ({"name": ""}, 400, "1 to 80 characters"),
            ({"name": "   "}, 400, "1 to 80 characters"),
            ({"name": "x" * 81}, 400, "at most 80 characters; this one has 81"),
            ({"name": "two\nlines"}, 400, "line breaks"),
            ({"name": "tab\there"}, 400, "control characters"),
            ({"name": "bell\x07"}, 400, "control characters"),
            ({"name": other["name"]}, 409, "already have a machine called"),
        ]
        for payload, status, text in cases:
            response = client.patch(url, json=payload, headers=headers)
            assert response.status_code == status, payload
            assert_matches(response.get_json(), "Error")
            assert text in response.get_json()["error"]["message"], (payload, response.json)
        assert client.get(url, headers=headers).get_json()["name"] == "Ünïcode · 結晶 ✓"
        assert client.patch(url, json={"name": "x" * 80}, headers=headers).status_code == 200

    def test_only_the_owner_renames(self, app: Flask, client: FlaskClient) -> None:
        machine = launch(client, bearer(app, "scientist"), environment="base-desktop")
        url = f"/api/v1/machines/{machine['id']}"
        assert client.patch(url, json={"name": "mine now"},
                            headers=bearer(app, "neutron")).status_code == 404
        refused = client.patch(url, json={"name": "mine now"}, headers=bearer(app, "admin"))
        assert refused.status_code == 403 and "owner" in refused.get_json()["error"]["message"]
        client.delete(url, headers=bearer(app, "scientist"))
        assert client.patch(url, json={"name": "gone"},
                            headers=bearer(app, "scientist")).status_code == 200  # deleting

    def test_administrators_see_names_in_the_list_of_all_machines(
            self, app: Flask, client: FlaskClient) -> None:
        headers = bearer(app, "scientist")
        machine = launch(client, headers, environment="base-desktop")
        client.patch(f"/api/v1/machines/{machine['id']}", json={"name": "Tomo <b>run</b>"},
                     headers=headers)
        sign_in(client, "admin", "admin-demo-pass")
        page = client.get("/admin/machines").get_data(as_text=True)
        row = re.search(rf'<tr data-machine="{machine["id"]}">.*?</tr>', page, re.S)
        assert row and "Tomo &lt;b&gt;run&lt;/b&gt;</a>" in row.group(0)
        assert '<span class="muted">Analysis desktop</span>' in row.group(0)

    def test_rename_on_the_machine_page_shows_the_error_next_to_the_field(
            self, app: Flask, client: FlaskClient) -> None:
        machine = launch(client, bearer(app, "scientist"), environment="base-desktop")
        sign_in(client, "scientist", "scientist-demo")
        page = f"/machines/{machine['id']}"
        token = csrf_from(client, page)
        refused = client.post(f"{page}/rename", data={"name": "a\tb" + "y" * 90,
                                                      "csrf_token": token})
        assert refused.status_code == 400
        html = refused.get_data(as_text=True)
        field = re.search(r'<input id="machine-name-input"[^>]*>\s*<button[^>]*>Save</button>'
                          r'\s*<p id="rename-note" class="field-note error" role="alert">'
                          r'([^<]*)</p>', html)
        assert field, "the reason is not next to the name field"
        assert "at most 80 characters" in field.group(1)
        assert 'aria-invalid="true"' in field.group(0) and "yyyy" in field.group(0)
        assert '<details class="rename" id="rename" open>' in html
        done = client.post(f"{page}/rename", data={"name": "Beamtime follow-up",
                                                   "csrf_token": token})
        assert done.status_code == 303
        html = client.get(page).get_data(as_text=True)
        assert '<h1 id="machine-name" title="Beamtime follow-up">Beamtime follow-up</h1>' in html
        assert 'data-fact="environment">Analysis desktop<' in html


def test_pages_show_desktop_paths_never_the_hosts(app: Flask, client: FlaskClient) -> None:
    """On the embedded default (the local provider), the machine page, the experiment pages,
    My Data and the Analysis page name folders as the desktop has them, and no page has the
    host's var_dir or the experiment's folder on the host in it. The machine is recorded, not
    started."""
    rt = app.extensions["daaas"]
    var_dir = str(rt.settings.var_path)
    headers = bearer(app, "scientist")
    mx = experiment_id(client, headers, "MX31850-12")
    with app.test_request_context(), unit_of_work(rt.session_factory) as db:
        user = get_user(db, "scientist")
        record = experiment_for_launch(db, rt, user, "base-desktop", mx)
        assert record is not None
        machine_id = service.request_launch(db, rt.settings, rt.catalogue, user,
                                            "base-desktop", experiment=record).id
    host_paths = {var_dir, str(record["data_path"]), "/var/experiments/"}  # where it all is
    sign_in(client, "scientist", "scientist-demo")
    pages = {path: client.get(path) for path in (
        f"/machines/{machine_id}", f"/experiments/{mx}", "/experiments", "/my-data/",
        f"/my-data/experiment-{mx}/", "/analysis")}
    for path, response in pages.items():
        assert response.status_code == 200, path
        html = response.get_data(as_text=True)
        assert not [host for host in host_paths if host in html], path
    machine = pages[f"/machines/{machine_id}"].get_data(as_text=True)
    assert "<code>~/experiment-MX31850-12</code>: the data of experiment" in machine
    assert re.search(r"<code>~/storage</code>: your storage.*?<span id=\"storage-quota\">"
                     r"0 bytes of your 100.0 GiB quota used, 100.0 GiB left</span>", machine)
    experiment_page = pages[f"/experiments/{mx}"].get_data(as_text=True)
    assert "<code>~/experiment-MX31850-12</code> in desktops launched" in experiment_page
    name = f"Analysis desktop · MX31850-12 · {short_date(utcnow())}"
    assert f'{machine_id}">{name}</a><br><span class="muted">Analysis desktop</span>' in \
        experiment_page  # the sessions that used it, by name
    my_data = pages["/my-data/"].get_data(as_text=True)
    assert 'On your desktops: <code>~/storage</code>' in my_data
    assert "0 bytes of 100.0 GiB · 100.0 GiB left" in my_data
    assert 'On your desktops: <code>~/experiment-MX31850-12/xtal1</code>' in client.get(
        f"/my-data/experiment-{mx}/xtal1/").get_data(as_text=True)
    api = client.get(f"/api/v1/machines/{machine_id}", headers=headers).get_json()
    assert api["folders"] == {"storage": "~/storage", "experiment": "~/experiment-MX31850-12"}


def test_migration_names_existing_machines(database_url: str) -> None:
    """A database at 0007 with machines gets names from their environment, experiment and
    launch day; two alike of one owner are told apart."""
    engine = make_engine(database_url)
    upgrade(engine, "0007")
    launched = datetime(2026, 12, 3, 8, 21)
    environment = json.dumps({"name": "base-desktop", "title": "Analysis desktop"})
    with engine.begin() as connection:
        connection.execute(sa.text(
            "INSERT INTO users (id, username, display_name, email, identity_source, uid, gid, "
            "is_admin, is_active, groups, instruments, created_at) VALUES (1, 'ann', 'Ann', "
            "'', 'local', 5001, 5001, false, true, '[]', '[]', :at)"), {"at": launched})
        for machine_id, experiment, state in (
                ("a1", {"id": 4, "visit_id": "MX31850-12"}, "ready"),
                ("a2", {"id": 4, "visit_id": "MX31850-12"}, "stopped"),
                ("a3", None, "error")):
            connection.execute(sa.text(
                "INSERT INTO machines (id, user_id, environment_name, environment, flavor, "
                "provider, state, error_reason, cleanup_pending, experiment_id, experiment, "
                "created_at, state_changed_at, expires_at) VALUES (:id, 1, 'base-desktop', "
                ":env, 'm1.small', 'local', :state, '', false, NULL, :exp, :at, :at, :at)"),
                {"id": machine_id, "env": environment, "state": state, "at": launched,
                 "exp": json.dumps(experiment) if experiment else None})
    upgrade(engine)
    with engine.connect() as connection:
        rows = connection.execute(sa.text("SELECT id, name FROM machines")).all()
    names: dict[str, str] = {row[0]: row[1] for row in rows}
    engine.dispose()
    assert names == {"a1": "Analysis desktop · MX31850-12 · 3 Dec",
                     "a2": "Analysis desktop · MX31850-12 · 3 Dec (2)",
                     "a3": "Analysis desktop · 3 Dec"}
