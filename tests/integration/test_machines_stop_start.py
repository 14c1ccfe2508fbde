"""Stop and start: the state flow through the reconciler (provider doubles), the API and pages.

The doubles are real Provider subclasses; the database is real (SQLite and PostgreSQL).
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import update

from daaas.portal import create_app
from daaas.portal.auth.service import get_user
from daaas.portal.db import unit_of_work, utcnow
from daaas.portal.errors import Conflict
from daaas.portal.machines import service
from daaas.portal.machines.models import Machine
from daaas.portal.machines.reconciler import Reconciler
from daaas.portal.providers import Provider, StopNotSupported
from tests.integration.context_support import Cloud
from tests.support.machines import launch, machine, reconciler
from tests.support.providers import InMemoryProvider, UnstoppableProvider
from tests.support.web import assert_matches, bearer, csrf_from, sign_in


def ask(app: Flask, action: str, machine_id: str, username: str = "scientist",
        provider: Provider | None = None) -> Machine:
    """Call service.request_<action> as ``username`` in one unit of work, asking ``provider``
    (default: the app's own) whether it can stop machines."""
    rt = app.extensions["daaas"]
    with unit_of_work(rt.session_factory) as db:
        found: Machine = getattr(service, f"request_{action}")(
            db, get_user(db, username), machine_id, provider or rt.provider)
        return found


def ready_machine(app: Flask, worker: Reconciler, environment: str = "ccp4") -> str:
    machine_id = launch(app, environment=environment)
    worker.run_once()
    worker.run_once()
    assert machine(app, machine_id).state == "ready"
    return machine_id


def steps(app: Flask, machine_id: str) -> list[tuple[str | None, str]]:
    return [(e.from_state, e.to_state) for e in machine(app, machine_id).events]


def set_column(app: Flask, machine_id: str, **values: Any) -> None:
    """Test set-up: change stored columns of a machine (as an older or other-provider row)."""
    with unit_of_work(app.extensions["daaas"].session_factory) as db:
        db.execute(update(Machine).where(Machine.id == machine_id).values(**values))


def test_stop_then_start_goes_round_with_an_event_per_transition(app: Flask) -> None:
    provider = InMemoryProvider(ready_after_polls=1, max_sessions=1)
    worker = reconciler(app, provider)
    machine_id = ready_machine(app, worker)
    assert ask(app, "stop", machine_id).state == "stopping"
    worker.run_once()  # the poll still says ready: the reconciler asks the provider to stop
    assert provider.calls["stop"] == 1 and machine(app, machine_id).state == "stopping"
    worker.run_once()
    assert machine(app, machine_id).state == "stopped"
    assert provider.capacity().sessions_free == 1  # a stopped machine holds no slot
    assert machine_id in provider.list_machine_ids()  # ... but it is kept
    assert ask(app, "start", machine_id).state == "provisioning"
    worker.run_once()  # the poll says stopped: the reconciler asks the provider to start
    assert provider.calls["start"] == 1
    worker.run_once()
    assert machine(app, machine_id).state == "ready"
    assert steps(app, machine_id)[4:] == [
        ("ready", "stopping"), ("stopping", "stopped"), ("stopped", "provisioning"),
        ("provisioning", "contextualising"), ("contextualising", "ready")]
    messages = [e.message for e in machine(app, machine_id).events]
    assert "stop requested by scientist" in messages and "start requested by scientist" in messages
    assert any("its disk is kept" in m for m in messages)


def test_stop_twice_is_one_stop_and_wrong_states_are_conflicts(app: Flask) -> None:
    provider = InMemoryProvider(ready_after_polls=1)
    worker = reconciler(app, provider)
    waiting = launch(app)  # still requested
    with pytest.raises(Conflict, match="Only a ready machine can be stopped"):
        ask(app, "stop", waiting)
    machine_id = ready_machine(app, worker, "dawn")
    with pytest.raises(Conflict, match="Only a stopped machine can be started; this one is "
                                       "ready"):
        ask(app, "start", machine_id)
    ask(app, "stop", machine_id)
    assert ask(app, "stop", machine_id).state == "stopping"
    with pytest.raises(Conflict, match="Wait until it has stopped"):
        ask(app, "start", machine_id)
    assert steps(app, machine_id).count(("ready", "stopping")) == 1


def test_a_provider_that_cannot_stop_refuses_with_delete_instead(app: Flask) -> None:
    worker = reconciler(app, InMemoryProvider(ready_after_polls=1))
    machine_id = ready_machine(app, worker)
    with pytest.raises(StopNotSupported) as refused:
        ask(app, "stop", machine_id, provider=UnstoppableProvider())
    assert "cannot be stopped; delete it instead" in refused.value.user_message
    assert refused.value.status_code == 409
    assert machine(app, machine_id).state == "ready"


def test_stopped_behind_the_portal_is_seen_in_one_cycle_and_can_be_started(app: Flask) -> None:
    provider = InMemoryProvider(ready_after_polls=1)
    worker = reconciler(app, provider)
    machine_id = ready_machine(app, worker)
    provider.stop_behind_the_portal(machine_id)
    worker.run_once()
    row = machine(app, machine_id)
    assert row.state == "stopped" and "stopped outside the portal" in row.events[-1].message
    assert provider.calls["stop"] == 0
    ask(app, "start", machine_id)
    worker.run_once()
    worker.run_once()
    assert machine(app, machine_id).state == "ready"


def test_a_start_without_room_leaves_it_stopped_with_the_reason(app: Flask) -> None:
    provider = InMemoryProvider(ready_after_polls=1, max_sessions=1)
    worker = reconciler(app, provider)
    first = ready_machine(app, worker)
    ask(app, "stop", first)
    worker.run_once()
    worker.run_once()
    second = ready_machine(app, worker, "dawn")  # takes the slot the stop freed
    ask(app, "start", first)
    worker.run_once()
    row = machine(app, first)
    assert row.state == "stopped"
    assert row.events[-1].message.startswith("could not be started: All desktop slots")
    assert machine(app, second).state == "ready" and first in provider.list_machine_ids()


def test_stopped_machines_count_toward_the_limit_and_still_expire(app: Flask) -> None:
    provider = InMemoryProvider(ready_after_polls=1)
    now = [utcnow()]
    worker = reconciler(app, provider)
    worker.clock = lambda: now[0]
    ids = [ready_machine(app, worker, env) for env in ("ccp4", "dawn", "jupyter-python")]
    for machine_id in ids:
        ask(app, "stop", machine_id)
    worker.run_once()
    worker.run_once()
    assert {machine(app, m).state for m in ids} == {"stopped"}
    with pytest.raises(Conflict, match="You already have 3 machines"):
        launch(app)
    now[0] += timedelta(days=30)
    worker.run_once()
    assert {machine(app, m).state for m in ids} == {"deleted"}
    assert provider.list_machine_ids() == set()


def test_the_ready_timeout_counts_from_the_start_not_the_launch(app: Flask) -> None:
    provider = InMemoryProvider(ready_after_polls=1)
    now = [utcnow()]
    worker = reconciler(app, provider, timeout=120)
    worker.clock = lambda: now[0]
    machine_id = ready_machine(app, worker)
    ask(app, "stop", machine_id)
    worker.run_once()
    worker.run_once()
    set_column(app, machine_id, created_at=utcnow() - timedelta(hours=5))  # launched long ago
    provider.ready_after_polls = 1000  # from now on machines never get ready
    ask(app, "start", machine_id)
    for _ in range(3):  # start, building, running
        worker.run_once()
    assert machine(app, machine_id).state == "contextualising"  # not timed out by its age
    now[0] += timedelta(seconds=121)
    worker.run_once()
    row = machine(app, machine_id)
    assert row.state == "error" and "did not become ready within 2 minute(s)" in row.error_reason


def test_a_cloud_init_machine_is_ready_again_on_its_first_report(app: Flask,
                                                                 client: FlaskClient) -> None:
    cloud = Cloud(app)  # machines stay RUNNING: only the VM's report makes them ready
    machine_id, token = cloud.launch()
    answer = client.post(f"/api/v1/context/{machine_id}/bootstrap", json={"token": token})
    client.post(f"/api/v1/context/{machine_id}/status", json={"status": "ready"},
                headers={"Authorization": f"Bearer {answer.get_json()['report_token']}"})
    cloud.cycle()
    assert machine(app, machine_id).state == "ready"
    ask(app, "stop", machine_id)
    cloud.cycle()
    cloud.cycle()
    assert machine(app, machine_id).state == "stopped"
    ask(app, "start", machine_id)
    for _ in range(3):  # start, building, running
        cloud.cycle()
    row = machine(app, machine_id)
    assert row.state == "ready"
    assert row.events[-1].message == "running again; it was set up before it was stopped"
    assert len(cloud.provider.launches) == 1  # started, never launched a second time


# -- the API and the pages ------------------------------------------------------------------

def test_api_stop_and_start_answer_202_with_the_machine(app: Flask, client: FlaskClient) -> None:
    provider = InMemoryProvider(ready_after_polls=1)
    worker = reconciler(app, provider)
    machine_id = ready_machine(app, worker)
    headers = bearer(app, "scientist")
    body = client.get(f"/api/v1/machines/{machine_id}", headers=headers).get_json()
    assert body["can_stop"] is True
    stopped = client.post(body["links"]["stop"], headers=headers)
    assert stopped.status_code == 202
    assert_matches(stopped.get_json(), "Machine")
    assert stopped.get_json()["state"] == "stopping"
    worker.run_once()
    worker.run_once()
    started = client.post(f"/api/v1/machines/{machine_id}/start", headers=headers)
    assert started.status_code == 202 and started.get_json()["state"] == "provisioning"
    assert_matches(started.get_json(), "Machine")


def test_api_wrong_state_is_409_others_machines_404_no_token_403(app: Flask,
                                                                client: FlaskClient) -> None:
    machine_id = launch(app)
    headers = bearer(app, "scientist")
    for action, text in (("stop", "Only a ready machine"), ("start", "Only a stopped machine")):
        response = client.post(f"/api/v1/machines/{machine_id}/{action}", headers=headers)
        assert response.status_code == 409
        assert_matches(response.get_json(), "Error")
        assert text in response.get_json()["error"]["message"]
        other = client.post(f"/api/v1/machines/{machine_id}/{action}",
                            headers=bearer(app, "neutron"))
        assert other.status_code == 404
        unknown = client.post(f"/api/v1/machines/{'0' * 32}/{action}", headers=headers)
        assert unknown.status_code == 404
        # neither a bearer token nor a session's CSRF token: refused before anything is read
        assert client.post(f"/api/v1/machines/{machine_id}/{action}").status_code == 403
    assert machine(app, machine_id).state == "requested"


def test_an_admin_may_stop_and_start_anyones_machine(app: Flask, client: FlaskClient) -> None:
    worker = reconciler(app, InMemoryProvider(ready_after_polls=1))
    machine_id = ready_machine(app, worker)
    admin = bearer(app, "admin")
    assert client.post(f"/api/v1/machines/{machine_id}/stop", headers=admin).status_code == 202
    assert machine(app, machine_id).events[-1].message == "stop requested by admin"


def test_pages_show_stop_and_start_and_need_csrf(app: Flask, client: FlaskClient) -> None:
    provider = InMemoryProvider(ready_after_polls=1)
    worker = reconciler(app, provider)
    machine_id = ready_machine(app, worker)
    sign_in(client, "scientist", "scientist-demo")
    page = client.get(f"/machines/{machine_id}").get_data(as_text=True)
    assert 'id="stop-machine"' in page and 'id="start-machine"' not in page
    assert client.post(f"/machines/{machine_id}/stop").status_code == 403  # no CSRF token
    token = csrf_from(client, f"/machines/{machine_id}")
    response = client.post(f"/machines/{machine_id}/stop", data={"csrf_token": token})
    assert response.status_code == 303 and response.headers["Location"].endswith(machine_id)
    worker.run_once()
    worker.run_once()
    page = client.get(f"/machines/{machine_id}").get_data(as_text=True)
    assert 'id="start-machine"' in page and 'id="stop-machine"' not in page
    assert 'id="machine-stopped"' in page
    assert client.post(f"/machines/{machine_id}/start").status_code == 403
    client.post(f"/machines/{machine_id}/start", data={"csrf_token": token})
    assert machine(app, machine_id).state == "provisioning"


def test_no_stop_button_where_the_provider_cannot_stop(settings_override: dict[str, Any]) -> None:
    app = create_app({**settings_override, "provider": "unstoppable"})
    client = app.test_client()
    worker = reconciler(app, InMemoryProvider(ready_after_polls=1))
    machine_id = ready_machine(app, worker)
    sign_in(client, "scientist", "scientist-demo")
    page = client.get(f"/machines/{machine_id}").get_data(as_text=True)
    assert 'id="stop-machine"' not in page and "Delete" in page
    listed = client.get("/api/v1/machines").get_json()["machines"]
    assert [m["can_stop"] for m in listed] == [False]
    token = csrf_from(client, f"/machines/{machine_id}")
    refused = client.post(f"/api/v1/machines/{machine_id}/stop",
                          headers={"X-CSRF-Token": token, "Accept": "application/json"})
    assert refused.status_code == 409
    assert "delete it instead" in refused.get_json()["error"]["message"]
