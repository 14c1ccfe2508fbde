"""The portal at scale: statement counts, the idle reconciler cycle, launch → provider latency.

    .venv/bin/python benchmarks/scale.py [--sizes 100,1000,10000] [--launches 20]

For each size N (ready machines in the database, four events each, over three users; the
scientist's first experiment bound to a tenth of them) it builds a fresh database, runs the
real application in-process (Flask test client) and a real reconciler on the in-memory
provider double (tests/support/providers.py), and prints:

- SQL statements per request of every list (counted with an SQLAlchemy event listener), and
  each list's median and p95 time;
- the idle reconciler cycle (every machine ready at the provider and in the database): median
  and p95 time, transactions, statements and writes per cycle;
- the portal process's CPU while the worker idles (interval 2 s, 10 s measured), as % of one
  core, beside the same for an empty database;
- POST /api/v1/machines → ``provider.launch()`` called, with the worker waiting between cycles
  (interval 2 s): median and p95 of ``--launches`` launches spaced at random.

SQLite in a temporary folder always; PostgreSQL too when DAAAS_TEST_POSTGRES_URL is set (a
database is created per size and dropped). No network, no cloud.
"""

from __future__ import annotations

import argparse
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
from pathlib import Path
from typing import Any

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
from daaas.portal.machines.reconciler import Reconciler
from daaas.portal.migrate import upgrade
from daaas.portal.providers import PROVIDERS, LaunchSpec
from tests.support.providers import InMemoryProvider
from tests.support.scale import add_machines, counting, launch_at

SECRET = "bench-secret-key"
INTERVAL = 2.0


class TimedProvider(InMemoryProvider):
    """The in-memory double, noting when ``launch`` was first called for each machine."""

    name = "timed-memory"

    def __init__(self) -> None:
        super().__init__(ready_after_polls=1, max_sessions=10**6)
        self.launched_at: dict[str, float] = {}

    def launch(self, spec: LaunchSpec) -> None:
        """Note the time, then launch as the parent does."""
        self.launched_at.setdefault(spec.machine_id, time.monotonic())
        super().launch(spec)


def pct(values: list[float], q: float) -> float:
    """Return the ``q`` quantile (nearest rank) of ``values``."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * len(ordered)) - 1))]


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


def idle_cpu(worker: Reconciler, seconds: float) -> float:
    """Return the process's CPU use (% of one core) while ``worker`` loops for ``seconds``."""
    stop = threading.Event()
    loop = threading.Thread(target=worker.run_forever, args=(stop, INTERVAL))
    loop.start()
    time.sleep(1.0)  # past the first cycle
    cpu, wall = time.process_time(), time.monotonic()
    time.sleep(seconds)
    used = (time.process_time() - cpu) / (time.monotonic() - wall) * 100
    stop.set()
    loop.join(30)
    return used


