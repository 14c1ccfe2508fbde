"""The desktop status's long poll (issue 20, the click path) on SQLite and PostgreSQL.

A page waiting for "ready" asks ``/desktop-status?state=<known>&wait=<s>``; the answer comes
when the worker's commit changes the machine (a push: NOTIFY on PostgreSQL, the watch pipes on
SQLite, the hub itself in one process), never later than the bound, with no database
connection held while waiting; another user gets the same 404 as without a wait.
"""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
import requests
from flask import Flask
from sqlalchemy import event

from tests.support.machines import launch, reconciler, state_of
from tests.support.providers import InMemoryProvider
from tests.support.web import bearer, served


@pytest.fixture
def settings_override(settings_override: dict[str, Any]) -> dict[str, Any]:
    return {**settings_override, "provider": "memory"}


@pytest.fixture
def server(app: Flask) -> Iterator[str]:
    with served(app) as url:
        yield url


class Checkouts:
    """Counts the connections of ``engine`` checked out of its pool now (and the most)."""

    def __init__(self, engine: Any) -> None:
        self.now = 0
        self.lock = threading.Lock()
        event.listen(engine, "checkout", self._out)
        event.listen(engine, "checkin", self._in)

    def _out(self, *_: Any) -> None:
        with self.lock:
            self.now += 1

    def _in(self, *_: Any) -> None:
        with self.lock:
            self.now -= 1


def poll(server: str, headers: dict[str, str], machine_id: str, state: str,
         wait: float) -> tuple[float, Any]:
    started = time.monotonic()
    answer = requests.get(f"{server}/api/v1/machines/{machine_id}/desktop-status",
                          params={"state": state, "wait": wait}, headers=headers, timeout=60)
    assert answer.status_code == 200, answer.text
    return time.monotonic() - started, answer.json()


def test_the_answer_comes_when_the_worker_makes_it_ready(app: Flask, server: str) -> None:
    machine_id = launch(app, "scientist", "ccp4")
    headers = bearer(app, "scientist")
    checkouts = Checkouts(app.extensions["daaas"].engine)
    worker = reconciler(app, InMemoryProvider(max_sessions=4))
    with ThreadPoolExecutor(1) as pool:
        waiting = pool.submit(poll, server, headers, machine_id, "requested", 20)
        time.sleep(1.0)
        assert not waiting.done()  # nothing changed: it waits
        assert checkouts.now == 0  # ... holding no database connection
        changed = time.monotonic()
        worker.run_once()  # requested -> provisioning (and on): the commit pushes
        _, answer = waiting.result(timeout=10)
        pushed = time.monotonic() - changed
    assert answer["state"] != "requested"
    assert pushed < 1.0, pushed  # the commit's push, not a timer


def test_the_wait_is_bounded_and_answers_at_once_when_the_state_differs(
        app: Flask, server: str) -> None:
    machine_id = launch(app, "scientist", "ccp4")
    headers = bearer(app, "scientist")
    took, answer = poll(server, headers, machine_id, "requested", 0.6)
    assert answer["state"] == "requested" and 0.55 < took < 3
    took, answer = poll(server, headers, machine_id, "ready", 20)  # it is not ready
    assert answer["state"] == "requested" and took < 1


def test_another_user_gets_a_404_without_waiting(app: Flask, server: str) -> None:
    machine_id = launch(app, "scientist", "ccp4")
    started = time.monotonic()
    answer = requests.get(f"{server}/api/v1/machines/{machine_id}/desktop-status",
                          params={"state": "requested", "wait": 20},
                          headers=bearer(app, "neutron"), timeout=30)
    assert answer.status_code == 404 and time.monotonic() - started < 2
    bad = requests.get(f"{server}/api/v1/machines/{machine_id}/desktop-status",
                       params={"wait": 31}, headers=bearer(app, "scientist"), timeout=10)
    assert bad.status_code == 400 and "wait" in bad.json()["error"]["message"]


CHANGE = """
import sys
from daaas.portal.db import unit_of_work, worker_session_factory
from daaas.portal.machines.changes import announce_changes
from daaas.portal.machines.models import Machine
from daaas.portal.machines.service import transition
from daaas.portal.machines.states import State
factory = worker_session_factory(sys.argv[1])
announce_changes(factory)  # as a worker's reconciler does
with unit_of_work(factory) as db:
    transition(db, db.get(Machine, sys.argv[2]), State.DELETING, "deleted by another process")
"""


def test_a_change_committed_by_another_process_is_pushed(app: Flask, server: str) -> None:
    """A worker in another process (another host on PostgreSQL) reaches the waiting page."""
    machine_id = launch(app, "scientist", "ccp4")
    headers = bearer(app, "scientist")
    url = app.extensions["daaas"].settings.effective_database_url
    with ThreadPoolExecutor(1) as pool:
        waiting = pool.submit(poll, server, headers, machine_id, "requested", 25)
        time.sleep(1.0)
        assert not waiting.done()
        changed = time.monotonic()
        subprocess.run([sys.executable, "-c", CHANGE, url, machine_id], check=True,
                       timeout=60)
        done = time.monotonic()
        _, answer = waiting.result(timeout=30)
        after = time.monotonic()
    assert answer["state"] == "deleting"
    assert after - done < 1.0, (done - changed, after - done)  # pushed, not the 25 s bound


def test_a_woken_worker_makes_a_desktop_up_at_launch_ready_in_the_same_cycle(app: Flask) -> None:
    """No interval between launch and ready: the woken cycle polls what it launched."""
    machine_id = launch(app, "scientist", "ccp4")
    worker = reconciler(app, InMemoryProvider(ready_after_polls=0))
    report = worker.run_asked()  # what the portal's wake-up runs
    assert report.launched == [machine_id]
    assert state_of(app.extensions["daaas"].settings.effective_database_url,
                    machine_id) == "ready"
