"""Idle stop: a ready machine with no desktop connection for its environment's
idle_timeout_minutes is stopped (never deleted; its storage kept) and its owner told; one
the desktop proxy recorded a connection to is not (real SQLite and PostgreSQL, the in-memory
provider double, the reconciler's clock injected)."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import select, update

from daaas.portal import create_app
from daaas.portal.access.tokenplugin import DatabaseTokens
from daaas.portal.auth.models import User
from daaas.portal.db import unit_of_work, utcnow
from daaas.portal.machines.models import Machine
from daaas.portal.machines.reconciler import Reconciler
from daaas.portal.notifications.models import Notification
from tests.support.machines import ManualClock as Clock
from tests.support.machines import launch, machine, policy_reconciler
from tests.support.providers import InMemoryProvider

MIN = timedelta(minutes=1)


@pytest.fixture
def app(settings_override: dict[str, Any]) -> Flask:
    application = create_app({**settings_override, "provider": "memory",
                              "public_url": "https://daaas.example.org"})
    with unit_of_work(application.extensions["daaas"].session_factory) as db:
        db.execute(update(User).where(User.username == "scientist")
                   .values(email="ada@example.org"))
    return application




def worker(app: Flask, clock: Clock, provider: InMemoryProvider) -> Reconciler:
    return policy_reconciler(app, clock, provider)

def ready_since(app: Flask, machine_id: str, when: datetime) -> None:
    """Test set-up: the machine became ready at ``when``."""
    with unit_of_work(app.extensions["daaas"].session_factory) as db:
        db.execute(update(Machine).where(Machine.id == machine_id)
                   .values(state_changed_at=when))


def test_no_connection_for_the_idle_timeout_stops_the_machine_and_keeps_storage(
        app: Flask) -> None:
    clock, provider = Clock(), InMemoryProvider(ready_after_polls=1)
    reconciler = worker(app, clock, provider)
    machine_id = launch(app, environment="ccp4")  # idle_timeout_minutes: 240 (base-desktop)
    reconciler.run_once()
    ready_at = machine(app, machine_id).state_changed_at
    assert machine(app, machine_id).state == "ready"
    storage = Path(app.extensions["daaas"].settings.var_dir) / "storage" / "scientist"
    storage.mkdir(parents=True, exist_ok=True)
    (storage / "notes.txt").write_text("kept")
    clock.now = ready_at + 209 * MIN
    assert reconciler.run_once().warned == []
    clock.now = ready_at + 211 * MIN  # 30 minutes before the stop: the owner is warned once
    assert reconciler.run_once().warned == [machine_id]
    clock.now = ready_at + 239 * MIN
    assert reconciler.run_once().warned == []
    assert machine(app, machine_id).state == "ready"
    clock.now = ready_at + 241 * MIN
    reconciler.run_once()
    assert machine(app, machine_id).state == "stopping"
    assert "no desktop connection for 240 minutes: stopped as idle" in \
        machine(app, machine_id).events[-1].message
    reconciler.run_once()  # the provider is asked to stop it ...
    reconciler.run_once()  # ... and the next poll sees it stopped
    assert machine(app, machine_id).state == "stopped"
    assert provider.calls["stop"] == 1 and provider.calls.get("delete", 0) == 0
    assert machine_id in provider.list_machine_ids()  # stopped, not deleted
    assert (storage / "notes.txt").read_text() == "kept"
    with app.extensions["daaas"].session_factory() as db:
        kinds = list(db.scalars(select(Notification.kind)))
    assert kinds == ["ready", "idle_warning", "idle_stopped"]  # nobody had the page open


def test_a_connection_recorded_by_the_desktop_proxy_keeps_it_running(app: Flask) -> None:
    clock, provider = Clock(), InMemoryProvider(ready_after_polls=1)
    reconciler = worker(app, clock, provider)
    idle_id = launch(app, environment="ccp4")
    used_id = launch(app, environment="dawn")
    reconciler.run_once()
    long_ago = utcnow() - 300 * MIN
    ready_since(app, idle_id, long_ago)
    ready_since(app, used_id, long_ago)
    url = app.extensions["daaas"].settings.effective_database_url
    DatabaseTokens(url).seen(used_id)  # what the proxy records while a browser is connected
    assert machine(app, used_id).desktop_seen_at is not None
    clock.now = utcnow() + MIN
    reconciler.run_once()
    assert machine(app, idle_id).state == "stopping"
    assert machine(app, used_id).state == "ready"


def test_the_idle_check_runs_at_most_once_a_minute_and_can_be_switched_off(
        settings_override: dict[str, Any]) -> None:
    app = create_app({**settings_override, "provider": "memory", "idle_stop": False})
    clock, provider = Clock(), InMemoryProvider(ready_after_polls=1)
    reconciler = worker(app, clock, provider)
    machine_id = launch(app, environment="ccp4")
    reconciler.run_once()
    clock.now = utcnow() + 600 * MIN
    reconciler.run_once()
    assert machine(app, machine_id).state == "ready"


def test_a_connection_after_the_warning_cancels_the_stop(app: Flask) -> None:
    clock, provider = Clock(), InMemoryProvider(ready_after_polls=1)
    reconciler = worker(app, clock, provider)
    machine_id = launch(app, environment="ccp4")
    reconciler.run_once()
    ready_since(app, machine_id, utcnow() - 215 * MIN)
    clock.now = utcnow() + 2 * MIN  # the idle check runs at most once a minute
    assert reconciler.run_once().warned == [machine_id]
    DatabaseTokens(app.extensions["daaas"].settings.effective_database_url).seen(machine_id)
    clock.now = utcnow() + 32 * MIN
    reconciler.run_once()
    assert machine(app, machine_id).state == "ready"
    with app.extensions["daaas"].session_factory() as db:
        [warning] = db.scalars(select(Notification).where(Notification.kind == "idle_warning"))
    assert "will be stopped in 23 minutes (idle)" in warning.subject


def test_the_api_says_when_a_ready_machine_stops_as_idle(app: Flask) -> None:
    from tests.support.web import bearer

    clock, provider = Clock(), InMemoryProvider(ready_after_polls=1)
    machine_id = launch(app, environment="ccp4")
    worker(app, clock, provider).run_once()
    client, auth = app.test_client(), bearer(app, "scientist")
    row = machine(app, machine_id)
    lifetime = client.get(f"/api/v1/machines/{machine_id}", headers=auth).get_json()["lifetime"]
    assert lifetime["idle_stop_at"] == (row.state_changed_at + 240 * MIN).isoformat()
    DatabaseTokens(app.extensions["daaas"].settings.effective_database_url).seen(machine_id)
    seen = machine(app, machine_id).desktop_seen_at
    assert seen is not None
    lifetime = client.get(f"/api/v1/machines/{machine_id}", headers=auth).get_json()["lifetime"]
    assert lifetime["idle_stop_at"] == (seen + 240 * MIN).isoformat()
