"""The portal at scale: statement counts, the idle reconciler cycle, launch → provider latency.

    .venv/bin/python benchmarks/scale.py [--sizes 100,1000,10000] [--launches 40]
                                         [--idle-seconds 60]

For each size N (machines in the database, four events each, over three users; the
scientist's first experiment bound to a tenth of them; mixed states: 55 % ready, 15 % stopped,
25 % deleted, 5 % failed, the same at the provider) it builds a fresh database, runs the real
application in-process (Flask test client) and the real worker (the reconciler as
``daaas worker`` builds it, with the portal's settings and its /metrics file) on the in-memory
provider double (tests/support/providers.py), and prints:

- SQL statements per request of every list (counted with an SQLAlchemy event listener), and
  each list's median and p95 time;
- the idle reconciler cycle, as run every 2 s (the machines on their way are polled) and as run
  every 60 s (the ready and stopped ones too): median and p95 of the wall time, of the portal's
  time (the wall time less the provider's calls) and of the cycle's CPU time; transactions,
  statements and writes per cycle; and the phases that run less often (the idle-stop check
  every 60 s, the capacity and orphans every 30 s);
- the worker's CPU while it idles in its real loop (``run_forever``, interval 2 s) for
  ``--idle-seconds``, as % of one core, beside an empty portal's worker idling at the same time
  (both threads' own CPU clocks, so the ratio is of one run under one load);
- POST /api/v1/machines → ``provider.launch()`` called, with the worker in its loop: median and
  p95 of ``--launches`` launches spaced at random, and of the POST alone;
- first, for each size, the OpenStack provider's poll of that many servers (the real provider
  and openstacksdk, Nova faked at the HTTP edge in this process: tests/support/fake_nova.py),
  wall time and the polling thread's own CPU time.

SQLite in a temporary folder always; PostgreSQL too when DAAAS_TEST_POSTGRES_URL is set (a
database is created per size and dropped). No network, no cloud (the fake Nova listens on
127.0.0.1).
"""

from __future__ import annotations

import argparse
import gc
import os
import random
import statistics
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import partial
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import create_engine, text
from sqlalchemy.engine import Engine, make_url

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # for the tests' doubles

from daaas.portal import create_app
from daaas.portal.auth.service import create_token, get_user
from daaas.portal.config import load_settings
from daaas.portal.db import (
    make_engine,
    make_session_factory,
    unit_of_work,
    worker_session_factory,
)
from daaas.portal.demo import create_demo_users
from daaas.portal.experiments.binding import experiment_for_launch
from daaas.portal.experiments.demo import create_demo_experiments
from daaas.portal.machines.reconciler import CycleReport, Reconciler
from daaas.portal.metrics.worker import MeasuredReconciler
from daaas.portal.migrate import upgrade
from daaas.portal.providers import PROVIDERS, Capacity, LaunchSpec, ProviderStatus
from daaas.portal.providers.openstack import OpenStackProvider
from daaas.portal.providers.openstack.cloud import MACHINE_KEY
from daaas.portal.runtime import Runtime
from tests.support.fake_cloud import fake_cloud
from tests.support.fake_nova import Nova, NovaHandler
from tests.support.providers import InMemoryProvider
from tests.support.scale import add_machines, counting, launch_at, mix_states

SECRET = "bench-secret-key"
INTERVAL = 2.0


class TimedProvider(InMemoryProvider):
    """The in-memory double, noting when ``launch`` was first called for each machine and
    how long the worker spent in its calls (:attr:`busy`, seconds), which is not the portal's
    time."""

    name = "timed-memory"

    def __init__(self) -> None:
        super().__init__(ready_after_polls=1, max_sessions=10**6)
        self.launched_at: dict[str, float] = {}
        self.busy = 0.0

    def launch(self, spec: LaunchSpec) -> None:
        """Note the time, then launch as the parent does."""
        self.launched_at.setdefault(spec.machine_id, time.monotonic())
        super().launch(spec)

    def poll(self, machine_ids: Any) -> dict[str, ProviderStatus]:
        """Poll as the parent does, timed."""
        started = time.perf_counter()
        try:
            return super().poll(machine_ids)
        finally:
            self.busy += time.perf_counter() - started

    def capacity(self) -> Capacity:
        """Answer as the parent does, timed."""
        started = time.perf_counter()
        try:
            return super().capacity()
        finally:
            self.busy += time.perf_counter() - started

    def list_machine_ids(self) -> set[str]:
        """Answer as the parent does, timed."""
        started = time.perf_counter()
        try:
            return super().list_machine_ids()
        finally:
            self.busy += time.perf_counter() - started


