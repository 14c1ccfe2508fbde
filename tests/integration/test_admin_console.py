"""Admin console (issue 16): users (search, usage, disable/enable), machine filters and bulk
stop/delete with a reason the owner sees, capacity with the next-free estimate, usage hours
with CSV and the SVG plot, administrators only (real SQLite and PostgreSQL, the in-memory
provider double)."""

from __future__ import annotations

import csv
import io
import json
from datetime import datetime, timedelta
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session

from daaas.portal import create_app
from daaas.portal.admin.capacity import Running, next_free
from daaas.portal.audit.models import AuditEvent
from daaas.portal.auth.backends import IDENTITY_BACKENDS, Identity, IdentityBackend
from daaas.portal.auth.models import User
from daaas.portal.auth.service import get_user
from daaas.portal.config import Settings
from daaas.portal.db import unit_of_work, utcnow
from daaas.portal.errors import SignInFailed
from daaas.portal.machines import service
from daaas.portal.machines.models import Machine, MachineEvent
from tests.support.machines import ManualClock, machine, reconciler
from tests.support.providers import InMemoryProvider
from tests.support.web import assert_matches, bearer, csrf_from, sign_in

H = timedelta(hours=1)


@pytest.fixture
def app(settings_override: dict[str, Any]) -> Flask:
    return create_app({**settings_override, "provider": "memory", "max_machines_per_user": 5})


def launch(app: Flask, username: str, environment: str, flavor: str | None = None) -> str:
    rt = app.extensions["daaas"]
    with unit_of_work(rt.session_factory) as db:
        return service.request_launch(db, rt.settings, rt.catalogue, get_user(db, username),
                                      environment, flavor).id


def all_ready(app: Flask) -> None:
    worker = reconciler(app, InMemoryProvider(ready_after_polls=1))
    worker.run_once()
    worker.run_once()


def set_machine(app: Flask, machine_id: str, **values: Any) -> None:
    """Test set-up: write columns of a machine directly."""
    with unit_of_work(app.extensions["daaas"].session_factory) as db:
        db.execute(update(Machine).where(Machine.id == machine_id).values(**values))


def admin_client(app: Flask) -> FlaskClient:
    client = app.test_client()
    assert sign_in(client, "admin", "admin-demo-pass").status_code == 302
    return client


def ids(body: dict[str, Any]) -> set[str]:
    return {m["id"] for m in body["machines"]}


def test_only_administrators_reach_the_console(app: Flask) -> None:
    client = app.test_client()
    assert client.get("/api/v1/admin/users").status_code == 401
    assert client.get("/admin/users").status_code in (302, 303)
    sign_in(client, "scientist", "scientist-demo")
    for path in ("/admin/users", "/admin/users/neutron", "/admin/capacity", "/admin/usage",
                 "/admin/usage.csv", "/admin/machines"):
        assert client.get(path).status_code == 403, path
    headers = bearer(app, "scientist")
    for path in ("/api/v1/admin/users", "/api/v1/admin/machines", "/api/v1/admin/capacity",
                 "/api/v1/admin/usage"):
        assert app.test_client().get(path, headers=headers).status_code == 403, path
    answer = app.test_client().post("/api/v1/admin/users/neutron/disable", headers=headers,
                                    json={"reason": "no"})
    assert answer.status_code == 403
    answer = app.test_client().post("/api/v1/admin/machines/bulk", headers=headers,
                                    json={"action": "stop", "machines": ["x"], "reason": "no"})
    assert answer.status_code == 403
    with app.extensions["daaas"].session_factory() as db:
        assert db.scalar(select(User.is_active).where(User.username == "neutron"))


