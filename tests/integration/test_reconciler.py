"""The reconciler against provider test doubles (real subclasses of the provider interface)."""

from __future__ import annotations

import threading
from datetime import timedelta
from typing import Any

from flask import Flask
from sqlalchemy import select

from daaas.portal.db import unit_of_work, utcnow
from daaas.portal.machines import service
from daaas.portal.machines.models import Machine
from daaas.portal.machines.reconciler import Reconciler
from daaas.portal.machines.spec import launch_spec
from daaas.portal.machines.states import TRANSITIONS, State
from tests.support.machines import SECRET_KEY, launch, machine, reconciler
from tests.support.providers import FailingProvider, InMemoryProvider, NeverReadyProvider


def test_launch_reaches_ready_with_an_event_per_transition(app: Flask) -> None:
    provider = InMemoryProvider(ready_after_polls=2)
    machine_id = launch(app)
    worker = reconciler(app, provider)
    worker.run_once()
    assert machine(app, machine_id).state == "provisioning"
    worker.run_once()
    assert machine(app, machine_id).state == "ready"
    row = machine(app, machine_id)
    steps = [(e.from_state, e.to_state) for e in row.events]
    assert steps == [(None, "requested"), ("requested", "provisioning"),
                     ("provisioning", "contextualising"), ("contextualising", "ready")]
    assert all(e.at.tzinfo is not None for e in row.events)
    assert all(State(b) in TRANSITIONS[State(a)] for a, b in steps[1:])


def test_one_poll_call_per_cycle_whatever_the_number_of_machines(app: Flask) -> None:
    provider = InMemoryProvider(ready_after_polls=3)
    rt = app.extensions["daaas"]
    ids = [launch(app, user, env) for user, env in
           [("scientist", "ccp4"), ("scientist", "dawn"), ("scientist", "jupyter-python"),
            ("neutron", "mantid"), ("neutron", "jupyter-python"), ("admin", "ccp4")]]
    worker = reconciler(app, provider)
    for cycle in range(1, 5):
        report = worker.run_once()
        assert report.polls == 1
        assert provider.calls["poll"] == cycle
    assert provider.calls["poll"] == 4
    with rt.session_factory() as db:
        states = set(db.scalars(select(Machine.state).where(Machine.id.in_(ids))))
    assert states == {"ready"}


def test_no_poll_when_nothing_is_running(app: Flask) -> None:
    provider = InMemoryProvider()
    reconciler(app, provider).run_once()
    assert provider.calls["poll"] == 0


def test_never_ready_times_out_with_reason_and_is_cleaned_up(app: Flask) -> None:
    provider = NeverReadyProvider()
    machine_id = launch(app)
    now = [utcnow()]
    worker = reconciler(app, provider, timeout=120)
    worker.clock = lambda: now[0]
    worker.run_once()
    worker.run_once()
    assert machine(app, machine_id).state == "contextualising"
    assert machine_id in provider.list_machine_ids()
    now[0] = now[0] + timedelta(seconds=121)
    worker.run_once()
    row = machine(app, machine_id)
    assert row.state == "error"
    assert "did not become ready within 2 minute(s)" in row.error_reason
    assert machine_id not in provider.list_machine_ids()


def test_launch_failure_is_readable_error_and_nothing_left(app: Flask) -> None:
    provider = FailingProvider(fail_on="launch", message="No GPU is free right now.")
    machine_id = launch(app)
    reconciler(app, provider).run_once()
    row = machine(app, machine_id)
    assert row.state == "error" and "No GPU is free right now" in row.error_reason
    assert provider.list_machine_ids() == set()


def test_crashed_machine_becomes_error(app: Flask) -> None:
    provider = InMemoryProvider(ready_after_polls=1)
    machine_id = launch(app)
    worker = reconciler(app, provider)
    worker.run_once()
    provider.fail(machine_id, "Xvnc exited unexpectedly")
    worker.run_once()
    row = machine(app, machine_id)
    assert row.state == "error" and row.error_reason == "Xvnc exited unexpectedly"
    assert provider.list_machine_ids() == set()