def pct(values: list[float], q: float) -> float:
    """Return the ``q`` quantile (nearest rank) of ``values``."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * len(ordered)) - 1))]


def spread(values: list[float]) -> str:
    """Return "median / p95" of ``values`` (milliseconds) as text."""
    return f"{statistics.median(values):6.1f} / {pct(values, 0.95):6.1f} ms"


def timed(call: Callable[[], Any], repeats: int) -> list[float]:
    """Return the wall time of ``repeats`` calls, in milliseconds."""
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        call()
        times.append((time.perf_counter() - started) * 1000)
    return times


@contextmanager
def database(kind: str, folder: Path) -> Iterator[str]:
    """Yield the URL of a fresh, migrated database with the demo users and experiments."""
    if kind == "sqlite":
        url = f"sqlite:///{folder / f'scale-{uuid.uuid4().hex[:6]}.sqlite'}"
        drop: Callable[[], None] = lambda: None  # noqa: E731
    else:
        admin_url = os.environ["DAAAS_TEST_POSTGRES_URL"]
        name = f"daaas_scale_{uuid.uuid4().hex[:8]}"
        admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
        url = make_url(admin_url).set(database=name).render_as_string(hide_password=False)

        def drop() -> None:
            with admin.connect() as conn:
                conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            admin.dispose()
    engine = make_engine(url)
    upgrade(engine)
    settings = load_settings({"database_url": url, "var_dir": str(folder)}, environ={})
    with unit_of_work(make_session_factory(engine)) as db:
        create_demo_users(db, settings)
        create_demo_experiments(db, settings)
    engine.dispose()
    try:
        yield url
    finally:
        drop()


@contextmanager
def portal(url: str, var_dir: Path) -> Iterator[tuple[Flask, Runtime]]:
    """Yield the application on ``url`` (provider: the timed double) and its runtime."""
    app = create_app({"database_url": url, "var_dir": str(var_dir), "secret_key": SECRET,
                      "provider": TimedProvider.name, "max_machines_per_user": 10**6})
    try:
        yield app, app.extensions["daaas"]
    finally:
        app.extensions["daaas"].engine.dispose()


def real_worker(runtime: Runtime, provider: TimedProvider) -> MeasuredReconciler:
    """Return the reconciler as ``daaas worker`` builds it (its own engine, the portal's
    settings, measured for /metrics), on ``provider``."""
    return MeasuredReconciler(worker_session_factory(runtime.settings.effective_database_url),
                              provider, secret_key=SECRET, ready_timeout_seconds=600,
                              settings=runtime.settings)


def close(worker: Reconciler) -> None:
    """Let go of the worker's wake-up channel and its engine."""
    worker.waker.close()
    worker.session_factory.kw["bind"].dispose()


class Loop:
    """A worker's real loop (``run_forever``, every INTERVAL seconds) in a thread of its own,
    whose CPU clock says what the loop alone used."""

    def __init__(self, worker: Reconciler) -> None:
        self.stop = threading.Event()
        self.thread = threading.Thread(target=worker.run_forever, args=(self.stop, INTERVAL))
        self.thread.start()
        self.clock = time.pthread_getcpuclockid(self.thread.ident or 0)

    def cpu(self) -> float:
        """Return the CPU seconds the loop's thread used so far."""
        return time.clock_gettime(self.clock)

    def end(self) -> None:
        """Stop the loop and wait for its cycle to end."""
        self.stop.set()
        self.thread.join(60)


def idle_cpu(workers: list[Reconciler], seconds: float) -> list[float]:
    """Return each worker's CPU use (% of one core) while all of them loop for ``seconds``
    at the same time (after their first cycle)."""
    loops = [Loop(worker) for worker in workers]
    try:
        time.sleep(3.0)  # past the first full cycles
        before, wall = [loop.cpu() for loop in loops], time.monotonic()
        time.sleep(seconds)
        elapsed = time.monotonic() - wall
        return [(loop.cpu() - used) / elapsed * 100
                for loop, used in zip(loops, before, strict=True)]
    finally:
        for loop in loops:
            loop.end()


def measure_cycles(worker: Reconciler, provider: TimedProvider, label: str,
                   cycle: Callable[[], Any], repeats: int = 10) -> None:
    """Print the wall, portal and CPU time of ``repeats`` calls of ``cycle`` and the SQL it
    ran per call."""
    walls, portal_times, cpus = [], [], []
    with counting(Engine) as counts:  # every engine's: the worker reads on its own
        for _ in range(repeats):
            busy, cpu, started = provider.busy, time.thread_time(), time.perf_counter()
            cycle()
            wall = (time.perf_counter() - started) * 1000
            walls.append(wall)
            portal_times.append(wall - (provider.busy - busy) * 1000)
            cpus.append((time.thread_time() - cpu) * 1000)
    per = {key: value / repeats for key, value in counts().items()}
    print(f"  {label:<52} wall {spread(walls)}   portal {spread(portal_times)}   "
          f"CPU {spread(cpus)}   {per['transactions']:.0f} transactions, "
          f"{per['statements']:.0f} statements, {per['writes']:.0f} writes")