def test_machine_filters(app: Flask) -> None:
    ccp4 = launch(app, "scientist", "ccp4")
    gpu = launch(app, "scientist", "ccp4", "g1.l40s-1")
    other = launch(app, "neutron", "base-desktop")
    all_ready(app)
    now = utcnow()
    set_machine(app, ccp4, created_at=now - 30 * H, state_changed_at=now - 29 * H,
                desktop_seen_at=now - 5 * H)
    set_machine(app, gpu, desktop_seen_at=now)
    api = app.test_client()
    headers = bearer(app, "admin")

    def listed(query: str) -> set[str]:
        answer = api.get(f"/api/v1/admin/machines?{query}", headers=headers)
        assert answer.status_code == 200, answer.get_json()
        return ids(answer.get_json())

    assert listed("") == {ccp4, gpu, other}
    assert listed("user=scientist") == {ccp4, gpu}
    assert listed("environment=base-desktop") == {other}
    assert listed("flavor=g1.l40s-1") == {gpu}
    assert listed("state=ready") == {ccp4, gpu, other}
    assert listed("state=stopped") == set()
    assert listed("older_than_hours=24") == {ccp4}
    assert listed("idle_hours=4") == {ccp4}  # last desktop connection 5 hours ago
    assert listed("idle_hours=6") == set()
    assert listed("user=scientist&idle_hours=0.5") == {ccp4}  # gpu: a connection just now
    assert api.get("/api/v1/admin/machines?state=nonsense",
                   headers=headers).status_code == 400
    page = admin_client(app).get("/admin/machines?user=scientist&flavor=g1.l40s-1")
    text = page.get_data(as_text=True)
    assert page.status_code == 200
    assert f'data-machine="{gpu}"' in text and f'data-machine="{ccp4}"' not in text
    assert "1 machine(s) match" in text


def test_bulk_stop_with_a_reason_the_owner_sees(app: Flask) -> None:
    first = launch(app, "scientist", "ccp4")
    second = launch(app, "scientist", "base-desktop")
    all_ready(app)
    waiting = launch(app, "neutron", "base-desktop")  # still requested: cannot be stopped
    client = admin_client(app)
    confirm = client.post("/admin/machines/confirm", data={
        "csrf_token": csrf_from(client, "/admin/machines"), "action": "stop",
        "machine": [first, second, waiting]})
    assert confirm.status_code == 200
    assert 'id="bulk-reason"' in confirm.get_data(as_text=True)
    assert machine(app, first).state == "ready"  # nothing happens before the confirmation
    reason = "GPU host maintenance tonight, sorry"
    no_reason = client.post("/admin/machines/bulk", data={
        "csrf_token": csrf_from(client, "/admin/machines"), "action": "stop",
        "machine": [first], "reason": "  "})
    assert no_reason.status_code == 400
    assert machine(app, first).state == "ready"
    done = client.post("/admin/machines/bulk", data={
        "csrf_token": csrf_from(client, "/admin/machines"), "action": "stop",
        "machine": [first, second, waiting], "reason": reason})
    assert done.status_code == 200
    page = done.get_data(as_text=True)
    assert first in page and second in page and "Only a ready machine can be stopped" in page
    for machine_id in (first, second):
        row = machine(app, machine_id)
        assert row.state == "stopping"
        assert row.admin_reason == reason
        assert row.events[-1].message == f"stop requested by admin: {reason}"
    assert machine(app, waiting).state == "requested"
    owner = app.test_client()
    answer = owner.get(f"/api/v1/machines/{first}", headers=bearer(app, "scientist"))
    assert answer.get_json()["admin_reason"] == reason
    assert answer.get_json()["events"][-1]["message"].endswith(reason)
    sign_in(owner, "scientist", "scientist-demo")
    assert reason in owner.get(f"/machines/{first}").get_data(as_text=True)
    with app.extensions["daaas"].session_factory() as db:
        audited = list(db.scalars(select(AuditEvent).where(
            AuditEvent.actor == "admin", AuditEvent.target.startswith("machine "))))
    assert sorted(e.target for e in audited) == sorted(f"machine {m}" for m in (first, second))
    for event in audited:  # one row per machine, saying it was a bulk stop, with the reason
        assert (event.action, event.admin) == ("machine.stop", True)
        name = machine(app, event.target.split()[1]).name
        assert event.detail == f"{name}; admin bulk stop: {reason}"


def test_bulk_delete_through_the_api(app: Flask) -> None:
    doomed = launch(app, "neutron", "base-desktop")
    answer = app.test_client().post(
        "/api/v1/admin/machines/bulk", headers=bearer(app, "admin"),
        json={"action": "delete", "machines": [doomed, "f" * 32], "reason": "Left over"})
    assert answer.status_code == 200
    body = answer.get_json()
    assert body["done"] == [doomed]
    assert body["refused"][0]["machine"] == "f" * 32
    assert machine(app, doomed).state == "deleting"
    assert machine(app, doomed).admin_reason == "Left over"
    with app.extensions["daaas"].session_factory() as db:
        [audited] = db.scalars(select(AuditEvent).where(
            AuditEvent.actor == "admin", AuditEvent.target.startswith("machine ")))
    assert (audited.action, audited.target, audited.admin) == (
        "machine.delete", f"machine {doomed}", True)
    assert audited.detail == f"{machine(app, doomed).name}; admin bulk delete: Left over"


