"""Launching through the service and driving the reconciler by hand, for integration tests."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from daaas.catalogue import load_catalogue
from daaas.portal.auth.service import get_user
from daaas.portal.config import load_settings
from daaas.portal.db import (
    make_engine,
    make_session_factory,
    unit_of_work,
    utcnow,
    worker_session_factory,
)
from daaas.portal.machines import service
from daaas.portal.machines.models import Machine
from daaas.portal.machines.reconciler import Reconciler
from daaas.portal.machines.worker import make_reconciler
from daaas.portal.notifications.mail import Mailer
from daaas.portal.notifications.models import Notification
from daaas.portal.providers import Provider
from tests.integration.process_scan import session_processes
from tests.support.paths import ROOT
from tests.support.providers import InMemoryProvider
from tests.support.web import sign_in

T = TypeVar("T")


def launch(app: Flask, username: str = "scientist", environment: str = "ccp4") -> str:
    """Ask for a machine the way the portal does; return its id."""
    rt = app.extensions["daaas"]
    with unit_of_work(rt.session_factory) as db:
        machine = service.request_launch(db, rt.settings, rt.catalogue, get_user(db, username),
                                         environment)
        return machine.id


def reconciler(app: Flask, provider: Provider, timeout: float = 600) -> Reconciler:
    """Return a reconciler on its own database connections, as `daaas worker` runs one."""
    factory = worker_session_factory(app.extensions["daaas"].settings.effective_database_url)
    return Reconciler(factory, provider, secret_key=SECRET_KEY,
                      ready_timeout_seconds=timeout)


class ManualClock:
    """A clock the test moves by setting ``now``; starts at the real time."""

    def __init__(self) -> None:
        self.now = utcnow()

    def __call__(self) -> datetime:
        return self.now


def policy_reconciler(app: Flask, clock: Callable[[], datetime], provider: Provider,
                      mailer: Mailer | None = None) -> Reconciler:
    """Return a reconciler as `daaas worker` builds one, with the app's settings (so lifetime
    warnings, idle stops and e-mail are on) and ``clock``; ``mailer`` defaults to the settings'."""
    rt = app.extensions["daaas"]
    return Reconciler(worker_session_factory(rt.settings.effective_database_url), provider,
                      secret_key=SECRET_KEY, ready_timeout_seconds=600, clock=clock,
                      settings=rt.settings, mailer=mailer)


def policy_worker(app: Flask, clock: Callable[[], datetime],
                  mailer: Mailer | None = None) -> Reconciler:
    """Return :func:`policy_reconciler` on an in-memory provider whose machines are ready
    after one poll (lifetime warnings, expiry and e-mail on)."""
    return policy_reconciler(app, clock, InMemoryProvider(ready_after_polls=1), mailer)


def ready_while_watched(app: Flask) -> tuple[ManualClock, Reconciler, str]:
    """Return (clock, worker, machine id): a :func:`policy_worker` on a manual clock and a
    CCP4 machine of the scientist's made ready by one cycle while they have the Analysis page
    open (so its readiness is not e-mailed)."""
    clock = ManualClock()
    worker = policy_worker(app, clock)
    machine_id = launch(app, environment="ccp4")
    on_the_page(app)
    worker.run_once()
    return clock, worker, machine_id


def machine(app: Flask, machine_id: str) -> Machine:
    """Return the machine row with its events and user loaded (usable after the session)."""
    with app.extensions["daaas"].session_factory() as db:
        row = db.get(Machine, machine_id)
        assert row is not None
        _ = row.events, row.user
        return row


SECRET_KEY = "test-secret-key"


def outbox(app: Flask) -> list[Notification]:
    """Return the e-mail outbox's rows, oldest first."""
    with app.extensions["daaas"].session_factory() as db:
        return list(db.scalars(select(Notification).order_by(Notification.id)))


def on_the_page(app: Flask) -> FlaskClient:
    """The scientist signed in with the Analysis page open (a browser request just now): a
    machine becoming ready is not e-mailed."""
    client = app.test_client()
    sign_in(client, "scientist", "scientist-demo")
    client.get("/analysis")
    return client


