"""Quotas through the API and the administrators' page, on SQLite and PostgreSQL: admins
only (403 for others), the same JSON as the page, every change audited once, a refused
change leaving nothing; a user's own quota replacing the site's machine limit; the storage
quota per user through the same service."""

from __future__ import annotations

import html
import re
from pathlib import Path
from typing import Any

import pytest
import requests
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from daaas.portal.audit.models import AuditEvent
from daaas.portal.auth.service import get_user
from daaas.portal.db import unit_of_work
from daaas.portal.quotas.storage import storage_quota_gib
from daaas.portal.storage.app_passwords import create_app_password
from tests.support.web import assert_matches, bearer, csrf_from, served, sign_in

GROUP = "beamline-i03"
GIB = 1024**3


@pytest.fixture
def settings_override(settings_override: dict[str, Any]) -> dict[str, Any]:
    """The in-memory provider and one quota from the settings."""
    return {**settings_override, "provider": "memory", "max_machines_per_user": 2,
            "storage_quota_gb": 1,
            "quotas": f"group {GROUP}: gpu:NVIDIA A100=2, storage_gib=300"}


def audit_rows(app: Flask) -> list[tuple[str, str, str, bool]]:
    with unit_of_work(app.extensions["daaas"].session_factory) as db:
        return [(e.action, e.actor, e.target, e.admin) for e in db.scalars(
            select(AuditEvent).where(AuditEvent.action.like("quota.%")).order_by(AuditEvent.id))]


def test_only_administrators_see_or_change_quotas(app: Flask, client: FlaskClient) -> None:
    user = bearer(app, "scientist")
    assert client.get("/api/v1/admin/quotas", headers=user).status_code == 403
    put = client.put(f"/api/v1/admin/quotas/group/{GROUP}", headers=user, json={"vcpus": 9})
    assert put.status_code == 403
    assert client.delete(f"/api/v1/admin/quotas/group/{GROUP}", headers=user).status_code == 403
    assert client.get("/api/v1/admin/quotas").status_code == 401
    sign_in(client, "scientist", "scientist-demo")
    assert client.get("/admin/quotas").status_code == 403
    assert audit_rows(app) == []


def test_an_administrator_sets_and_drops_a_quota_through_the_api(app: Flask,
                                                                 client: FlaskClient) -> None:
    admin = bearer(app, "admin")
    listed = client.get("/api/v1/admin/quotas", headers=admin)
    assert listed.status_code == 200
    assert_matches(listed.json, "QuotaList")
    assert listed.json == {"policy": "most_generous", "quotas": [
        {"scope": "group", "name": GROUP, "gpus": {"NVIDIA A100": 2}, "storage_gib": 300,
         "source": "settings", "updated_by": "", "updated_at": None}]}
    put = client.put(f"/api/v1/admin/quotas/group/{GROUP}", headers=admin,
                     json={"vcpus": 64, "gpus": {"NVIDIA A100": 3}})
    assert put.status_code == 200, put.json
    assert_matches(put.json, "Quota")
    assert {k: put.json[k] for k in ("vcpus", "gpus", "source", "updated_by")} == {
        "vcpus": 64, "gpus": {"NVIDIA A100": 3}, "source": "admin", "updated_by": "admin"}
    assert "storage_gib" not in put.json  # the admin's entry replaces the setting's whole
    for bad in ({"vcpus": -1}, {"vcpus": "9"}, {"gpus": {"NVIDIA A100": 10**7}}):
        refused = client.put(f"/api/v1/admin/quotas/group/{GROUP}", headers=admin, json=bad)
        assert refused.status_code == 400, bad
    assert client.put("/api/v1/admin/quotas/team/x", headers=admin,
                      json={}).status_code == 404
    assert client.put("/api/v1/admin/quotas/user/no%20spaces", headers=admin,
                      json={}).status_code == 400
    assert client.delete(f"/api/v1/admin/quotas/group/{GROUP}", headers=admin).status_code == 204
    assert client.delete(f"/api/v1/admin/quotas/group/{GROUP}", headers=admin).status_code == 404
    again = client.get("/api/v1/admin/quotas", headers=admin).json
    assert again["quotas"][0]["source"] == "settings"  # the setting's entry applies again
    assert audit_rows(app) == [("quota.set", "admin", f"group {GROUP}", True),
                               ("quota.reset", "admin", f"group {GROUP}", True)]