def test_disable_and_enable_a_user(app: Flask) -> None:
    running = launch(app, "scientist", "ccp4")
    all_ready(app)
    browser = app.test_client()
    sign_in(browser, "scientist", "scientist-demo")
    assert browser.get("/analysis").status_code == 200
    headers = bearer(app, "scientist")
    assert app.test_client().get("/api/v1/me", headers=headers).status_code == 200
    admin = admin_client(app)
    assert admin.post("/admin/users/admin/disable", data={
        "csrf_token": csrf_from(admin, "/admin/users/admin"), "reason": "me"}).status_code == 409
    answer = admin.post("/admin/users/scientist/disable", data={
        "csrf_token": csrf_from(admin, "/admin/users/scientist"),
        "reason": "Account under review", "stop_machines": "1"})
    assert answer.status_code == 303
    assert browser.get("/analysis").status_code in (302, 303)  # the session has ended
    assert app.test_client().get("/api/v1/me", headers=headers).status_code == 401
    refused = sign_in(app.test_client(), "scientist", "scientist-demo")
    assert refused.status_code != 302
    assert machine(app, running).state == "stopping"
    assert "account disabled: Account under review" in machine(app, running).events[-1].message
    page = admin.get("/admin/users/scientist").get_data(as_text=True)
    assert "Account under review" in page and 'id="enable-user"' in page
    listed = app.test_client().get("/api/v1/admin/users?q=scientist",
                                   headers=bearer(app, "admin")).get_json()["users"]
    assert [(u["username"], u["is_active"], u["disabled_reason"]) for u in listed] == [
        ("scientist", False, "Account under review")]
    enabled = app.test_client().post("/api/v1/admin/users/scientist/enable",
                                     headers=bearer(app, "admin"))
    assert enabled.status_code == 200 and enabled.get_json()["is_active"] is True
    assert enabled.get_json()["disabled_reason"] == ""
    assert sign_in(app.test_client(), "scientist", "scientist-demo").status_code == 302


def test_users_search_usage_and_quota(settings_override: dict[str, Any]) -> None:
    app = create_app({**settings_override, "provider": "memory", "max_machines_per_user": 5,
                      "quotas": "group diamond-users: vcpus=64, gpu:NVIDIA L40S=2"})
    launch(app, "scientist", "ccp4", "g1.l40s-1")
    launch(app, "scientist", "ccp4", "m1.large")
    all_ready(app)
    headers = bearer(app, "admin")
    found = app.test_client().get("/api/v1/admin/users?q=DIAMOND",
                                  headers=headers).get_json()["users"]
    assert [u["username"] for u in found] == ["scientist"]  # by group, any case
    assert found[0]["usage"] == {"machines": 2, "running": 2, "vcpus": 8 + 4, "gpus": 1}
    quota = {q["key"]: (q["used"], q["limit"], q["holder"]) for q in found[0]["quota"]}
    assert quota == {"machines": ("2", "5", "the site's"),
                     "vcpus": ("12", "64", "group 'diamond-users'"),
                     "gpu:NVIDIA L40S": ("1", "2", "group 'diamond-users'")}
    detail = app.test_client().get("/api/v1/admin/users/scientist", headers=headers)
    assert len(detail.get_json()["machines"]) == 2
    page = admin_client(app).get("/admin/users?q=ada").get_data(as_text=True)
    assert 'data-user="scientist"' in page and 'data-user="neutron"' not in page
    assert "GPU (NVIDIA L40S) 1 of 2 (group &#39;diamond-users&#39;)" in page
    assert app.test_client().get("/api/v1/admin/users/nobody",
                                 headers=headers).status_code == 404


def events(app: Flask, machine_id: str, steps: list[tuple[datetime, str]]) -> None:
    """Test set-up: replace the machine's events with ``steps`` (time, state)."""
    with unit_of_work(app.extensions["daaas"].session_factory) as db:
        db.execute(delete(MachineEvent).where(MachineEvent.machine_id == machine_id))
        previous = None
        for at, state in steps:
            db.add(MachineEvent(machine_id=machine_id, from_state=previous, to_state=state,
                                message="", at=at))
            previous = state
        db.execute(update(Machine).where(Machine.id == machine_id).values(
            state=previous, created_at=steps[0][0], state_changed_at=steps[-1][0]))