def at_once(count: int, call: Callable[[int], T]) -> list[T]:
    """Run ``call(i)`` for i in 0..count-1 in as many threads, all released at the same time
    by a barrier; return the results in the order of i."""
    barrier = threading.Barrier(count)

    def run(i: int) -> T:
        barrier.wait(10)
        return call(i)

    with ThreadPoolExecutor(count) as pool:
        return list(pool.map(run, range(count)))


def start_worker(override: dict[str, Any], provider: str, *, stdout: int | None = None,
                 **environ: str) -> subprocess.Popen[bytes]:
    """Start a real ``daaas worker`` process on the test's database and var_dir with
    ``provider`` (a registry name or ``module:Class``) and a 0.3 s cycle; ``environ`` adds
    settings as ``DAAAS_*`` variables (``DAAAS_WARM_POOLS="base-desktop=1"``); ``stdout``
    as for :class:`subprocess.Popen`. The caller ends it (terminate, or SIGKILL for a crash
    test) and waits for it."""
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("DAAAS_")},
           "DAAAS_DATABASE_URL": override["database_url"], "DAAAS_VAR_DIR": override["var_dir"],
           "DAAAS_SECRET_KEY": override["secret_key"], "DAAAS_PROVIDER": provider,
           "DAAAS_RECONCILE_INTERVAL_SECONDS": "0.3", **environ}
    return subprocess.Popen([sys.executable, "-c", "from daaas.portal.cli import main; main()",
                             "worker"], cwd=ROOT, env=env, stdout=stdout)


def wait_for(check: Callable[[], object], timeout: float, what: str) -> None:
    """Return once ``check()`` is true (asked every 0.2 s); AssertionError naming ``what``
    after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def launch_from_settings(override: dict[str, Any], username: str = "scientist",
                         environment: str = "base-desktop") -> str:
    """Ask for a machine as the portal does, without an app (for tests whose worker is a
    separate process); return its id. ``override`` is the test's settings override."""
    settings = load_settings(override, environ={})
    factory = make_session_factory(make_engine(settings.effective_database_url))
    with unit_of_work(factory) as db:
        return service.request_launch(db, settings, load_catalogue(Path(settings.catalogue_dir)),
                                      get_user(db, username), environment).id


def machines_in(url: str) -> list[Machine]:
    """Return every machine in the database at ``url``, oldest first, with its user loaded
    (read on a connection of its own, as another process would)."""
    with make_session_factory(make_engine(url))() as db:
        found = list(db.scalars(select(Machine).order_by(Machine.created_at)))
        for row in found:
            _ = row.user
        return found


def state_of(url: str, machine_id: str) -> str:
    """Return the state of machine ``machine_id`` in the database at ``url`` ("" if none)."""
    with make_session_factory(make_engine(url))() as db:
        return db.scalar(select(Machine.state).where(Machine.id == machine_id)) or ""


def launch_ready(app: Flask, username: str = "scientist", environment: str = "base-desktop",
                 experiment: dict[str, Any] | None = None, timeout: float = 60) -> str:
    """Ask for a machine as the portal does, then run the app's own reconciler (its provider,
    as ``daaas worker`` builds it) until the machine is ready; return its id. AssertionError
    with the reason when it fails, or after ``timeout`` seconds."""
    rt = app.extensions["daaas"]
    with unit_of_work(rt.session_factory) as db:
        machine_id = service.request_launch(db, rt.settings, rt.catalogue,
                                            get_user(db, username), environment,
                                            experiment=experiment).id
    worker = make_reconciler(rt)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        worker.run_once()
        with rt.session_factory() as db:
            row = db.get(Machine, machine_id)
            assert row is not None and row.state != "error", row and row.error_reason
            if row.state == "ready":
                return machine_id
        time.sleep(0.3)
    raise AssertionError(f"{username}'s machine did not become ready in {timeout:.0f} s")


def delete_now(app: Flask, username: str, machine_id: str) -> None:
    """Ask, as ``username``, for the machine's deletion and run one cycle of the app's own
    reconciler; AssertionError if a process of its session is left."""
    rt = app.extensions["daaas"]
    with unit_of_work(rt.session_factory) as db:
        service.request_delete(db, get_user(db, username), machine_id)
    make_reconciler(rt).run_once()
    assert session_processes(machine_id) == []
