"""Lists at scale: every list endpoint runs as many SQL statements for 100 machines (or jobs) as
for 10; the polled lists answer 304 while nothing changed.

Statements are counted with an SQLAlchemy event listener on the portal's engine
(:func:`tests.support.scale.counting`); the HPC list gets its jobs from a batch-system double
registered as a backend, as tests register providers.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, ClassVar

import pytest
from flask import Flask
from flask.testing import FlaskClient

from daaas.portal.auth.service import get_user
from daaas.portal.config import Settings
from daaas.portal.db import unit_of_work, utcnow
from daaas.portal.experiments.binding import experiment_for_launch
from daaas.portal.hpc.backend import HPC_BACKENDS, HpcBackend, JobInfo, JobSpec
from daaas.portal.hpc.models import HpcJob
from daaas.portal.hpc.observer import JobObserver
from tests.support.scale import add_machines, counting
from tests.support.web import bearer, sign_in

SMALL, LARGE = 10, 100


@pytest.fixture
def settings_override(settings_override: dict[str, Any]) -> dict[str, Any]:
    """The conftest's settings on the in-memory provider and the listing batch system."""
    return {**settings_override, "provider": "memory", "hpc_backend": "listing",
            "hpc_slurmrestd_url": "http://127.0.0.1:9"}  # a cluster on offer (never asked)


class ListingBatchSystem(HpcBackend):
    """A batch system that lists :attr:`JOBS` for everyone (a double for the jobs list)."""

    cluster = "test-cluster"
    JOBS: ClassVar[list[JobInfo]] = []

    @classmethod
    def from_settings(cls, settings: Settings) -> ListingBatchSystem:
        """Return the double (no settings read)."""
        return cls()

    def submit(self, username: str, spec: JobSpec) -> int:
        """Not used by these tests."""
        raise NotImplementedError

    def jobs(self, username: str) -> list[JobInfo]:
        """Return :attr:`JOBS` that are ``username``'s."""
        return [job for job in self.JOBS if job.user == username]

    def job(self, username: str, job_id: int) -> JobInfo | None:
        """Return the listed job ``job_id`` of ``username``, or None."""
        return next((j for j in self.jobs(username) if j.job_id == job_id), None)

    def release(self, username: str, job_id: int) -> None:
        """Nothing to release."""

    def cancel(self, username: str, job_id: int) -> None:
        """Nothing to cancel."""


@pytest.fixture(autouse=True)
def _listing_batch_system() -> Iterator[None]:
    ListingBatchSystem.JOBS = []
    with HPC_BACKENDS.registered("listing", ListingBatchSystem):
        yield


def add_jobs(app: Flask, username: str, count: int) -> None:
    """Let the batch system list ``count`` more jobs of ``username``; the portal knows half."""
    rt = app.extensions["daaas"]
    first = len(ListingBatchSystem.JOBS) + 1
    with unit_of_work(rt.session_factory) as db:
        user = get_user(db, username)
        for job_id in range(first, first + count):
            ListingBatchSystem.JOBS.append(JobInfo(
                job_id=job_id, name=f"job {job_id}", user=username, uid=None, state="RUNNING",
                reason="", partition="debug", exit_code=None, work_dir="/tmp",
                output_path="/tmp/out", submitted_at=utcnow(), started_at=None, ended_at=None))
            if job_id % 2:
                db.add(HpcJob(user=user, cluster=ListingBatchSystem.cluster,
                              slurm_job_id=job_id, name=f"job {job_id}", template="",
                              partition="debug", state="RUNNING", work_dir="/tmp",
                              output_path="/tmp/out", submitted_at=utcnow(),
                              updated_at=utcnow()))


def statements(app: Flask, client: FlaskClient, path: str,
               headers: dict[str, str] | None = None) -> int:
    """GET ``path`` (twice: the first warms caches and writes what a first visit writes) and
    return how many SQL statements the second ran."""
    assert client.get(path, headers=headers).status_code == 200
    with counting(app.extensions["daaas"].engine) as counts:
        response = client.get(path, headers=headers)
    assert response.status_code == 200, response.get_data(as_text=True)[:300]
    return counts()["statements"]


