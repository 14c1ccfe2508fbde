"""The audit trail on SQLite and PostgreSQL: every audited action, driven through the API, the
pages and the command line, leaves exactly one row; a refused action leaves none; only
administrators read the trail (page, CSV, API); the table is append-only but for the prune."""

from __future__ import annotations

import csv
import io
import os
import subprocess
import sys
from collections import Counter
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from daaas.portal.audit.models import AppendOnly, AuditEvent
from daaas.portal.audit.service import origin, record
from daaas.portal.db import unit_of_work, utcnow
from tests.support.machines import ManualClock, launch, machine, policy_reconciler, reconciler
from tests.support.web import assert_matches, bearer, csrf_from, sign_in

DAAAS = Path(sys.executable).with_name("daaas")


@pytest.fixture
def settings_override(settings_override: dict[str, Any]) -> dict[str, Any]:
    """The conftest portal on the in-memory provider (machines can stop and start)."""
    return {**settings_override, "provider": "memory"}


def events(app: Flask) -> list[AuditEvent]:
    """Every audit row, oldest first."""
    with app.extensions["daaas"].session_factory() as db:
        return list(db.scalars(select(AuditEvent).order_by(AuditEvent.id)))


def actions(app: Flask) -> Counter[str]:
    return Counter(event.action for event in events(app))


def browser(app: Flask, username: str, password: str) -> tuple[FlaskClient, dict[str, str]]:
    """A signed-in browser and its CSRF header for the API."""
    client = app.test_client()
    assert sign_in(client, username, password).status_code == 302
    return client, {"X-CSRF-Token": csrf_from(client, "/account")}


def test_every_audited_action_leaves_exactly_one_row(app: Flask) -> None:
    worker = reconciler(app, app.extensions["daaas"].provider)
    outsider = app.test_client()
    wrong = outsider.post("/sign-in", data={"username": "scientist", "password": "nope-nope",
                                            "csrf_token": csrf_from(outsider)})
    assert wrong.status_code == 401
    scientist, csrf = browser(app, "scientist", "scientist-demo")

    made = scientist.post("/api/v1/tokens", json={"name": "laptop"}, headers=csrf)
    assert made.status_code == 201
    assert scientist.delete(f"/api/v1/tokens/{made.get_json()['id']}",
                            headers=csrf).status_code == 204

    launched = scientist.post("/api/v1/machines", json={"environment": "ccp4"}, headers=csrf)
    assert launched.status_code == 202, launched.get_json()
    machine_id = launched.get_json()["id"]
    worker.run_once()
    worker.run_once()
    assert machine(app, machine_id).state == "ready"
    assert scientist.post(f"/api/v1/machines/{machine_id}/access",
                          headers=csrf).status_code == 201
    assert scientist.post(f"/api/v1/machines/{machine_id}/extend",
                          headers=csrf).status_code == 200
    assert scientist.post(f"/api/v1/machines/{machine_id}/stop",
                          headers=csrf).status_code == 202
    worker.run_once()
    worker.run_once()
    assert machine(app, machine_id).state == "stopped"
    assert scientist.post(f"/api/v1/machines/{machine_id}/start",
                          headers=csrf).status_code == 202
    worker.run_once()
    worker.run_once()
    assert machine(app, machine_id).state == "ready"

    gpu = scientist.post("/api/v1/machines", json={"environment": "tomography-gpu"},
                         headers=csrf)
    assert gpu.status_code == 202, gpu.get_json()
    gpu_id = gpu.get_json()["id"]
    worker.run_once()
    assert scientist.post(f"/api/v1/machines/{gpu_id}/extend", headers=csrf).status_code == 202

    form = {"csrf_token": csrf_from(scientist, "/my-data/")}
    assert scientist.post("/my-data/-/app-passwords",
                          data={**form, "name": "=cmd|' /C calc'!A0"}).status_code == 201
    password_id = events(app)[-1].target.split()[-1]
    assert scientist.post(f"/my-data/-/app-passwords/{password_id}/revoke",
                          data=form).status_code == 302

    admin, admin_csrf = browser(app, "admin", "admin-demo-pass")
    assert admin.post(f"/api/v1/machines/{machine_id}/access",
                      headers=admin_csrf).status_code == 201
    page = admin.get("/admin/extensions").get_data(as_text=True)
    request_id = page.split('data-request="')[1].split('"')[0]
    assert admin.post(f"/admin/extensions/{request_id}", data={
        "csrf_token": csrf_from(admin, "/admin/extensions"), "decision": "approve"},
    ).status_code == 303
    assert admin.post("/admin/machines/bulk", data={
        "csrf_token": csrf_from(admin, "/admin/machines"), "action": "stop",
        "machine": [machine_id], "reason": "Maintenance tonight"}).status_code == 200
    assert scientist.delete(f"/api/v1/machines/{machine_id}", headers=csrf).status_code == 202
    assert scientist.post("/sign-out", data={"csrf_token": csrf["X-CSRF-Token"]}
                          ).status_code == 302

    assert actions(app) == Counter({
        "sign_in.failed": 1, "sign_in": 2, "sign_out": 1,
        "api_token.create": 1, "api_token.revoke": 1,
        "machine.launch": 2, "machine.stop": 2, "machine.start": 1, "machine.delete": 1,
        "machine.extend": 1, "machine.extension_request": 1,
        "machine.extension_approved": 1, "desktop.open": 2,
        "app_password.create": 1, "app_password.revoke": 1})
    rows = events(app)
    assert {e.source for e in rows} == {"127.0.0.1"}
    flagged = {(e.action, e.actor) for e in rows if e.admin}
    assert flagged == {("desktop.open", "admin"), ("machine.extension_approved", "admin"),
                       ("machine.stop", "admin")}
    bulk = next(e for e in rows if e.action == "machine.stop" and e.admin)
    assert bulk.detail.endswith("; admin bulk stop: Maintenance tonight")
    own_open = next(e for e in rows if e.action == "desktop.open" and not e.admin)
    assert own_open.actor == "scientist" and own_open.target == f"machine {machine_id}"
    assert (rows[0].action, rows[0].actor) == ("sign_in.failed", "scientist")

    api = admin.get("/api/v1/admin/audit?actor=scientist&action=machine.launch")
    assert api.status_code == 200
    body = api.get_json()
    assert_matches(body, "AuditList")
    assert [e["detail"].split("; ")[-1].split()[0] for e in body["events"]] == [
        "tomography-gpu", "ccp4"]  # newest first
    assert {e["action"] for e in body["events"]} == {"machine.launch"}
    by_target = admin.get(f"/api/v1/admin/audit?target={machine_id}").get_json()["events"]
    assert len(by_target) == 8 and all(machine_id in e["target"] for e in by_target)
    tomorrow = (utcnow() + timedelta(days=1)).date().isoformat()
    today = utcnow().date().isoformat()
    assert admin.get(f"/api/v1/admin/audit?since={tomorrow}").get_json()["events"] == []
    assert len(admin.get(f"/api/v1/admin/audit?since={today}&until={today}")
               .get_json()["events"]) == len(rows)
    assert admin.get("/api/v1/admin/audit?since=yesterday").status_code == 400

    html = admin.get("/admin/audit?action=desktop.open").get_data(as_text=True)
    assert html.count('data-action="desktop.open"') == 2 and 'data-action="sign_in"' not in html
    assert '<span class="badge bad"' in html
    exported = admin.get("/admin/audit.csv?action=app_password.create")
    assert exported.mimetype == "text/csv"
    table = list(csv.reader(io.StringIO(exported.get_data(as_text=True))))
    assert table[0] == ["id", "at", "actor", "action", "target", "detail", "source", "admin"]
    assert len(table) == 2 and table[1][5] == "'=cmd|' /C calc'!A0"  # no formula


