"""Shared parts of the contextualisation tests: a cloud double and what a VM reads at boot.

The double is a real Provider subclass (like the doubles in portal.providers) whose machines
stay RUNNING, so only the machine's own report can make them ready; it keeps each LaunchSpec the
way a cloud keeps a server's user-data.
"""

from __future__ import annotations

import gzip
import json
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

import yaml
from flask import Flask
from sqlalchemy import select

from daaas.portal.bootstrap.models import MachineContext
from daaas.portal.config import resolve_secret_key
from daaas.portal.db import utcnow, worker_session_factory
from daaas.portal.machines.models import Machine
from daaas.portal.machines.reconciler import Reconciler
from daaas.portal.providers import LaunchSpec, ProviderUnavailable
from tests.support.cloudinit import require_cloudinit_python
from tests.support.machines import launch
from tests.support.providers import NeverReadyProvider


class RecordingProvider(NeverReadyProvider):
    """Machines stay RUNNING; every LaunchSpec is kept, last one per machine in ``specs``."""

    name = "recording"

    def __init__(self) -> None:
        super().__init__()
        self.specs: dict[str, LaunchSpec] = {}
        self.launches: list[LaunchSpec] = []

    def launch(self, spec: LaunchSpec) -> None:
        """Keep the spec, then launch as the parent does."""
        with self._lock:
            self.specs[spec.machine_id] = spec
            self.launches.append(spec)
        super().launch(spec)


class CloudInitProvider(RecordingProvider):
    """A cloud whose machines set themselves up with cloud-init and report when ready."""

    name = "cloud-init-double"
    uses_cloud_init = True


class FlakyCloud(CloudInitProvider):
    """Takes the first launch (user-data and all) but answers as if the cloud timed out."""

    name = "flaky-cloud"

    def launch(self, spec: LaunchSpec) -> None:
        """The first call keeps the spec and raises ProviderUnavailable; later ones launch."""
        first = not self.launches
        super().launch(spec)
        if first:
            raise ProviderUnavailable("The cloud did not answer in time.", "timeout")


def reconciler(app: Flask, provider: CloudInitProvider | RecordingProvider,
               clock: Callable[[], datetime] = utcnow) -> Reconciler:
    """A reconciler on the app's database, settings and secret key, as `daaas worker` builds."""
    settings = app.extensions["daaas"].settings
    return Reconciler(worker_session_factory(settings.effective_database_url), provider,
                      secret_key=resolve_secret_key(settings), ready_timeout_seconds=600,
                      clock=clock, settings=settings)


class Cloud:
    """One cloud double and one reconciler over it, as a site runs them."""

    def __init__(self, app: Flask, provider: CloudInitProvider | None = None) -> None:
        self.app = app
        self.provider = provider or CloudInitProvider()
        self.hours_ago = 0.0
        self.worker = reconciler(app, self.provider,
                                 clock=lambda: utcnow() - timedelta(hours=self.hours_ago))

    def launch(self, environment: str = "ccp4", hours_ago: float = 0) -> tuple[str, str]:
        """Launch a machine through one reconciler cycle (``hours_ago`` on the worker's clock);
        return its id and the bootstrap token its user-data carries."""
        machine_id = launch(self.app, environment=environment)
        self.hours_ago = hours_ago
        try:
            self.worker.run_once()
        finally:
            self.hours_ago = 0
        assert machine_row(self.app, machine_id).state == "provisioning"
        return machine_id, self.document(machine_id)["token"]

    def document(self, machine_id: str) -> dict[str, Any]:
        """The machine's /etc/daaas/bootstrap.json, read from the user-data it was given."""
        user_data = self.provider.specs[machine_id].user_data
        assert user_data is not None
        return bootstrap_document(user_data)

    def cycle(self) -> None:
        self.worker.run_once()


def secret_key(app: Flask) -> str:
    return resolve_secret_key(app.extensions["daaas"].settings)


def cloud_config(user_data: bytes) -> dict[str, Any]:
    """Parse user-data as cloud-init would (gunzip if needed)."""
    if user_data[:2] == b"\x1f\x8b":
        user_data = gzip.decompress(user_data)
    text = user_data.decode()
    assert text.startswith("#cloud-config\n")
    config: dict[str, Any] = yaml.safe_load(text)
    return config


def bootstrap_document(user_data: bytes) -> dict[str, Any]:
    """Return /etc/daaas/bootstrap.json as cloud-init would write it from the user-data."""
    files = {entry["path"]: entry for entry in cloud_config(user_data)["write_files"]}
    document: dict[str, Any] = json.loads(files["/etc/daaas/bootstrap.json"]["content"])
    return document


def machine_row(app: Flask, machine_id: str) -> Machine:
    with app.extensions["daaas"].session_factory() as db:
        row = db.get(Machine, machine_id)
        assert row is not None
        _ = row.events
        return row


def context_row(app: Flask, machine_id: str) -> dict[str, Any]:
    """Every column of the machine's machine_contexts row, as stored."""
    with app.extensions["daaas"].session_factory() as db:
        row = db.execute(select(MachineContext.__table__)
                         .where(MachineContext.machine_id == machine_id)).mappings().one()
        return dict(row)


def snapshot(app: Flask, machine_id: str) -> tuple[Any, ...]:
    """What a refused request must leave alone: the context row, the state and the events."""
    machine = machine_row(app, machine_id)
    return (context_row(app, machine_id), machine.state, machine.error_reason,
            [(e.from_state, e.to_state) for e in machine.events])


def cloudinit_python() -> str:
    """Debian's python3 with the cloudinit module; skip (fail in CI) without it."""
    return require_cloudinit_python()
