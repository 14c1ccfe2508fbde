"""A running HPC job launched from a machine holds off its idle stop, against the real test
Slurm (slurmrestd, per-user JWTs): while Slurm runs the job the machine stays ready past its
idle time; once Slurm says the job ended the worker, asking Slurm itself (the portal's row
still says RUNNING, as when nobody opened the jobs page), stops the machine."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import update

from daaas.portal.db import unit_of_work
from daaas.portal.hpc.models import HpcJob
from tests.support.hpc import SlurmCluster, hpc_settings, portal_user, slurm_cluster, wait_for
from tests.support.machines import ManualClock, machine, policy_reconciler
from tests.support.providers import InMemoryProvider

MIN = timedelta(minutes=1)


@pytest.fixture
def cluster() -> SlurmCluster:
    """The running test cluster (skipped locally, failed in CI, when missing)."""
    return slurm_cluster()


@pytest.fixture
def settings_override(settings_override: dict[str, Any], cluster: SlurmCluster) -> dict[str, Any]:
    return {**hpc_settings(settings_override, cluster), "provider": "memory",
            "idle_warning_minutes": 0}


def state_at(app: Flask, provider: InMemoryProvider, machine_id: str, when: datetime) -> str:
    clock = ManualClock()
    clock.now = when
    policy_reconciler(app, clock, provider).run_once()
    return machine(app, machine_id).state


def test_a_running_job_from_the_machine_keeps_it_from_the_idle_stop(
        app: Flask, client: FlaskClient, cluster: SlurmCluster) -> None:
    alice = portal_user(app, cluster.users[0])
    provider = InMemoryProvider(ready_after_polls=1)
    launched = client.post("/api/v1/machines", json={"environment": "mantid"}, headers=alice)
    assert launched.status_code == 202, launched.get_json()
    machine_id = launched.get_json()["id"]
    policy_reconciler(app, ManualClock(), provider).run_once()
    row = machine(app, machine_id)
    ready_at, idle = row.state_changed_at, row.environment.limits.idle_timeout_minutes
    job = client.post("/api/v1/jobs", json={"script": "#!/bin/bash\nsleep 300\n",
                                            "machine_id": machine_id}, headers=alice).get_json()
    try:
        assert job["machine_id"] == machine_id, job
        wait_for(client, alice, job["id"], {"RUNNING"}, timeout=30)
        assert state_at(app, provider, machine_id, ready_at + (idle + 60) * MIN) == "ready"
        cancelled = client.delete(f"/api/v1/jobs/{job['id']}", headers=alice)
        assert cancelled.status_code == 202, cancelled.get_json()
        wait_for(client, alice, job["id"], {"CANCELLED"}, timeout=30)
        with unit_of_work(app.extensions["daaas"].session_factory) as db:  # a stale row
            db.execute(update(HpcJob).where(HpcJob.slurm_job_id == job["id"])
                       .values(state="RUNNING", ended_at=None))
        assert state_at(app, provider, machine_id, ready_at + (idle + 61) * MIN) == "stopping"
        with app.extensions["daaas"].session_factory() as db:
            row = db.query(HpcJob).filter(HpcJob.slurm_job_id == job["id"]).one()
            assert row.state == "CANCELLED"  # refreshed from Slurm by the worker
    finally:
        client.delete(f"/api/v1/jobs/{job['id']}", headers=alice)
