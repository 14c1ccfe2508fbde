"""Shared pieces of the HPC tests: the real test cluster, its users, bounded waits.

The cluster comes from ``eval "$(bash .ci/slurm.sh DIR)"``, which starts munged, slurmctld,
slurmd and slurmrestd on 127.0.0.1 and creates the Unix users the jobs run as. Without it the
Slurm tests are skipped locally and fail in CI.
"""

from __future__ import annotations

import os
import pwd
import time
from dataclasses import dataclass
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from daaas.portal.auth.service import create_token, create_user
from daaas.portal.db import unit_of_work
from daaas.portal.hpc.observer import JobObserver

PASSWORD = "hpc-test-password"
FINAL = {"COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "NODE_FAIL", "OUT_OF_MEMORY", "ENDED"}


@dataclass(frozen=True)
class SlurmCluster:
    """Where the test cluster is and who may use it."""

    url: str
    key_file: str
    name: str
    partition: str
    users: tuple[str, ...]


def slurm_cluster() -> SlurmCluster:
    """Return the running test cluster; skip (locally) or fail (CI) when there is none."""
    url = os.environ.get("DAAAS_TEST_SLURM_URL")
    if not url:
        if os.environ.get("CI"):
            pytest.fail("CI must test HPC against a real Slurm: DAAAS_TEST_SLURM_URL is not set. "
                        "Run `eval \"$(bash .ci/slurm.sh /tmp/daaas-slurm)\"` before pytest.")
        pytest.skip("DAAAS_TEST_SLURM_URL not set: start the test cluster with "
                    "`eval \"$(bash .ci/slurm.sh /tmp/daaas-slurm)\"`")
    return SlurmCluster(url, os.environ["DAAAS_TEST_SLURM_JWT_KEY"],
                       os.environ.get("DAAAS_TEST_SLURM_CLUSTER", "daaas-test"),
                       os.environ.get("DAAAS_TEST_SLURM_PARTITION", "debug"),
                       tuple(os.environ.get("DAAAS_TEST_SLURM_USERS", "hpc-alice hpc-bob")
                             .split()))


slurm_cluster.__test__ = False  # type: ignore[attr-defined]  # a helper, not a test
SlurmCluster.__test__ = False  # type: ignore[attr-defined]


def hpc_settings(base: dict[str, Any], cluster: SlurmCluster, **extra: Any) -> dict[str, Any]:
    """Return portal settings pointing at the test cluster."""
    return {**base, "hpc_slurmrestd_url": cluster.url, "hpc_jwt_key_file": cluster.key_file,
            "hpc_cluster": cluster.name, "hpc_slurmctld_host": "127.0.0.1", **extra}


def portal_user(app: Flask, username: str) -> dict[str, str]:
    """Create the portal account of a Unix user of the cluster (same uid, may launch Mantid
    machines) and return bearer headers for it."""
    account = pwd.getpwnam(username)
    with unit_of_work(app.extensions["daaas"].session_factory) as db:
        user = create_user(db, app.extensions["daaas"].settings, username, PASSWORD,
                           instruments=["WISH"])
        user.uid, user.gid = account.pw_uid, account.pw_gid
        db.flush()
        return {"Authorization": f"Bearer {create_token(db, user, 'hpc-test', 1)[1]}"}


def observe(app: Flask) -> int:
    """Run the worker's look at the cluster once (what it does every few seconds): the pages
    and the API show job states as of its last look. Return how many users it listed."""
    rt = app.extensions["daaas"]
    return JobObserver(rt.session_factory, rt.settings).observe()


def wait_for(client: FlaskClient, headers: dict[str, str], job_id: int, states: set[str],
             timeout: float = 60.0) -> dict[str, Any]:
    """Let the worker look at the cluster and poll the API until the job is in one of
    ``states`` (bounded); return it."""
    deadline = time.monotonic() + timeout
    while True:
        observe(client.application)
        response = client.get(f"/api/v1/jobs/{job_id}", headers=headers)
        assert response.status_code == 200, response.get_json()
        job: dict[str, Any] = response.get_json()
        if job["state"] in states:
            return job
        assert time.monotonic() < deadline, f"job {job_id} still {job['state']} after {timeout}s"
        assert job["state"] not in FINAL, f"job {job_id} ended {job['state']}: {job['reason']}"
        time.sleep(0.5)