def test_refused_actions_leave_no_row(app: Flask) -> None:
    scientist, csrf = browser(app, "scientist", "scientist-demo")
    mine = scientist.post("/api/v1/machines", json={"environment": "ccp4"}, headers=csrf)
    machine_id = mine.get_json()["id"]
    before = actions(app)
    neutron = bearer(app, "neutron")
    client = app.test_client()
    assert client.delete(f"/api/v1/machines/{machine_id}", headers=neutron).status_code == 404
    assert client.post(f"/api/v1/machines/{machine_id}/stop",
                       headers=neutron).status_code == 404
    assert client.post(f"/api/v1/machines/{machine_id}/stop",
                       headers=bearer(app, "scientist")).status_code == 409  # not ready
    assert client.post(f"/api/v1/machines/{machine_id}/access",
                       headers=bearer(app, "scientist")).status_code == 409
    assert client.post("/api/v1/machines", json={"environment": "no-such-thing"},
                       headers=neutron).status_code == 404
    assert client.post("/api/v1/machines", json={"environment": "ccp4"},
                       headers=neutron).status_code == 404  # not an ISIS user's environment
    own = bearer(app, "scientist")
    for _ in range(2):
        assert client.post("/api/v1/machines", json={"environment": "ccp4"},
                           headers=own).status_code == 202
    refused = client.post("/api/v1/machines", json={"environment": "ccp4"}, headers=own)
    assert refused.status_code == 409, refused.get_json()  # over max_machines_per_user (3)
    assert scientist.delete("/api/v1/tokens/999", headers=csrf).status_code == 404
    assert scientist.post("/my-data/-/app-passwords/999/revoke", data={
        "csrf_token": csrf_from(scientist, "/my-data/")}).status_code == 404
    after = actions(app)
    after.subtract(before)
    assert +after == Counter({"machine.launch": 2})


def test_a_record_rolls_back_with_its_action(app: Flask) -> None:
    """A failure after the record in the same transaction leaves neither (the caller's
    transaction writes the row); a committed one keeps both."""
    factory = app.extensions["daaas"].session_factory
    with pytest.raises(RuntimeError), unit_of_work(factory) as db:
        record(db, "machine.delete", actor="scientist", target="machine x")
        raise RuntimeError("the action failed after its record")
    assert events(app) == []
    with unit_of_work(factory) as db:
        record(db, "policy.change", actor="admin", target="x" * 500, detail="d" * 5000)
    (row,) = events(app)
    assert row.source == "cli" and len(row.target) == 200 and len(row.detail) == 2000