def seed(rt: Runtime, size: int, provider: TimedProvider) -> dict[str, Any] | None:
    """Write ``size`` machines in mixed states (launched at ``provider``); return the
    experiment a tenth of them are bound to."""
    with rt.session_factory() as db:
        scientist = get_user(db, "scientist")
        bound = experiment_for_launch(
            db, rt, scientist, "ccp4", rt.experiments.investigations_for("scientist")[0].id)
    ccp4 = rt.catalogue.environments["ccp4"]
    ids = add_machines(rt.session_factory, ccp4, ["scientist", "neutron", "admin"],
                       size - size // 10)
    ids += add_machines(rt.session_factory, ccp4, ["scientist"], size // 10, experiment=bound)
    launch_at(provider, rt.session_factory, ids, SECRET)
    print(f"  states: {mix_states(rt.session_factory, provider, ids)}")
    return bound


def measure_lists(app: Flask, rt: Runtime, size: int, bound: dict[str, Any] | None) -> str:
    """Print every list's statements and times; return the scientist's API token."""
    with unit_of_work(rt.session_factory) as db:
        token = create_token(db, get_user(db, "scientist"), "bench", 1)[1]
        admin_token = create_token(db, get_user(db, "admin"), "bench", 1)[1]
    from tests.support.web import sign_in

    client, admin_client = app.test_client(), app.test_client()
    sign_in(client, "scientist", "scientist-demo")
    sign_in(admin_client, "admin", "admin-demo-pass")
    experiment = bound["id"] if bound else 0
    lists: list[tuple[str, Any, str, dict[str, str]]] = [
        ("GET /api/v1/machines (own, page of 100)", client, "/api/v1/machines",
         {"Authorization": f"Bearer {token}"}),
        ("GET /api/v1/machines?all=1 (admin)", client, "/api/v1/machines?all=1",
         {"Authorization": f"Bearer {admin_token}"}),
        ("GET /admin/machines", admin_client, "/admin/machines", {}),
        (f"GET /api/v1/experiments/{experiment} ({size // 10} sessions)", client,
         f"/api/v1/experiments/{experiment}", {"Authorization": f"Bearer {token}"}),
        ("GET /analysis (My machines page)", client, "/analysis", {}),
    ]
    for label, who, path, headers in lists:
        assert who.get(path, headers=headers).status_code == 200, path
        with counting(rt.engine) as counts:
            assert who.get(path, headers=headers).status_code == 200
        times = timed(partial(who.get, path, headers=headers), 20)
        print(f"  {label:<52} {counts()['statements']:3d} statements   {spread(times)}")
    headers = {"Authorization": f"Bearer {token}"}
    etag = client.get("/api/v1/machines", headers=headers).headers["ETag"]
    unchanged = client.get("/api/v1/machines", headers={**headers, "If-None-Match": etag})
    print(f"  {'GET /api/v1/machines again, If-None-Match':<52} "
          f"{unchanged.status_code} with {len(unchanged.get_data())} bytes")
    return token


def measure_worker(worker: Reconciler, provider: TimedProvider) -> None:
    """Print the idle cycles (every 2 s, every 60 s) and the phases that run less often."""
    worker.run_once()
    worker.run_once()
    measure_cycles(worker, provider, "idle cycle, every 2 s (machines on their way)",
                   lambda: worker.run_once(steady=False))
    measure_cycles(worker, provider, "idle cycle, every 60 s (+ ready and stopped)",
                   worker.run_once)

    def idle_stop_check() -> None:
        worker._idle_checked_at = None
        worker._stop_idle(CycleReport())

    def capacity_and_orphans() -> None:
        worker._capacity_read_at = None
        worker._refresh_capacity()

    measure_cycles(worker, provider, "  its idle-stop check, every 60 s", idle_stop_check, 5)
    measure_cycles(worker, provider, "  its capacity and orphans, every 30 s",
                   capacity_and_orphans, 5)


def measure_launches(app: Flask, worker: Reconciler, provider: TimedProvider, token: str,
                     launches: int) -> None:
    """Print POST /api/v1/machines → provider.launch() with the worker in its loop."""
    client = app.test_client()
    headers = {"Authorization": f"Bearer {token}"}
    latencies, posts = [], []
    loop = Loop(worker)
    try:
        time.sleep(0.5)
        for _ in range(launches):
            time.sleep(random.uniform(0.05, 0.4))
            posted = time.monotonic()
            reply = client.post("/api/v1/machines", json={"environment": "ccp4"},
                                headers=headers)
            posts.append((time.monotonic() - posted) * 1000)
            assert reply.status_code == 202, reply.get_json()
            machine_id = reply.get_json()["id"]
            while machine_id not in provider.launched_at and time.monotonic() - posted < 30:
                time.sleep(0.001)
            latencies.append((provider.launched_at[machine_id] - posted) * 1000)
    finally:
        loop.end()
    print(f"  {'POST /api/v1/machines → provider.launch()':<52} {spread(latencies)}   "
          f"max {max(latencies):6.1f} ms   n={len(latencies)}")
    print(f"  {'  of which the POST itself':<52} {spread(posts)}")


def run(kind: str, size: int, args: argparse.Namespace, folder: Path, empty_url: str) -> None:
    """Measure one database kind at one size (beside an empty portal) and print the figures."""
    with database(kind, folder) as url, \
            portal(url, folder / f"var-{kind}-{size}") as (app, rt), \
            portal(empty_url, folder / f"var-{kind}-{size}-empty") as (_, empty_rt):
        print(f"\n== {kind}, N = {size:,} machines")
        started = time.monotonic()
        provider = TimedProvider()
        bound = seed(rt, size, provider)
        # What seeding left alive (the double's machines with their launch specs, which no
        # real worker holds) is moved out of the collector's generations: a full collection
        # would otherwise walk it at the expense of whichever thread triggers it.
        gc.collect()
        gc.freeze()
        print(f"  (seeded in {time.monotonic() - started:.1f} s)")
        token = measure_lists(app, rt, size, bound)
        worker = real_worker(rt, provider)
        empty = real_worker(empty_rt, TimedProvider())
        try:
            measure_worker(worker, provider)
            busy, empty_busy = idle_cpu([worker, empty], args.idle_seconds)
            print(f"  {'idle worker CPU, its real loop (every 2 s)':<52} {busy:5.2f} % of a "
                  f"core; an empty portal's at the same time {empty_busy:5.2f} %: "
                  f"{busy / empty_busy if empty_busy else float('nan'):.2f} times")
            measure_launches(app, worker, provider, token, args.launches)
        finally:
            close(worker)
            close(empty)


def measure_openstack_poll(size: int, repeats: int = 5) -> None:
    """Print the OpenStack provider's poll of ``size`` servers (the real provider on a real
    openstacksdk connection, Nova faked at the HTTP edge in this process, 1,000 servers a
    page): median and p95 of the wall time and of the polling thread's own CPU time (the
    client's part; the fake Nova's threads are not counted)."""
    folder = Path(tempfile.mkdtemp(prefix="daaas-scale-nova-"))
    patch = pytest.MonkeyPatch()  # only OS_CLIENT_CONFIG_FILE, for the fake cloud
    nova = Nova("", 0)
    try:
        with fake_cloud(NovaHandler, nova, folder, patch, ("compute",)):
            provider = OpenStackProvider("fake", network="none", access_mode="direct",
                                         delete_timeout=10)
            tagged = Nova(provider.server_tag, size)
            nova.servers = tagged.servers
            asked = [s["metadata"][MACHINE_KEY] for s in tagged.servers[:size]]
            walls, cpus = [], []
            for _ in range(repeats):
                wall, cpu = time.perf_counter(), time.thread_time()
                found = provider.poll(asked)
                cpus.append((time.thread_time() - cpu) * 1000)
                walls.append((time.perf_counter() - wall) * 1000)
                assert len(found) == size
    finally:
        patch.undo()
    print(f"  OpenStack poll of {size:,} servers ({-(-size // 1000)} pages)".ljust(55)
          + f"wall {spread(walls)}   client CPU {spread(cpus)}")


def main() -> None:
    """Parse the arguments and measure every size on every available database."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--sizes", default="100,1000,10000")
    parser.add_argument("--launches", type=int, default=40)
    parser.add_argument("--idle-seconds", type=float, default=60.0)
    parser.add_argument("--databases", default="sqlite,postgresql")
    args = parser.parse_args()
    kinds = [k for k in args.databases.split(",")
             if k == "sqlite" or os.environ.get("DAAAS_TEST_POSTGRES_URL")]
    folder = Path(tempfile.mkdtemp(prefix="daaas-scale-"))
    print(f"load average at the start: {os.getloadavg()}")
    print("openstack (real provider, Nova faked at the HTTP edge):")
    for size in (int(s) for s in args.sizes.split(",")):
        measure_openstack_poll(size)
    with PROVIDERS.registered(TimedProvider.name, TimedProvider):
        for kind in kinds:
            with database(kind, folder) as empty_url:
                for size in (int(s) for s in args.sizes.split(",")):
                    run(kind, size, args, folder, empty_url)
    print(f"load average at the end: {os.getloadavg()}")


if __name__ == "__main__":
    main()
