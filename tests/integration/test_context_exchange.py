"""The bootstrap exchange and the status report, through the real app, database and reconciler.

The token used is the one the real user-data carries (read from the LaunchSpec the reconciler
handed to the cloud double), exactly what the VM's agent would send.
"""

from __future__ import annotations

import hashlib
from typing import Any

import jsonschema
import pytest
from flask import Flask
from flask.testing import FlaskClient

from daaas.portal.api.openapi import openapi_document
from daaas.portal.auth.csrf import CSRF_MESSAGE
from daaas.portal.db import utcnow
from daaas.portal.machines.secrets import vnc_password
from tests.integration.context_support import (
    Cloud,
    context_row,
    machine_row,
    secret_key,
    snapshot,
)
from tests.support.web import csrf_from, sign_in


def assert_matches(body: Any, name: str) -> None:
    doc = openapi_document()
    jsonschema.validate(body, {"$ref": f"#/components/schemas/{name}",
                               "components": doc["components"]})


@pytest.fixture
def cloud(app: Flask) -> Cloud:
    return Cloud(app)


def exchange(client: FlaskClient, machine_id: str, token: Any) -> Any:
    return client.post(f"/api/v1/context/{machine_id}/bootstrap", json={"token": token})


def report(client: FlaskClient, machine_id: str, bearer: str | None, **body: Any) -> Any:
    headers = {"Authorization": f"Bearer {bearer}"} if bearer is not None else {}
    return client.post(f"/api/v1/context/{machine_id}/status", json=body, headers=headers)


def assert_refused(response: Any) -> None:
    assert response.status_code == 403
    assert_matches(response.get_json(), "Error")


# --- the exchange -----------------------------------------------------------------------------

def test_first_exchange_returns_the_secrets_the_agent_needs(cloud: Cloud, app: Flask,
                                                            client: FlaskClient) -> None:
    machine_id, token = cloud.launch()
    document = cloud.document(machine_id)
    assert document["vnc_password_file"] and document["set_login_password"] is False

    response = exchange(client, machine_id, token)
    assert response.status_code == 200, response.get_data(as_text=True)
    assert response.headers["Cache-Control"] == "no-store"
    body = response.get_json()
    assert_matches(body, "MachineSecrets")
    key = secret_key(app)
    assert body["vnc_password"] == vnc_password(key, machine_id)
    assert "rdp_password" not in body  # RDP signs in with one-time tokens
    assert "\n" not in body["vnc_password"]
    assert len(body["report_token"]) >= 32 and body["files"] == []

    row = context_row(app, machine_id)
    assert row["used_at"] is not None
    assert row["report_token_hash"] == hashlib.sha256(body["report_token"].encode()).hexdigest()
    stored = " ".join(str(value) for value in row.values())
    for secret in (token, body["report_token"], body["vnc_password"]):
        assert secret not in stored


def test_only_the_passwords_of_the_services_used_are_sent(cloud: Cloud, app: Flask,
                                                         client: FlaskClient) -> None:
    machine_id, token = cloud.launch()
    with app.extensions["daaas"].session_factory.begin() as db:
        from daaas.portal.machines.models import Machine

        row = db.get(Machine, machine_id)
        assert row is not None
        row.environment = row.environment.model_copy(update={"protocols": ("novnc",)})
    body = exchange(client, machine_id, token).get_json()
    assert "vnc_password" in body and "rdp_password" not in body


def test_second_use_is_refused_and_changes_nothing(
        cloud: Cloud, app: Flask, client: FlaskClient) -> None:
    machine_id, token = cloud.launch()
    assert exchange(client, machine_id, token).status_code == 200
    before = snapshot(app, machine_id)
    again = exchange(client, machine_id, token)
    assert_refused(again)
    assert "password" not in again.get_data(as_text=True)
    assert snapshot(app, machine_id) == before


def test_wrong_token_is_refused_and_changes_nothing(
        cloud: Cloud, app: Flask, client: FlaskClient) -> None:
    machine_id, token = cloud.launch()
    _, other_token = cloud.launch(environment="dawn")
    before = snapshot(app, machine_id)
    assert_refused(exchange(client, machine_id, token[:-1] + ("A" if token[-1] != "A" else "B")))
    assert_refused(exchange(client, machine_id, other_token))  # another machine's token
    assert snapshot(app, machine_id) == before
    assert context_row(app, machine_id)["used_at"] is None
    assert exchange(client, machine_id, token).status_code == 200  # the right one still works