def test_the_admin_page_sets_a_quota_and_shows_a_refused_form(app: Flask,
                                                              client: FlaskClient) -> None:
    sign_in(client, "admin", "admin-demo-pass")
    page = client.get("/admin/quotas")
    assert page.status_code == 200 and "settings" in page.get_data(as_text=True)
    token = csrf_from(client, "/admin/quotas")
    form = {"csrf_token": token, "scope": "user", "name": "scientist", "machines": "5",
            "vcpus": "", "memory_gib": "", "storage_gib": "20", "gpus": "NVIDIA A100=1"}
    refused = client.post("/admin/quotas", data={**form, "gpus": "lots"})
    assert refused.status_code == 400
    assert "'lots' is not 'GPU model=N'" in html.unescape(refused.get_data(as_text=True))
    saved = client.post("/admin/quotas", data=form)
    assert saved.status_code == 303
    shown = client.get(saved.headers["Location"]).get_data(as_text=True)
    assert 'data-quota="user:scientist"' in shown
    assert "1 \N{MULTIPLICATION SIGN} NVIDIA A100" in shown
    assert audit_rows(app) == [("quota.set", "admin", "user scientist", True)]
    editing = client.get("/admin/quotas?edit=user:scientist").get_data(as_text=True)
    assert 'name="gpus" placeholder="NVIDIA A100=2, NVIDIA L40S=1" value="NVIDIA A100=1"' in \
        editing and 'name="machines" inputmode="numeric" value="5"' in editing
    with unit_of_work(app.extensions["daaas"].session_factory) as db:
        assert storage_quota_gib(db, app.extensions["daaas"].settings,
                                 get_user(db, "scientist")) == 20


def test_a_users_own_machine_quota_replaces_the_site_limit(app: Flask,
                                                           client: FlaskClient) -> None:
    user, admin = bearer(app, "neutron"), bearer(app, "admin")
    made = [client.post("/api/v1/machines", headers=user, json={"environment": "mantid"})
            for _ in range(3)]
    assert [m.status_code for m in made] == [202, 202, 409]
    assert "the most this site allows" in made[2].json["error"]["message"]
    assert client.put("/api/v1/admin/quotas/user/neutron", headers=admin,
                      json={"machines": 3}).status_code == 200
    third = client.post("/api/v1/machines", headers=user, json={"environment": "mantid"})
    assert third.status_code == 202, third.json
    fourth = client.post("/api/v1/machines", headers=user, json={"environment": "mantid"})
    assert fourth.status_code == 409
    assert "You already have 3 machines, the most your quota allows" in \
        fourth.json["error"]["message"]
    mine = client.get("/api/v1/quota", headers=user)
    assert_matches(mine.json, "MyQuota")
    assert mine.json["limits"][0] == {"label": "Machines", "used": "3", "limit": "3",
                                      "holder": "your", "full": True}


def test_storage_quota_is_the_groups_for_its_members(app: Flask) -> None:
    rt = app.extensions["daaas"]
    with unit_of_work(rt.session_factory) as db:
        scientist = get_user(db, "scientist")
        assert storage_quota_gib(db, rt.settings, scientist) == 1  # storage_quota_gb
        scientist.groups = [*scientist.groups, GROUP]
        assert storage_quota_gib(db, rt.settings, scientist) == 300


def test_a_users_storage_quota_holds_for_my_data_and_webdav(app: Flask,
                                                             client: FlaskClient) -> None:
    """Site quota 1 GiB; the administrator gives scientist 2 GiB: uploads past the site's
    quota fit (My Data through the session's user, WebDAV through a user read in a session of
    its own), and stop fitting when the user's quota is dropped again."""
    admin = bearer(app, "admin")
    home = Path(app.extensions["daaas"].settings.var_dir) / "storage" / "scientist"
    home.mkdir(parents=True)
    with open(home / "big.bin", "wb") as big:  # sparse: 1.5 GiB counted against the quota
        big.truncate(3 * GIB // 2)
    with unit_of_work(app.extensions["daaas"].session_factory) as db:
        _row, password = create_app_password(db, get_user(db, "scientist"), "test")
    sign_in(client, "scientist", "scientist-demo")
    meta = re.search(r'<meta name="csrf-token" content="([^"]+)"',
                     client.get("/analysis").get_data(as_text=True))
    assert meta
    token = meta.group(1)

    def upload(name: str) -> int:
        return client.post(f"/my-data/-/upload?path=&name={name}", data=b"x" * 10,
                           headers={"X-CSRF-Token": token, "Accept": "application/json",
                                    "Content-Type": "application/octet-stream"}).status_code

    assert upload("a.bin") == 507  # the site's 1 GiB
    assert client.put("/api/v1/admin/quotas/user/scientist", headers=admin,
                      json={"storage_gib": 2}).status_code == 200
    assert upload("b.bin") == 201
    with served(app) as base:
        put = requests.put(f"{base}/dav/c.bin", data=b"x" * 10, auth=("scientist", password),
                           timeout=10)
        assert put.status_code in (201, 204), put.text
        assert client.delete("/api/v1/admin/quotas/user/scientist",
                             headers=admin).status_code == 204
        refused = requests.put(f"{base}/dav/d.bin", data=b"x" * 10,
                               auth=("scientist", password), timeout=10)
        assert refused.status_code == 507 and "Not enough room" in refused.text
    assert upload("e.bin") == 507
    assert sorted(p.name for p in home.iterdir()) == ["b.bin", "big.bin", "c.bin"]
