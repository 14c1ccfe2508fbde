"""One-time desktop tokens on SQLite and PostgreSQL: issued only for the user's ready machine,
spent exactly once (also under concurrency), refused when expired or when the machine is no
longer ready, leading to the machine's VNC server (TCP or Unix socket); and the JSON API that
hands them to the browser, which never carries a VNC password."""

from __future__ import annotations

import hashlib
import re
import threading
from datetime import timedelta
from typing import Any

import jsonschema
import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import Engine, select

from daaas.portal.access.service import (
    DesktopAccess,
    DesktopTarget,
    consume_token,
    issue_desktop_token,
)
from daaas.portal.api.openapi import openapi_document
from daaas.portal.auth.service import get_user
from daaas.portal.db import unit_of_work, utcnow
from daaas.portal.errors import Conflict, NotFound
from daaas.portal.machines.models import AccessToken
from daaas.portal.machines.secrets import vnc_password
from daaas.portal.providers import ConnectionTarget
from tests.support.access import make_machine, set_state
from tests.support.rfb import VncTarget
from tests.support.web import sign_in


@pytest.fixture
def settings_override(settings_override: dict[str, Any]) -> dict[str, Any]:
    """The conftest portal, with machines held by the in-memory provider."""
    return {**settings_override, "provider": "memory"}


def issue(app: Flask, username: str, machine_id: str) -> DesktopAccess:
    rt = app.extensions["daaas"]
    with unit_of_work(rt.session_factory) as db:
        return issue_desktop_token(db, rt.settings, rt.provider, get_user(db, username),
                                   machine_id)


def target_of(app: Flask, machine_id: str) -> DesktopTarget:
    target = app.extensions["daaas"].provider.connection_target(machine_id)
    return DesktopTarget(machine_id, target.host, target.vnc_port, target.vnc_socket)


def test_a_token_opens_its_machine_once(app: Flask) -> None:
    machine_id = make_machine(app, "scientist")
    grant = issue(app, "scientist", machine_id)
    factory = app.extensions["daaas"].session_factory
    assert consume_token(factory, grant.token) == target_of(app, machine_id)
    assert consume_token(factory, grant.token) is None
    assert consume_token(app.extensions["daaas"].engine, grant.token) is None


def test_only_the_hash_is_stored_and_the_grant_carries_no_password(app: Flask) -> None:
    machine_id = make_machine(app, "scientist")
    grant = issue(app, "scientist", machine_id)
    with unit_of_work(app.extensions["daaas"].session_factory) as db:
        row = db.scalars(select(AccessToken).where(AccessToken.machine_id == machine_id)).one()
        assert row.secret_hash == hashlib.sha256(grant.token.encode()).hexdigest()
        assert grant.token not in str([row.secret_hash, row.host, row.port, row.socket_path])
        assert row.socket_path is None
        assert timedelta(0) < row.expires_at - utcnow() <= timedelta(seconds=60)
    assert not hasattr(grant, "password")
    assert vnc_password("test-secret-key", machine_id) not in repr(grant)
    assert grant.websocket_url == f"ws://127.0.0.1:6080/?token={grant.token}"
    assert grant.token not in repr(grant)


def test_a_desktop_on_a_unix_socket_is_reached_there(app: Flask) -> None:
    machine_id = make_machine(app, "scientist")
    socket_path = "/var/lib/daaas/sessions/m1/vnc.sock"
    provider = VncTarget(ConnectionTarget(host="", vnc_port=0, vnc_socket=socket_path))
    rt = app.extensions["daaas"]
    with unit_of_work(rt.session_factory) as db:
        grant = issue_desktop_token(db, rt.settings, provider, get_user(db, "scientist"),
                                    machine_id)
    target = consume_token(rt.engine, grant.token)
    assert target == DesktopTarget(machine_id, "", 0, socket_path)
    assert target is not None and target.describe() == f"unix:{socket_path}"


def test_an_expired_token_is_refused(app: Flask) -> None:
    machine_id = make_machine(app, "scientist")
    grant = issue(app, "scientist", machine_id)
    with unit_of_work(app.extensions["daaas"].session_factory) as db:
        row = db.scalars(select(AccessToken)).one()
        row.expires_at = utcnow() - timedelta(seconds=1)
    assert consume_token(app.extensions["daaas"].engine, grant.token) is None


def test_a_token_is_refused_once_the_machine_is_no_longer_ready(app: Flask) -> None:
    machine_id = make_machine(app, "scientist")
    grant = issue(app, "scientist", machine_id)
    set_state(app, machine_id, "deleting")
    assert consume_token(app.extensions["daaas"].engine, grant.token) is None


def test_unknown_tokens_are_refused(app: Flask) -> None:
    make_machine(app, "scientist")
    assert consume_token(app.extensions["daaas"].engine, "not-a-token") is None


def test_no_token_for_another_users_machine(app: Flask) -> None:
    theirs = make_machine(app, "neutron")
    with pytest.raises(NotFound):
        issue(app, "scientist", theirs)