def experiment(app: Flask, username: str) -> dict[str, Any]:
    rt = app.extensions["daaas"]
    with rt.session_factory() as db:
        user = get_user(db, username)
        mine = rt.experiments.investigations_for(username)
        found = experiment_for_launch(db, rt, user, "ccp4", mine[0].id)
    assert found is not None
    return found


def grow(app: Flask, count: int, bound: dict[str, Any]) -> None:
    """Add ``count`` machines of the scientist's (half of them bound to ``bound``), the
    neutron scientist's and the admin's, and ``count`` jobs of the scientist's."""
    rt = app.extensions["daaas"]
    ccp4 = rt.catalogue.environments["ccp4"]
    add_machines(rt.session_factory, ccp4, ["scientist"], count // 2)
    add_machines(rt.session_factory, ccp4, ["scientist"], count - count // 2, experiment=bound)
    add_machines(rt.session_factory, rt.catalogue.environments["mantid"], ["neutron", "admin"],
                 count)
    add_jobs(app, "scientist", count)
    JobObserver(rt.session_factory, rt.settings).observe()  # the worker's look at the cluster


def test_every_list_runs_as_many_statements_for_100_as_for_10(app: Flask) -> None:
    bound = experiment(app, "scientist")
    scientist, admin = app.test_client(), app.test_client()
    sign_in(scientist, "scientist", "scientist-demo")
    sign_in(admin, "admin", "admin-demo-pass")
    token = bearer(app, "scientist")
    lists: list[tuple[FlaskClient, str, dict[str, str] | None]] = [
        (scientist, "/api/v1/machines", token),
        (admin, "/api/v1/machines?all=1", None),
        (admin, "/admin/machines", None),
        (scientist, f"/api/v1/experiments/{bound['id']}", token),
        (scientist, f"/experiments/{bound['id']}", None),
        (scientist, "/api/v1/jobs", token),
        (scientist, "/jobs", None),
        (scientist, "/jobs/2", None),  # found by the worker's look (origin cluster)
        (scientist, "/analysis", None),
    ]
    grow(app, SMALL, bound)
    small = [statements(app, client, path, headers) for client, path, headers in lists]
    grow(app, LARGE - SMALL, bound)
    large = [statements(app, client, path, headers) for client, path, headers in lists]
    assert large == small, list(zip([path for _, path, _ in lists], small, large, strict=True))
    body = scientist.get("/api/v1/machines", headers=token).get_json()
    assert body["total"] == LARGE and len(body["machines"]) == LARGE  # all were listed
    jobs = scientist.get("/api/v1/jobs", headers=token).get_json()["jobs"]
    assert len(jobs) == LARGE
    assert scientist.get("/jobs").get_data(as_text=True).count('<tr data-job="') == LARGE


def test_the_polled_list_answers_304_until_something_changes(app: Flask,
                                                             client: FlaskClient) -> None:
    rt = app.extensions["daaas"]
    ids = add_machines(rt.session_factory, rt.catalogue.environments["ccp4"], ["scientist"], 3)
    token = bearer(app, "scientist")
    first = client.get("/api/v1/machines", headers=token)
    etag = first.headers["ETag"]
    assert first.status_code == 200 and "no-cache" in first.headers["Cache-Control"]
    again = client.get("/api/v1/machines", headers={**token, "If-None-Match": etag})
    assert again.status_code == 304 and again.get_data() == b""
    renamed = client.patch(f"/api/v1/machines/{ids[0]}", json={"name": "Renamed"},
                           headers=token)
    assert renamed.status_code == 200
    changed = client.get("/api/v1/machines", headers={**token, "If-None-Match": etag})
    assert changed.status_code == 200 and changed.headers["ETag"] != etag
    assert "Renamed" in changed.get_data(as_text=True)
    other = client.get("/api/v1/machines", headers={**bearer(app, "neutron"),
                                                    "If-None-Match": etag})
    assert other.status_code == 200  # another account's answer never stands for this one