def run(kind: str, size: int, launches: int, folder: Path) -> None:
    """Measure one database kind at one size and print the figures."""
    with database(kind, folder) as url, \
            PROVIDERS.registered(TimedProvider.name, TimedProvider):
        app = create_app({"database_url": url, "var_dir": str(folder / f"var-{kind}-{size}"),
                          "secret_key": SECRET, "provider": TimedProvider.name,
                          "max_machines_per_user": 10**6})
        rt = app.extensions["daaas"]
        with rt.session_factory() as db:
            scientist = get_user(db, "scientist")
            bound = experiment_for_launch(
                rt, scientist, "ccp4", rt.experiments.investigations_for("scientist")[0].id)
        ccp4 = rt.catalogue.environments["ccp4"]
        started = time.monotonic()
        ids = add_machines(rt.session_factory, ccp4, ["scientist", "neutron", "admin"],
                           size - size // 10)
        ids += add_machines(rt.session_factory, ccp4, ["scientist"], size // 10,
                            experiment=bound)
        provider = TimedProvider()
        launch_at(provider, rt.session_factory, ids, SECRET)
        seeded = time.monotonic() - started
        with unit_of_work(rt.session_factory) as db:
            token = create_token(db, get_user(db, "scientist"), "bench", 1)[1]
            admin_token = create_token(db, get_user(db, "admin"), "bench", 1)[1]
        print(f"\n== {kind}, N = {size:,} machines (seeded in {seeded:.1f} s)")

        client, admin_client = app.test_client(), app.test_client()
        from tests.support.web import sign_in

        sign_in(client, "scientist", "scientist-demo")
        sign_in(admin_client, "admin", "admin-demo-pass")
        lists: list[tuple[str, Any, str, dict[str, str]]] = [
            ("GET /api/v1/machines (own, page of 100)", client, "/api/v1/machines",
             {"Authorization": f"Bearer {token}"}),
            ("GET /api/v1/machines?all=1 (admin)", client, "/api/v1/machines?all=1",
             {"Authorization": f"Bearer {admin_token}"}),
            ("GET /admin/machines", admin_client, "/admin/machines", {}),
            (f"GET /api/v1/experiments/{bound['id'] if bound else 0} "
             f"({size // 10} sessions)", client,
             f"/api/v1/experiments/{bound['id'] if bound else 0}",
             {"Authorization": f"Bearer {token}"}),
            ("GET /analysis (My machines page)", client, "/analysis", {}),
        ]
        for label, who, path, headers in lists:
            assert who.get(path, headers=headers).status_code == 200, path
            with counting(rt.engine) as counts:
                assert who.get(path, headers=headers).status_code == 200
            times = timed(lambda w=who, p=path, h=headers: w.get(p, headers=h), 20)
            print(f"  {label:<52} {counts()['statements']:3d} statements   median "
                  f"{statistics.median(times):7.1f} ms   p95 {pct(times, 0.95):7.1f} ms")
        etag = client.get("/api/v1/machines",
                          headers={"Authorization": f"Bearer {token}"}).headers["ETag"]
        unchanged = client.get("/api/v1/machines", headers={
            "Authorization": f"Bearer {token}", "If-None-Match": etag})
        print(f"  {'GET /api/v1/machines again, If-None-Match':<52} "
              f"{unchanged.status_code} with {len(unchanged.get_data())} bytes")

        factory = worker_session_factory(url)
        worker = Reconciler(factory, provider, secret_key=SECRET, ready_timeout_seconds=600)
        worker.run_once()
        with counting(Engine) as counts:  # every engine's: the worker reads on its own
            cycles = timed(worker.run_once, 10)
        per = {key: value / 10 for key, value in counts().items()}
        print(f"  {'idle reconciler cycle':<52} median {statistics.median(cycles):7.1f} ms   "
              f"p95 {pct(cycles, 0.95):7.1f} ms   {per['transactions']:.0f} transactions, "
              f"{per['statements']:.0f} statements, {per['writes']:.0f} writes, "
              f"{provider.calls['poll'] // 11} poll/cycle")
        print(f"  {'idle portal CPU (worker every 2 s)':<52} "
              f"{idle_cpu(worker, 10):5.1f} % of a core")

        stop = threading.Event()
        loop = threading.Thread(target=worker.run_forever, args=(stop, INTERVAL))
        loop.start()
        latencies = []
        headers = {"Authorization": f"Bearer {token}"}
        try:
            time.sleep(0.5)
            for _ in range(launches):
                time.sleep(random.uniform(0.05, 0.4))
                posted = time.monotonic()
                reply = client.post("/api/v1/machines", json={"environment": "ccp4"},
                                    headers=headers)
                assert reply.status_code == 202, reply.get_json()
                machine_id = reply.get_json()["id"]
                while machine_id not in provider.launched_at \
                        and time.monotonic() - posted < 30:
                    time.sleep(0.001)
                latencies.append((provider.launched_at[machine_id] - posted) * 1000)
        finally:
            stop.set()
            loop.join(30)
        print(f"  {'POST /api/v1/machines → provider.launch()':<52} median "
              f"{statistics.median(latencies):7.1f} ms   p95 {pct(latencies, 0.95):7.1f} ms   "
              f"max {max(latencies):7.1f} ms   n={len(latencies)}")
        worker.waker.close()
        factory.kw["bind"].dispose()
        rt.engine.dispose()


def main() -> None:
    """Parse the arguments and measure every size on every available database."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--sizes", default="100,1000,10000")
    parser.add_argument("--launches", type=int, default=20)
    parser.add_argument("--databases", default="sqlite,postgresql")
    args = parser.parse_args()
    kinds = [k for k in args.databases.split(",")
             if k == "sqlite" or os.environ.get("DAAAS_TEST_POSTGRES_URL")]
    folder = Path(tempfile.mkdtemp(prefix="daaas-scale-"))
    with tempfile.TemporaryDirectory(prefix="daaas-scale-empty-") as empty:
        for kind in kinds:
            with database(kind, Path(empty)) as url:
                factory = worker_session_factory(url)
                worker = Reconciler(factory, TimedProvider(), secret_key=SECRET,
                                    ready_timeout_seconds=600)
                print(f"{kind}: idle portal CPU with no machines (worker every 2 s): "
                      f"{idle_cpu(worker, 10):.1f} % of a core")
                worker.waker.close()
                factory.kw["bind"].dispose()
    for kind in kinds:
        for size in (int(s) for s in args.sizes.split(",")):
            run(kind, size, args.launches, folder)


if __name__ == "__main__":
    main()