def test_delete_removes_at_provider(app: Flask) -> None:
    provider = InMemoryProvider(ready_after_polls=1)
    machine_id = launch(app)
    worker = reconciler(app, provider)
    worker.run_once()
    rt = app.extensions["daaas"]
    with unit_of_work(rt.session_factory) as db:
        from daaas.portal.auth.service import get_user

        service.request_delete(db, get_user(db, "scientist"), machine_id)
    worker.run_once()
    assert machine(app, machine_id).state == "deleted"
    assert provider.list_machine_ids() == set()


def test_relaunch_after_crash_between_launch_and_record_is_idempotent(app: Flask) -> None:
    """A worker that launched but died before recording: the next launch finds the same one."""
    provider = InMemoryProvider(ready_after_polls=1)
    machine_id = launch(app)
    first = machine(app, machine_id)
    provider.launch(launch_spec(None, SECRET_KEY, first))  # the dead worker's launch
    reconciler(app, provider).run_once()                    # a new worker
    assert provider.list_machine_ids() == {machine_id}
    assert provider.calls["launch"] == 2
    assert machine(app, machine_id).state in {"provisioning", "ready", "contextualising"}


def test_adopt_keeps_known_and_removes_unknown(app: Flask) -> None:
    provider = InMemoryProvider(ready_after_polls=1)
    machine_id = launch(app)
    worker = reconciler(app, provider)
    worker.run_once()
    stray = launch_spec(None, SECRET_KEY, machine(app, machine_id))
    from dataclasses import replace

    provider.launch(replace(stray, machine_id="f" * 32))
    assert worker.adopt() == {machine_id}
    assert provider.list_machine_ids() == {machine_id}


def test_max_lifetime_deletes_machine(app: Flask) -> None:
    provider = InMemoryProvider(ready_after_polls=1)
    machine_id = launch(app)
    now = [utcnow()]
    worker = reconciler(app, provider)
    worker.clock = lambda: now[0]
    worker.run_once()
    now[0] = now[0] + timedelta(days=30)
    worker.run_once()
    row = machine(app, machine_id)
    assert row.state == "deleted"
    assert any("maximum lifetime" in e.message for e in row.events)


def test_concurrent_workers_launch_each_machine_once(app: Flask) -> None:
    provider = InMemoryProvider(ready_after_polls=100)
    ids = [launch(app, "scientist", "ccp4"), launch(app, "neutron", "mantid"),
           launch(app, "admin", "dawn")]
    workers = [reconciler(app, provider) for _ in range(3)]
    errors: list[BaseException] = []

    def run(worker: Reconciler) -> None:
        try:
            worker.run_once()
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(w,)) for w in workers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert not errors
    for machine_id in ids:
        events = [e.to_state for e in machine(app, machine_id).events]
        assert events.count("provisioning") == 1, events
    assert provider.calls["launch"] <= 3 + 3  # a worker may relaunch, never double-record


def test_request_launch_rules(app: Flask, settings_override: dict[str, Any]) -> None:
    import pytest

    from daaas.portal.errors import Conflict, InvalidInput, NotFound

    rt = app.extensions["daaas"]
    with unit_of_work(rt.session_factory) as db:
        from daaas.portal.auth.service import get_user

        user = get_user(db, "neutron")
        with pytest.raises(NotFound):
            service.request_launch(db, rt.settings, rt.catalogue, user, "ccp4")
        with pytest.raises(InvalidInput, match="flavor"):
            service.request_launch(db, rt.settings, rt.catalogue, user, "mantid", "huge")
        for _ in range(rt.settings.max_machines_per_user):
            service.request_launch(db, rt.settings, rt.catalogue, user, "mantid")
        with pytest.raises(Conflict, match="Delete one"):
            service.request_launch(db, rt.settings, rt.catalogue, user, "mantid")