def test_usage_hours_csv_and_plot(app: Flask) -> None:
    clock = ManualClock()
    t0 = datetime(2026, 11, 2, 8, 0, tzinfo=clock.now.tzinfo)
    clock.now = t0 + 48 * H
    gpu = launch(app, "scientist", "ccp4", "g1.l40s-1")
    plain = launch(app, "neutron", "base-desktop")
    events(app, gpu, [(t0, "requested"), (t0 + timedelta(minutes=10), "provisioning"),
                      (t0 + H, "ready"), (t0 + 3 * H, "stopping"),
                      (t0 + 3 * H + timedelta(minutes=5), "stopped"),
                      (t0 + 5 * H, "provisioning"), (t0 + 6 * H, "ready"),
                      (t0 + 7 * H, "deleting"), (t0 + 7 * H + timedelta(minutes=1), "deleted")])
    events(app, plain, [(t0 + 20 * H, "requested"), (t0 + 20 * H, "provisioning"),
                        (t0 + 21 * H, "ready")])  # still ready: counts until now
    from daaas.portal.admin.usage import usage

    rt = app.extensions["daaas"]
    with rt.session_factory() as db:
        by_env = usage(db, rt.settings, t0, t0 + 72 * H, "environment", clock())
        by_user = usage(db, rt.settings, t0, t0 + 72 * H, "user", clock())
        by_group = usage(db, rt.settings, t0, t0 + 72 * H, "group", clock())
        clipped = usage(db, rt.settings, t0 + 2 * H, t0 + 24 * H, "user", clock())
    gpu_hours = (3 * 60 + 5 - 10) / 60 + 2  # provisioning to stopped, then start to deleted
    assert {r.key: (r.machine_hours, r.gpu_hours) for r in by_user} == {
        "scientist": (round(gpu_hours, 3), round(gpu_hours, 3)),
        "neutron": (28.0, 0.0)}  # 20 h after t0 until now (48 h)
    assert {r.key for r in by_group} == {"diamond-users", "isis-users"}
    assert by_env[0].machine_hours == 28.0  # most machine-hours first
    assert {r.key: r.machine_hours for r in clipped} == {
        "scientist": round(gpu_hours - 110 / 60, 3), "neutron": 4.0}  # from 2 h, not 0:10
    client = admin_client(app)
    day, next_day = t0.date().isoformat(), (t0 + 24 * H).date().isoformat()
    csv_answer = client.get(f"/admin/usage.csv?by=user&start={day}&end={next_day}")
    assert csv_answer.status_code == 200 and csv_answer.mimetype == "text/csv"
    rows = list(csv.reader(io.StringIO(csv_answer.get_data(as_text=True))))
    assert rows[0] == ["user", "machine_hours", "gpu_hours", "period_start", "period_end"]
    assert {r[0]: r[1] for r in rows[1:]} == {"scientist": f"{gpu_hours:.3f}",
                                              "neutron": "20.000"}  # 04:00 to midnight
    page = client.get(f"/admin/usage?by=user&start={day}&end={day}").get_data(as_text=True)
    assert '<svg xmlns="http://www.w3.org/2000/svg" class="usage-chart"' in page
    assert 'data-key="scientist"' in page and 'class="usage-gpu"' in page
    assert "style=" not in page.split('<figure', 1)[1].split('</figure>', 1)[0]
    api = app.test_client().get(
        f"/api/v1/admin/usage?by=environment&start={day}&end={next_day}",
        headers=bearer(app, "admin")).get_json()
    assert api["by"] == "environment" and len(api["rows"]) == 2
    assert app.test_client().get("/api/v1/admin/usage?start=2026-12-02&end=2026-12-01",
                                 headers=bearer(app, "admin")).status_code == 400


