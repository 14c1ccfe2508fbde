"""Machines through the JSON API and the pages: launch, list, get, delete, ownership."""

from __future__ import annotations

from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from daaas.portal.machines.reconciler import Reconciler
from tests.support.providers import InMemoryProvider
from tests.support.web import assert_matches, bearer, csrf_from, sign_in


@pytest.fixture
def settings_override(settings_override: dict[str, Any]) -> dict[str, Any]:
    """The conftest's settings on the in-memory provider: these tests launch environments
    (CCP4, Mantid) whose software a local desktop on this host lacks, and the local provider
    refuses those launches (Provider.unavailable_reason)."""
    return {**settings_override, "provider": "memory"}


def reconcile(app: Flask, provider: InMemoryProvider) -> None:
    Reconciler(app.extensions["daaas"].session_factory, provider, secret_key="k",
               ready_timeout_seconds=600).run_once()


def test_launch_list_get_delete(app: Flask, client: FlaskClient) -> None:
    headers = bearer(app, "scientist")
    created = client.post("/api/v1/machines", json={"environment": "ccp4"}, headers=headers)
    assert created.status_code == 202
    body = created.get_json()
    assert_matches(body, "Machine")
    assert body["state"] == "requested" and body["flavor"] == "m1.xlarge"  # ccp4's default
    provider = InMemoryProvider(ready_after_polls=1)
    reconcile(app, provider)
    reconcile(app, provider)
    one = client.get(f"/api/v1/machines/{body['id']}", headers=headers).get_json()
    assert_matches(one, "Machine")
    assert one["state"] == "ready"
    assert [e["to"] for e in one["events"]] == ["requested", "provisioning", "contextualising",
                                                "ready"]
    assert one["phases"]["total_to_ready"] is not None
    listing = client.get("/api/v1/machines", headers=headers).get_json()
    assert_matches(listing, "MachineList")
    assert [m["id"] for m in listing["machines"]] == [body["id"]]
    deleted = client.delete(f"/api/v1/machines/{body['id']}", headers=headers)
    assert deleted.status_code == 202 and deleted.get_json()["state"] == "deleting"
    reconcile(app, provider)
    assert client.get("/api/v1/machines", headers=headers).get_json()["machines"] == []
    assert provider.list_machine_ids() == set()


def test_users_see_and_touch_only_their_own(app: Flask, client: FlaskClient) -> None:
    mine = client.post("/api/v1/machines", json={"environment": "mantid"},
                       headers=bearer(app, "neutron")).get_json()["id"]
    other = bearer(app, "scientist")
    assert client.get(f"/api/v1/machines/{mine}", headers=other).status_code == 404
    assert client.delete(f"/api/v1/machines/{mine}", headers=other).status_code == 404
    assert client.get("/api/v1/machines", headers=other).get_json()["machines"] == []
    assert client.get("/api/v1/machines?all=1", headers=other).status_code == 403
    admin = bearer(app, "admin")
    everyone = client.get("/api/v1/machines?all=1", headers=admin).get_json()["machines"]
    assert [m["id"] for m in everyone] == [mine]
    assert client.get(f"/api/v1/machines/{mine}", headers=admin).status_code == 200


def test_bad_launch_requests_get_actionable_errors(app: Flask, client: FlaskClient) -> None:
    headers = bearer(app, "scientist")
    cases: list[tuple[Any, int, str]] = [
        ({}, 400, "environment"),
        ({"environment": "ccp4", "flavor": 3}, 400, "flavor"),
        ({"environment": "ccp4", "flavor": "g9.giant"}, 400, "Choose one of"),
        ({"environment": "mantid"}, 404, "Analysis page"),
    ]
    for payload, status, text in cases:
        response = client.post("/api/v1/machines", json=payload, headers=headers)
        assert response.status_code == status, payload
        assert_matches(response.get_json(), "Error")
        assert text in response.get_json()["error"]["message"]


def test_launch_and_delete_from_the_pages(app: Flask, client: FlaskClient) -> None:
    sign_in(client, "scientist", "scientist-demo")
    page = client.get("/analysis").get_data(as_text=True)
    assert 'data-environment="base-desktop"' in page and "Launch" in page
    token = csrf_from(client, "/analysis")
    response = client.post("/machines", data={"environment": "base-desktop",
                                              "csrf_token": token})
    assert response.status_code == 303
    machine_page = client.get(response.headers["Location"]).get_data(as_text=True)
    assert "Analysis desktop" in machine_page and "requested" in machine_page
    machine_id = response.headers["Location"].rsplit("/", 1)[1]
    assert client.post(f"/machines/{machine_id}/delete").status_code == 403  # no CSRF token
    client.post(f"/machines/{machine_id}/delete", data={"csrf_token": token})
    state = client.get(f"/api/v1/machines/{machine_id}").get_json()["state"]
    assert state == "deleting"


def test_admin_sees_every_machine_and_capacity(app: Flask, client: FlaskClient) -> None:
    mine = client.post("/api/v1/machines", json={"environment": "mantid"},
                       headers=bearer(app, "neutron")).get_json()["id"]
    sign_in(client, "scientist", "scientist-demo")
    assert client.get("/admin/machines").status_code == 403
    client.post("/sign-out", data={"csrf_token": csrf_from(client, "/analysis")})
    sign_in(client, "admin", "admin-demo-pass")
    rt = app.extensions["daaas"]  # the page shows the capacity the worker last recorded
    Reconciler(rt.session_factory, rt.provider, secret_key="k", ready_timeout_seconds=600,
               settings=rt.settings).run_once()
    page = client.get("/admin/machines").get_data(as_text=True)
    assert f'data-machine="{mine}"' in page and "neutron" in page
    assert 'id="sessions-free">7 of 8' in page  # the cycle launched neutron's machine


def test_admins_see_the_rendered_user_data_without_the_token(app: Flask,
                                                             client: FlaskClient) -> None:
    from daaas.portal.bootstrap.userdata import PLACEHOLDER_TOKEN
    from daaas.portal.machines.secrets import bootstrap_token

    machine = client.post("/api/v1/machines", json={"environment": "ccp4"},
                          headers=bearer(app, "scientist")).get_json()["id"]
    sign_in(client, "scientist", "scientist-demo")
    assert 'id="user-data"' not in client.get(f"/machines/{machine}").get_data(as_text=True)
    client.post("/sign-out", data={"csrf_token": csrf_from(client, "/analysis")})
    sign_in(client, "admin", "admin-demo-pass")
    page = client.get(f"/machines/{machine}").get_data(as_text=True)
    assert 'id="user-data"' in page and "#cloud-config" in page
    assert PLACEHOLDER_TOKEN in page
    assert bootstrap_token("test-secret-key", machine) not in page