def test_each_token_opens_only_its_own_machine(app: Flask) -> None:
    mine, theirs = make_machine(app, "scientist"), make_machine(app, "neutron")
    assert target_of(app, mine) != target_of(app, theirs)
    my_grant, their_grant = issue(app, "scientist", mine), issue(app, "neutron", theirs)
    engine = app.extensions["daaas"].engine
    assert consume_token(engine, my_grant.token) == target_of(app, mine)
    assert consume_token(engine, their_grant.token) == target_of(app, theirs)


def test_an_admin_may_open_anyones_machine(app: Flask) -> None:
    theirs = make_machine(app, "neutron")
    grant = issue(app, "admin", theirs)
    assert consume_token(app.extensions["daaas"].engine, grant.token) == target_of(app, theirs)


@pytest.mark.parametrize("state", ["requested", "provisioning", "contextualising"])
def test_no_token_before_the_machine_is_ready(app: Flask, state: str) -> None:
    machine_id = make_machine(app, "scientist", state=state)
    with pytest.raises(Conflict) as refused:
        issue(app, "scientist", machine_id)
    assert f"not ready yet ({state})" in refused.value.user_message


def _race(engine: Engine, token: str, threads: int) -> list[DesktopTarget | None]:
    """Spend ``token`` from ``threads`` threads released at the same moment; return results."""
    start = threading.Barrier(threads)
    results: list[DesktopTarget | None] = []

    def spend() -> None:
        start.wait()
        results.append(consume_token(engine, token))

    workers = [threading.Thread(target=spend) for _ in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(30)
    return results


def test_concurrent_spenders_of_one_token_exactly_one_wins(app: Flask) -> None:
    machine_id = make_machine(app, "scientist")
    engine = app.extensions["daaas"].engine
    for _ in range(5):
        results = _race(engine, issue(app, "scientist", machine_id).token, threads=4)
        assert len(results) == 4
        assert [r for r in results if r is not None] == [target_of(app, machine_id)]


def _csrf(client: FlaskClient, machine_id: str) -> str:
    page = client.get(f"/machines/{machine_id}/desktop").get_data(as_text=True)
    match = re.search(r'<meta name="csrf-token" content="([^"]+)">', page)
    assert match, "the desktop page carries no CSRF token for its script"
    return match.group(1)


def _access_schema() -> dict[str, Any]:
    doc = openapi_document()
    return {"$ref": "#/components/schemas/DesktopAccess", "components": doc["components"]}


def test_api_issues_a_token_to_the_owner_and_no_password(app: Flask,
                                                        client: FlaskClient) -> None:
    machine_id = make_machine(app, "scientist")
    sign_in(client, "scientist", "scientist-demo")
    response = client.post(f"/api/v1/machines/{machine_id}/access",
                           headers={"X-CSRF-Token": _csrf(client, machine_id)})
    assert response.status_code == 201
    body = response.get_json()
    jsonschema.validate(body, _access_schema())
    assert set(body) == {"token", "websocket_url", "expires_at"}
    assert "password" not in response.get_data(as_text=True).lower()
    assert vnc_password("test-secret-key", machine_id) not in response.get_data(as_text=True)
    assert "password" not in _access_schema()["components"]["schemas"]["DesktopAccess"][
        "properties"]
    assert body["websocket_url"].endswith(f"?token={body['token']}")
    assert "no-store" in response.headers["Cache-Control"]
    assert consume_token(app.extensions["daaas"].engine, body["token"]) == \
        target_of(app, machine_id)


def test_api_needs_the_csrf_header_with_a_session(app: Flask, client: FlaskClient) -> None:
    machine_id = make_machine(app, "scientist")
    sign_in(client, "scientist", "scientist-demo")
    assert client.post(f"/api/v1/machines/{machine_id}/access").status_code == 403


def test_api_refuses_other_users_machines_and_unready_ones(app: Flask,
                                                           client: FlaskClient) -> None:
    theirs = make_machine(app, "neutron")
    starting = make_machine(app, "scientist", state="provisioning")
    sign_in(client, "scientist", "scientist-demo")
    csrf = _csrf(client, starting)
    response = client.post(f"/api/v1/machines/{theirs}/access", headers={"X-CSRF-Token": csrf})
    assert response.status_code == 404
    response = client.post(f"/api/v1/machines/{starting}/access", headers={"X-CSRF-Token": csrf})
    assert response.status_code == 409
    assert "not ready yet (provisioning)" in response.get_json()["error"]["message"]
    with unit_of_work(app.extensions["daaas"].session_factory) as db:
        assert db.scalars(select(AccessToken)).all() == []


def test_websocket_url_follows_the_configured_proxy(settings_override: dict[str, Any]) -> None:
    from daaas.portal import create_app

    proxied = create_app({**settings_override, "websockify_url": "wss://desk.example/ws"})
    machine_id = make_machine(proxied, "scientist")
    grant = issue(proxied, "scientist", machine_id)
    assert grant.websocket_url == f"wss://desk.example/ws?token={grant.token}"
    proxied.extensions["daaas"].engine.dispose()