def test_next_free_takes_running_machines_in_order_of_expiry() -> None:
    now = utcnow()
    running = [Running("g1.a100-1", 1, "NVIDIA A100", now + 5 * H),
               Running("g1.l40s-1", 1, "NVIDIA L40S", now + 2 * H),
               Running("g1.a100-1", 1, "NVIDIA A100", now + 3 * H),
               Running("m1.large", 0, "", now + H)]
    free = {"slots_free": 4, "gpus_free": 0}
    assert next_free(running, now, **free, gpus=1, gpu_model="NVIDIA L40S") == now + 2 * H
    assert next_free(running, now, **free, gpus=1, gpu_model="NVIDIA A100") == now + 3 * H
    assert next_free(running, now, **free, gpus=2, gpu_model="NVIDIA A100") == now + 5 * H
    assert next_free(running, now, slots_free=0, gpus_free=0, gpus=0, gpu_model="") == now + H
    assert next_free(running, now, **free, gpus=0, gpu_model="") == now
    assert next_free(running, now, slots_free=4, gpus_free=1, gpus=1,
                     gpu_model="NVIDIA A100") == now
    assert next_free(running, now, **free, gpus=4, gpu_model="NVIDIA A100") is None
    assert next_free(running, now, slots_free=None, gpus_free=0, gpus=1,
                     gpu_model="NVIDIA A100") is None


def test_capacity_page_and_api(app: Flask) -> None:
    soon = launch(app, "scientist", "ccp4", "g1.l40s-1")
    later = launch(app, "scientist", "ccp4", "g1.l40s-1")
    all_ready(app)
    now = utcnow()
    set_machine(app, soon, expires_at=now + 2 * H)
    set_machine(app, later, expires_at=now + 6 * H)
    rt = app.extensions["daaas"]
    (rt.settings.var_path / "capacity.json").write_text(json.dumps({
        "read_at": now.isoformat(), "gpus_free": 0, "sessions_free": 3,
        "sessions_total": 8, "gpus_total": 2}))
    body = app.test_client().get("/api/v1/admin/capacity",
                                 headers=bearer(app, "admin")).get_json()
    flavors = {f["flavor"]: f for f in body["flavors"]}
    l40s = flavors["g1.l40s-1"]
    assert (l40s["running"], l40s["gpus_used"], l40s["vcpus_used"], l40s["fits_now"]) == (
        2, 2, 16, 0)
    assert datetime.fromisoformat(l40s["next_free"]) == (now + 2 * H).replace(microsecond=0) \
        or abs(datetime.fromisoformat(l40s["next_free"]) - (now + 2 * H)) < timedelta(seconds=1)
    assert datetime.fromisoformat(flavors["m1.large"]["next_free"]) <= utcnow()  # slots free
    assert flavors["m1.large"]["fits_now"] == 3
    assert "expires_at" in body["method"]
    assert body["read_at"] == now.isoformat()  # as the portal writes times (+00:00)
    assert_matches(body, "CapacityReport")
    page = admin_client(app).get("/admin/capacity").get_data(as_text=True)
    assert 'data-flavor="g1.l40s-1"' in page and "How this is computed" in page
    (rt.settings.var_path / "capacity.json").unlink()
    body = app.test_client().get("/api/v1/admin/capacity",
                                 headers=bearer(app, "admin")).get_json()
    assert body["read_at"] is None
    assert all(f["next_free"] is None for f in body["flavors"])


class Directory(IdentityBackend):
    """A site directory double that knows nothing of the portal's disable: it signs
    ``neutron`` in with a fixed password."""

    name = "directory-double"

    @classmethod
    def from_settings(cls, settings: Settings) -> Directory:
        return cls()

    def authenticate(self, db: Session, username: str, password: str) -> Identity:
        if (username, password) != ("neutron", "directory-pass"):
            raise SignInFailed("Wrong user name or password.")
        return Identity(username=username, groups=("isis-users",))


def test_a_disabled_account_cannot_sign_in_through_an_external_directory(
        settings_override: dict[str, Any]) -> None:
    with IDENTITY_BACKENDS.registered("directory", Directory):
        app = create_app({**settings_override, "identity_backend": "directory",
                          "provider": "memory"})
    assert sign_in(app.test_client(), "neutron", "directory-pass").status_code == 302
    answer = app.test_client().post("/api/v1/admin/users/neutron/disable",
                                    headers=bearer(app, "admin"),
                                    json={"reason": "Left the facility"})
    assert answer.status_code == 200 and answer.get_json()["is_active"] is False
    refused = sign_in(app.test_client(), "neutron", "directory-pass")
    assert refused.status_code == 401
    assert "This account is disabled" in refused.get_data(as_text=True)
    app.extensions["daaas"].engine.dispose()
