"""Launching through the service and driving the reconciler by hand, for integration tests."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from daaas.portal.auth.service import get_user
from daaas.portal.db import unit_of_work, utcnow, worker_session_factory
from daaas.portal.machines import service
from daaas.portal.machines.models import Machine
from daaas.portal.machines.reconciler import Reconciler
from daaas.portal.notifications.mail import Mailer
from daaas.portal.notifications.models import Notification
from daaas.portal.providers import Provider
from tests.support.web import sign_in


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