def test_expired_token_is_refused_and_changes_nothing(
        cloud: Cloud, app: Flask, client: FlaskClient) -> None:
    machine_id, token = cloud.launch(hours_ago=3)  # launched 3 h ago; tokens live 2 h
    before = snapshot(app, machine_id)
    assert before[0]["expires_at"] < utcnow()
    assert_refused(exchange(client, machine_id, token))
    assert snapshot(app, machine_id) == before


def test_unknown_machine_is_refused(
        cloud: Cloud, app: Flask, client: FlaskClient) -> None:
    _, token = cloud.launch()
    assert_refused(exchange(client, "0" * 32, token))


def test_a_machine_being_deleted_gets_no_secrets(
        cloud: Cloud, app: Flask, client: FlaskClient) -> None:
    machine_id, token = cloud.launch()
    with app.extensions["daaas"].session_factory.begin() as db:
        from daaas.portal.auth.service import get_user
        from daaas.portal.machines import service

        service.request_delete(db, get_user(db, "scientist"), machine_id)
    before = snapshot(app, machine_id)
    assert_refused(exchange(client, machine_id, token))
    assert snapshot(app, machine_id) == before


def test_malformed_requests_are_400(
        cloud: Cloud, app: Flask, client: FlaskClient) -> None:
    machine_id, token = cloud.launch()
    for body in ({}, {"token": 42}, {"token": ""}):
        assert client.post(f"/api/v1/context/{machine_id}/bootstrap", json=body) \
            .status_code == 400
    assert client.post(f"/api/v1/context/{machine_id}/bootstrap", data="token").status_code == 400
    assert report(client, machine_id, token, status="fine").status_code == 400
    assert report(client, machine_id, token, status="failed", reason=7).status_code == 400
    assert context_row(app, machine_id)["used_at"] is None


# --- the status report and the reconciler ------------------------------------------------------

def test_ready_report_moves_the_machine_to_ready_in_a_reconciler_cycle(
        cloud: Cloud, app: Flask, client: FlaskClient) -> None:
    silent_id, _ = cloud.launch(environment="dawn")  # never reports
    machine_id, token = cloud.launch()
    report_token = exchange(client, machine_id, token).get_json()["report_token"]

    response = report(client, machine_id, report_token, status="ready")
    assert response.status_code == 202
    assert_matches(response.get_json(), "StatusAccepted")
    assert machine_row(app, machine_id).state == "provisioning"  # kept until it gets there

    cloud.cycle()
    ready = machine_row(app, machine_id)
    assert ready.state == "ready"
    assert [(e.from_state, e.to_state) for e in ready.events][-2:] == [
        ("provisioning", "contextualising"), ("contextualising", "ready")]
    assert ready.events[-1].message == "the machine reported it is set up"
    for _ in range(3):  # RUNNING at the cloud is not enough: only the report makes it ready
        cloud.cycle()
    assert machine_row(app, silent_id).state == "contextualising"


def test_failed_report_moves_the_machine_to_error_with_the_reason_shown_to_the_user(
        cloud: Cloud, app: Flask, client: FlaskClient) -> None:
    machine_id, token = cloud.launch()
    report_token = exchange(client, machine_id, token).get_json()["report_token"]
    cloud.cycle()
    assert machine_row(app, machine_id).state == "contextualising"
    reason = "CVMFS repository ccp4.stfc.ac.uk failed after 3 attempts: No such file or directory"

    assert report(client, machine_id, report_token, status="failed",
                  reason=reason).status_code == 202
    assert machine_row(app, machine_id).state == "contextualising"
    cloud.cycle()
    failed = machine_row(app, machine_id)
    assert failed.state == "error" and reason in failed.error_reason
    assert machine_id not in cloud.provider.list_machine_ids()  # removed at the cloud

    sign_in(client, "scientist", "scientist-demo")
    shown = client.get(f"/api/v1/machines/{machine_id}").get_json()
    assert shown["state"] == "error" and reason in shown["error_reason"]