def test_only_administrators_read_the_trail(app: Flask) -> None:
    anonymous = app.test_client()
    assert anonymous.get("/api/v1/admin/audit").status_code == 401
    page = anonymous.get("/admin/audit")
    assert page.status_code == 302 and "/sign-in" in page.headers["Location"]
    assert anonymous.get("/admin/audit.csv").status_code == 302
    user = bearer(app, "scientist")
    assert anonymous.get("/api/v1/admin/audit", headers=user).status_code == 403
    scientist, _ = browser(app, "scientist", "scientist-demo")
    assert scientist.get("/admin/audit").status_code == 403
    assert scientist.get("/admin/audit.csv").status_code == 403
    assert 'href="/admin/audit"' not in scientist.get("/analysis").get_data(as_text=True)
    admin, _ = browser(app, "admin", "admin-demo-pass")
    assert 'href="/admin/audit"' in admin.get("/analysis").get_data(as_text=True)
    assert admin.get("/api/v1/admin/audit", headers=bearer(app, "admin")).status_code == 200


def test_rows_cannot_be_changed_or_deleted_through_the_orm(app: Flask) -> None:
    factory = app.extensions["daaas"].session_factory
    with unit_of_work(factory) as db:
        record(db, "sign_in", actor="scientist")
    for change in ("update", "delete"):
        with pytest.raises(AppendOnly), unit_of_work(factory) as db:
            row = db.scalars(select(AuditEvent)).one()
            if change == "update":
                row.actor = "someone else"
            else:
                db.delete(row)
            db.flush()
    assert [e.actor for e in events(app)] == ["scientist"]


def daaas(app: Flask, *args: str, **settings: str) -> subprocess.CompletedProcess[str]:
    """Run the installed ``daaas`` on the test's database, as an operator does."""
    rt = app.extensions["daaas"].settings
    env = {k: v for k, v in os.environ.items() if not k.startswith("DAAAS_")}
    env.update(DAAAS_DATABASE_URL=rt.effective_database_url, DAAAS_VAR_DIR=rt.var_dir,
               DAAAS_SECRET_KEY="test-secret-key", **settings)
    done = subprocess.run([str(DAAAS), *args], env=env, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    return done


def test_the_command_line_is_audited_and_prunes_by_retention(app: Flask) -> None:
    daaas(app, "users", "disable", "neutron")
    daaas(app, "users", "enable", "neutron")
    secret = daaas(app, "tokens", "create", "neutron", "--name", "robot").stdout.strip()
    assert secret.startswith("daaas_")
    token_id = events(app)[-1].target.split()[-1]
    daaas(app, "tokens", "revoke", token_id)
    rows = events(app)
    assert [(e.action, e.target, e.source, e.admin) for e in rows] == [
        ("user.disable", "user neutron", "cli", True),
        ("user.enable", "user neutron", "cli", True),
        ("api_token.create", f"api token {token_id}", "cli", True),
        ("api_token.revoke", f"api token {token_id}", "cli", True)]
    assert all(e.actor.startswith("cli") for e in rows)

    with unit_of_work(app.extensions["daaas"].session_factory) as db:
        db.add(AuditEvent(at=utcnow() - timedelta(days=40), actor="old", action="sign_in",
                          target="", detail="", source="cli", admin=False))
    kept = daaas(app, "audit", "prune", DAAAS_AUDIT_RETENTION_DAYS="0")
    assert "Deleted 0" in kept.stdout and len(events(app)) == 5
    pruned = daaas(app, "audit", "prune", DAAAS_AUDIT_RETENTION_DAYS="30")
    assert "Deleted 1 audit event" in pruned.stdout
    assert [e.actor for e in events(app)] == [e.actor for e in rows]


def test_the_workers_policy_stops_and_deletes_are_audited(app: Flask) -> None:
    clock = ManualClock()
    worker = policy_reconciler(app, clock, app.extensions["daaas"].provider)
    machines = [launch(app, environment="ccp4"), launch(app, environment="tomography-gpu")]
    with origin("worker"):  # as the worker's thread runs (WorkerThread.run)
        worker.run_once()
        worker.run_once()
        clock.now += timedelta(hours=2)  # no desktop for longer than their idle timeouts
        worker.run_once()
        clock.now = max(machine(app, m).expires_at for m in machines) + timedelta(minutes=1)
        worker.run_once()
    by_worker = [(e.action, e.target, e.source, e.admin) for e in events(app)
                 if e.actor == "worker"]
    assert sorted(by_worker) == sorted((action, f"machine {m}", "worker", False)
                                       for action in ("machine.stop", "machine.delete")
                                       for m in machines)
    assert [row[0] for row in by_worker] == ["machine.stop"] * 2 + ["machine.delete"] * 2
    assert {e.action for e in events(app) if e.actor == "scientist"} == {"machine.launch"}
