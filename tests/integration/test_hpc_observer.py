"""The worker's look at Slurm (issue 19) against the real test cluster: the reconciler's cycle
lists the watched users' jobs and records what changed, so a job cancelled behind the portal's
back (scancel on a terminal) shows as cancelled on the next look, and a job submitted elsewhere
gets a row; between looks the pages show the last recorded state and its time, and nothing is
written for a job that did not change."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import suppress
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from daaas.portal import create_app
from daaas.portal.errors import PortalError
from daaas.portal.hpc.backend import JobSpec
from daaas.portal.hpc.models import HpcJob, HpcObservation
from daaas.portal.hpc.slurm import SlurmRestBackend
from daaas.portal.machines.reconciler import Reconciler
from tests.support.hpc import SlurmCluster, hpc_settings, portal_user, slurm_cluster

SLEEP = "#!/bin/bash\nsleep 120\n"
INTERVAL = 1.0


@pytest.fixture
def cluster() -> SlurmCluster:
    return slurm_cluster()


@pytest.fixture
def app(settings_override: dict[str, Any], cluster: SlurmCluster) -> Iterator[Flask]:
    application = create_app({**hpc_settings(settings_override, cluster), "provider": "memory",
                              "hpc_observe_interval_seconds": INTERVAL})
    yield application
    application.extensions["daaas"].engine.dispose()


def worker(app: Flask) -> Reconciler:
    """The reconciler as `daaas worker` runs it (its cycle ends with the looks)."""
    rt = app.extensions["daaas"]
    return Reconciler(rt.session_factory, rt.provider, secret_key="k",
                      ready_timeout_seconds=600, settings=rt.settings)


def row(app: Flask, job_id: int) -> HpcJob:
    with app.extensions["daaas"].session_factory() as db:
        found = db.scalar(select(HpcJob).where(HpcJob.slurm_job_id == job_id))
        assert found is not None, job_id
        return found


def look(app: Flask, reconciler: Reconciler, job_id: int, until: set[str],
         timeout: float = 60.0) -> HpcJob:
    """Run worker cycles (one look per interval) until the job's row is in ``until``."""
    deadline = time.monotonic() + timeout
    while True:
        reconciler.run_once()
        found = row(app, job_id)
        if found.state in until:
            return found
        assert time.monotonic() < deadline, f"job {job_id} still {found.state}"
        time.sleep(INTERVAL)


def api_job(client: FlaskClient, headers: dict[str, str], job_id: int) -> dict[str, Any]:
    answer = client.get(f"/api/v1/jobs/{job_id}", headers=headers)
    assert answer.status_code == 200, answer.get_json()
    job: dict[str, Any] = answer.get_json()
    return job


def test_the_worker_records_a_state_change_and_a_job_from_elsewhere(
        app: Flask, cluster: SlurmCluster) -> None:
    username = cluster.users[0]
    headers = portal_user(app, username)
    client = app.test_client()
    slurm = SlurmRestBackend(cluster.url, "v0.0.38", cluster.name, cluster.key_file)
    submitted = client.post("/api/v1/jobs", json={"script": SLEEP, "name": "observed"},
                            headers=headers)
    assert submitted.status_code == 201, submitted.get_json()
    job_id = submitted.get_json()["id"]
    home = f"/home/{username}"
    elsewhere = slurm.submit(username, JobSpec("from-a-terminal", SLEEP, home,
                                               f"{home}/elsewhere-%j.out"))
    try:
        assert api_job(client, headers, job_id)["observed_at"] is None  # not looked at yet
        reconciler = worker(app)
        running = look(app, reconciler, job_id, {"RUNNING"})
        shown = api_job(client, headers, job_id)
        assert shown["state"] == "RUNNING" and shown["observed_at"]
        assert shown["links"] == {"page": f"/jobs/{job_id}",
                                  "output": f"/api/v1/jobs/{job_id}/output"}
        other = row(app, elsewhere)
        assert (other.origin, other.name, other.state in {"PENDING", "RUNNING"}) == (
            "cluster", "from-a-terminal", True)

        time.sleep(INTERVAL)
        reconciler.run_once()  # another look: nothing changed, nothing written
        assert row(app, job_id).updated_at == running.updated_at
        with app.extensions["daaas"].session_factory() as db:
            seen = db.scalar(select(HpcObservation))
            assert seen is not None and seen.observed_at is not None
            assert seen.observed_at > running.updated_at and seen.problem == ""

        slurm.cancel(username, job_id)  # behind the portal's back, as scancel would
        assert api_job(client, headers, job_id)["state"] == "RUNNING"  # until the next look
        time.sleep(INTERVAL)
        cancelled = look(app, reconciler, job_id, {"CANCELLED"})
        assert cancelled.updated_at > running.updated_at
        shown = api_job(client, headers, job_id)
        assert shown["state"] == "CANCELLED" and shown["final"]
    finally:
        for job in (job_id, elsewhere):
            with suppress(PortalError):  # one has ended already
                slurm.cancel(username, job)
