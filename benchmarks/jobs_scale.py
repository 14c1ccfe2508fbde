"""The Jobs pages at scale (issue 19): what a view costs, and what the worker's look costs.

    .venv/bin/python benchmarks/jobs_scale.py [--sizes 10,100,1000] [--requests 50]

For each size N it builds a fresh SQLite database with the demo users, runs the real
application in-process (Flask test client) with a batch-system double registered as the HPC
backend (it lists N running jobs of the scientist; the portal submitted half of them, the
other half were submitted elsewhere), and prints:

- the worker's look (:class:`daaas.portal.hpc.observer.JobObserver`): batch-system requests,
  statements and writes of the first look (records the jobs from elsewhere) and of a look
  where nothing changed, and its time;
- GET /jobs, GET /api/v1/jobs and GET /jobs/<id>: SQL statements per request, batch-system
  requests per request (0 is the goal), median and p95 time of ``--requests`` requests.

No network, no cluster.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, ClassVar

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # for the tests' helpers

from daaas.portal import create_app
from daaas.portal.auth.service import create_token, get_user
from daaas.portal.config import Settings, load_settings
from daaas.portal.db import make_engine, make_session_factory, unit_of_work, utcnow
from daaas.portal.demo import create_demo_users
from daaas.portal.hpc.backend import HPC_BACKENDS, HpcBackend, JobInfo, JobSpec
from daaas.portal.hpc.models import HpcJob
from daaas.portal.hpc.observer import JobObserver
from daaas.portal.migrate import upgrade
from tests.support.scale import counting
from tests.support.web import sign_in


class Listing(HpcBackend):
    """Lists :attr:`JOBS` for their owner and counts every request (:attr:`calls`)."""

    cluster = "bench"
    JOBS: ClassVar[list[JobInfo]] = []
    calls: ClassVar[int] = 0

    @classmethod
    def from_settings(cls, settings: Settings) -> Listing:
        """Return the double (no settings read)."""
        return cls()

    def submit(self, username: str, spec: JobSpec) -> int:
        """Not used."""
        raise NotImplementedError

    def jobs(self, username: str) -> list[JobInfo]:
        """Return the jobs of ``username`` (one request)."""
        Listing.calls += 1
        return [job for job in self.JOBS if job.user == username]

    def job(self, username: str, job_id: int) -> JobInfo | None:
        """Return one job (one request)."""
        Listing.calls += 1
        return next((j for j in self.JOBS if j.job_id == job_id and j.user == username), None)

    def release(self, username: str, job_id: int) -> None:
        """Not used."""

    def cancel(self, username: str, job_id: int) -> None:
        """Not used."""


def spread(values: list[float]) -> str:
    """Return 'median x ms, p95 y ms' of ``values`` (milliseconds)."""
    ordered = sorted(values)
    p95 = ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]
    return f"median {statistics.median(ordered):7.2f} ms, p95 {p95:7.2f} ms"


def database(folder: Path) -> str:
    """Return the URL of a fresh, migrated SQLite database with the demo users."""
    url = f"sqlite:///{folder / 'portal.db'}"
    engine = make_engine(url)
    upgrade(engine)
    settings = load_settings({"database_url": url, "var_dir": str(folder)}, environ={})
    with unit_of_work(make_session_factory(engine)) as db:
        create_demo_users(db, settings)
    engine.dispose()
    return url


def add_jobs(factory: Any, size: int) -> None:
    """Let the double list ``size`` running jobs of the scientist; record every other one as
    submitted through the portal."""
    Listing.JOBS = []
    with unit_of_work(factory) as db:
        user = get_user(db, "scientist")
        for job_id in range(1, size + 1):
            Listing.JOBS.append(JobInfo(
                job_id=job_id, name=f"job {job_id}", user="scientist", uid=None,
                state="RUNNING", reason="", partition="debug", exit_code=None, work_dir="/tmp",
                output_path=f"/tmp/job-{job_id}.out", submitted_at=utcnow(), started_at=utcnow(),
                ended_at=None))
            if job_id % 2:
                db.add(HpcJob(user=user, cluster=Listing.cluster, slurm_job_id=job_id,
                              name=f"job {job_id}", partition="debug", state="PENDING",
                              work_dir="/tmp", output_path=f"/tmp/job-{job_id}.out",
                              submitted_at=utcnow(), updated_at=utcnow()))


def timed_look(observer: JobObserver, engine: Any) -> tuple[int, dict[str, int], float]:
    """Run one look; return the batch-system requests, statement counts and milliseconds."""
    before = Listing.calls
    with counting(engine) as counts:
        started = time.perf_counter()
        observer.observe()
        elapsed = (time.perf_counter() - started) * 1000
    return Listing.calls - before, counts(), elapsed


def measure(size: int, requests: int) -> None:
    """Print the figures for ``size`` jobs."""
    with tempfile.TemporaryDirectory(prefix="daaas-jobs-bench-") as folder:
        url = database(Path(folder))
        app = create_app({"database_url": url, "var_dir": folder, "secret_key": "bench",
                          "provider": "tests.support.providers:InMemoryProvider",
                          "hpc_backend": "listing",  # a cluster on offer, never asked:
                          "hpc_slurmrestd_url": "http://127.0.0.1:9"})
        rt = app.extensions["daaas"]
        try:
            add_jobs(rt.session_factory, size)
            observer = JobObserver(rt.session_factory, rt.settings)
            print(f"\n{size} jobs (half submitted through the portal)")
            for label in ("first look", "look, nothing changed"):
                calls, counts, elapsed = timed_look(observer, rt.engine)
                print(f"  worker {label:<26} {calls} request(s), {counts['statements']:4d} "
                      f"statements, {counts['writes']:4d} writes, {elapsed:8.2f} ms")
            with unit_of_work(rt.session_factory) as db:
                token = create_token(db, get_user(db, "scientist"), "bench", 1)[1]
            client, api = app.test_client(), {"Authorization": f"Bearer {token}"}
            sign_in(client, "scientist", "scientist-demo")
            pages: list[tuple[str, dict[str, str]]] = [
                ("/jobs", {}), ("/api/v1/jobs", api), (f"/jobs/{size}", {})]
            for path, headers in pages:
                statements, times = view(app, client, path, headers, requests)
                print(f"  GET {path:<28} {statements:3d} statements, "
                      f"{requests_of(client, path, headers)} batch-system requests,"
                      f" {spread(times)}")
        finally:
            rt.engine.dispose()


def view(app: Any, client: Any, path: str, headers: dict[str, str],
         requests: int) -> tuple[int, list[float]]:
    """Return the statements of one GET of ``path`` and the times of ``requests`` more."""
    assert client.get(path, headers=headers).status_code == 200, path
    with counting(app.extensions["daaas"].engine) as counts:
        assert client.get(path, headers=headers).status_code == 200
    times = []
    for _ in range(requests):
        started = time.perf_counter()
        client.get(path, headers=headers)
        times.append((time.perf_counter() - started) * 1000)
    return counts()["statements"], times


def requests_of(client: Any, path: str, headers: dict[str, str]) -> int:
    """Return how many batch-system requests one GET of ``path`` made."""
    before = Listing.calls
    client.get(path, headers=headers)
    return Listing.calls - before


def main(argv: list[str] | None = None) -> None:
    """Parse the arguments and print the figures for each size."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", default="10,100,1000")
    parser.add_argument("--requests", type=int, default=50)
    args = parser.parse_args(argv)
    with HPC_BACKENDS.registered("listing", Listing):
        for size in (int(s) for s in args.sizes.split(",")):
            measure(size, args.requests)


if __name__ == "__main__":
    main()
