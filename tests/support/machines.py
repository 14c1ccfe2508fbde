"""Launching through the service and driving the reconciler by hand, for integration tests."""

from __future__ import annotations

from flask import Flask

from daaas.portal.auth.service import get_user
from daaas.portal.db import unit_of_work, worker_session_factory
from daaas.portal.machines import service
from daaas.portal.machines.models import Machine
from daaas.portal.machines.reconciler import Reconciler
from daaas.portal.providers import Provider


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


def machine(app: Flask, machine_id: str) -> Machine:
    """Return the machine row with its events and user loaded (usable after the session)."""
    with app.extensions["daaas"].session_factory() as db:
        row = db.get(Machine, machine_id)
        assert row is not None
        _ = row.events, row.user
        return row


SECRET_KEY = "test-secret-key"