def test_a_refused_exchange_can_still_report_failed_with_the_bootstrap_token(
        cloud: Cloud, app: Flask, client: FlaskClient) -> None:
    machine_id, token = cloud.launch()
    assert exchange(client, machine_id, token).status_code == 200  # the answer got lost
    assert report(client, machine_id, token, status="ready").status_code == 403
    assert context_row(app, machine_id)["reported_status"] is None
    reason = "the portal refused .../bootstrap: HTTP 403"
    assert report(client, machine_id, token, status="failed", reason=reason).status_code == 202
    cloud.cycle()
    assert reason in machine_row(app, machine_id).error_reason


def test_before_the_exchange_the_bootstrap_token_may_report(cloud: Cloud, app: Flask,
                                                           client: FlaskClient) -> None:
    machine_id, token = cloud.launch()
    assert report(client, machine_id, token, status="ready").status_code == 202
    cloud.cycle()
    assert machine_row(app, machine_id).state == "ready"


def test_report_with_a_wrong_token_is_refused_and_changes_nothing(
        cloud: Cloud, app: Flask, client: FlaskClient) -> None:
    machine_id, token = cloud.launch()
    exchange(client, machine_id, token)
    other_id, other_token = cloud.launch(environment="dawn")
    other_report = exchange(client, other_id, other_token).get_json()["report_token"]
    before = snapshot(app, machine_id)
    for bearer in ("forged-report-token", other_report, other_token, None, ""):
        assert_refused(report(client, machine_id, bearer, status="failed", reason="x"))
    assert_refused(client.post(f"/api/v1/context/{machine_id}/status", json={"status": "ready"},
                               headers={"Authorization": f"Basic {token}"}))
    assert_refused(report(client, "0" * 32, other_report, status="ready"))
    assert snapshot(app, machine_id) == before
    cloud.cycle()
    assert machine_row(app, machine_id).state == "contextualising"


def test_a_repeated_report_is_accepted_and_a_contradiction_conflicts(
        cloud: Cloud, app: Flask, client: FlaskClient) -> None:
    machine_id, token = cloud.launch()
    report_token = exchange(client, machine_id, token).get_json()["report_token"]
    assert report(client, machine_id, report_token, status="ready").status_code == 202
    first = context_row(app, machine_id)
    assert report(client, machine_id, report_token, status="ready").status_code == 202
    conflict = report(client, machine_id, report_token, status="failed", reason="late")
    assert conflict.status_code == 409
    assert_matches(conflict.get_json(), "Error")
    assert context_row(app, machine_id) == first


def test_a_long_multi_line_reason_is_kept_as_one_line_of_500_characters(
        cloud: Cloud, app: Flask, client: FlaskClient) -> None:
    machine_id, token = cloud.launch()
    cloud.cycle()
    reason = "mount failed:\n" + "x" * 600 + "\x1b[31m"
    assert report(client, machine_id, token, status="failed", reason=reason).status_code == 202
    stored = context_row(app, machine_id)["reported_reason"]
    assert stored.startswith("mount failed: xxx") and len(stored) == 500 and "\n" not in stored


# --- CSRF ------------------------------------------------------------------------------------

@pytest.mark.parametrize("path", ["/api/v1/tokens", "/api/v1/machines", "/sign-out"])
def test_csrf_still_guards_other_posts(client: FlaskClient, path: str) -> None:
    sign_in(client, "scientist", "scientist-demo")
    refused = client.post(path, json={"environment": "ccp4"},
                          headers={"Accept": "application/json"})
    assert refused.status_code == 403
    assert refused.get_json()["error"]["message"] == CSRF_MESSAGE


def test_the_vm_endpoints_need_no_csrf_token_even_beside_a_session(
        cloud: Cloud, app: Flask, client: FlaskClient) -> None:
    machine_id, token = cloud.launch()
    sign_in(client, "scientist", "scientist-demo")
    assert csrf_from(client, "/analysis")  # a browser session with a CSRF token exists
    answer = exchange(client, machine_id, token)
    assert answer.status_code == 200
    assert report(client, machine_id, answer.get_json()["report_token"],
                  status="ready").status_code == 202
    refused = client.post("/api/v1/tokens", json={}, headers={"Accept": "application/json"})
    assert refused.status_code == 403 and refused.get_json()["error"]["message"] == CSRF_MESSAGE
