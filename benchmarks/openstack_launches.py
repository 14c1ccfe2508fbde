"""Many concurrent launches against a real OpenStack: time until every server is ACTIVE.

    bash .ci/openstack.sh            # prints two export lines: run them first
    .venv/bin/python benchmarks/openstack_launches.py [--launches 50] [--workers 1] [--runs 1]

Records ``--launches`` launch requests at once (as many users clicking Launch together), then
runs the portal's real reconciler (``--workers`` threads, each with its own database session
factory and its own openstacksdk connection, as several ``daaas worker`` processes would) until
every machine has an ACTIVE server in Nova, i.e. has reached ``contextualising`` (the fake virt
driver boots nothing, so no VM phones home). Prints, per run: the time from the requests to the
last ACTIVE server, the median and 90th percentile per machine, the HTTP requests per launch by
service (counted at the HTTP level on every connection), errors, duplicates (servers beyond one
per machine, counted in Nova once all settled) and orphans (servers left in Nova after every
machine is deleted), and the time to delete all. Every server made is deleted at the end, also
on failure (orphans too).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

from flask import Flask
from sqlalchemy import func, select

from daaas.portal import create_app
from daaas.portal.auth.service import get_user
from daaas.portal.config import load_settings
from daaas.portal.db import make_engine, unit_of_work
from daaas.portal.demo import DEMO_USERS, create_demo_users
from daaas.portal.machines import service
from daaas.portal.machines.models import Machine, MachineEvent
from daaas.portal.machines.worker import make_reconciler
from daaas.portal.migrate import upgrade

SERVICES = {"5000": "keystone", "8774": "nova", "9292": "glance", "8778": "placement",
            "9696": "neutron"}
ACTIVE_STATES = {"contextualising", "ready"}


class HttpCounter:
    """Counts the HTTP requests an openstacksdk connection sends, by service port."""

    def __init__(self) -> None:
        self.counts: Counter[str] = Counter()
        self.lock = threading.Lock()

    def attach(self, connection: Any) -> None:
        """Count every response ``connection`` receives from now on."""
        connection.session.session.hooks.setdefault("response", []).append(self._record)

    def _record(self, response: Any, *args: Any, **kwargs: Any) -> None:
        port = response.request.url.split("://", 1)[1].split("/", 1)[0].rpartition(":")[2]
        with self.lock:
            self.counts[SERVICES.get(port, port)] += 1


def make_portal(var_dir: Path, database_url: str, launches: int, timeout: float) -> Flask:
    """Return a portal on the test cloud with room for ``launches`` machines per user, giving
    up on a machine only after ``timeout`` seconds (the run's own limit: a slow cloud's last
    servers must not be timed out by the portal before the run ends)."""
    return create_app({
        "var_dir": str(var_dir), "database_url": database_url, "provider": "openstack",
        "openstack_cloud": os.environ["DAAAS_TEST_OPENSTACK_CLOUD"], "openstack_network": "none",
        "openstack_server_tag": f"daaas-bench-{os.getpid()}", "max_machines_per_user": launches,
        "machine_ready_timeout_seconds": max(900, int(timeout)), "embedded_worker": False,
        "start_websockify": False, "public_url": "http://127.0.0.1:8080"})


def request_launches(app: Flask, count: int, environment: str) -> list[str]:
    """Record ``count`` launch requests for the demo users in turn; return the machine ids."""
    rt = app.extensions["daaas"]
    ids = []
    with unit_of_work(rt.session_factory) as db:
        create_demo_users(db, load_settings({"database_url": rt.settings.database_url}, environ={}))
        users = [get_user(db, demo.username) for demo in DEMO_USERS]
        for index in range(count):
            ids.append(service.request_launch(db, rt.settings, rt.catalogue,
                                              users[index % len(users)], environment).id)
    return ids


def states(app: Flask, ids: list[str]) -> Counter[str]:
    """Return how many of the machines are in each state."""
    rt = app.extensions["daaas"]
    with rt.session_factory() as db:
        rows = db.execute(select(Machine.state, func.count()).where(Machine.id.in_(ids))
                          .group_by(Machine.state))
        return Counter({state: number for state, number in rows})


def time_to_active(app: Flask, ids: list[str]) -> list[float]:
    """Return, per machine, seconds from its request to the event that marked it ACTIVE."""
    rt = app.extensions["daaas"]
    with rt.session_factory() as db:
        events = db.scalars(select(MachineEvent).where(MachineEvent.machine_id.in_(ids))).all()
    requested = {e.machine_id: e.at for e in events if e.to_state == "requested"}
    active = {e.machine_id: e.at for e in events if e.to_state == "contextualising"}
    return [(active[m] - requested[m]).total_seconds() for m in ids if m in active]


def error_reasons(app: Flask, ids: list[str]) -> Counter[str]:
    """Return how many machines ended in error for each reason."""
    rt = app.extensions["daaas"]
    with rt.session_factory() as db:
        return Counter(db.scalars(select(MachineEvent.message).where(
            MachineEvent.machine_id.in_(ids), MachineEvent.to_state == "error")))


def servers_per_machine(app: Flask) -> Counter[str]:
    """Return how many servers carrying this run's tag Nova holds for each machine id (by the
    server's name, ``daaas-<machine id>``)."""
    provider = app.extensions["daaas"].provider
    compute = provider.connection.compute
    return Counter(server.name.removeprefix("daaas-")
                   for server in compute.servers(tags=provider.server_tag))


def remove_left_servers(app: Flask, ids: list[str]) -> int:
    """Delete every server still carrying this run's tag (after giving Nova 30 s to finish
    deletions under way), saying which; return how many there were."""
    provider = app.extensions["daaas"].provider
    compute = provider.connection.compute
    deadline = time.monotonic() + 30
    while (left := list(compute.servers(tags=provider.server_tag))) \
            and time.monotonic() < deadline:
        time.sleep(2)
    rt = app.extensions["daaas"]
    for server in left:
        machine_id = server.name.removeprefix("daaas-")
        with rt.session_factory() as db:
            machine = db.get(Machine, machine_id)
            events = [f"{e.to_state}: {e.message}" for e in machine.events] if machine else []
        print(f"  left in Nova: {server.name} {server.status} task {server.task_state} "
              f"(one of this run's: {machine_id in ids}); its events: {events}")
        compute.delete_server(server, ignore_missing=True)
    return len(left)


def drive(apps: list[Flask], counter: HttpCounter, until: Any, limit: float) -> float:
    """Run one reconciler per app in threads until ``until()``; return the seconds it took."""
    stop = threading.Event()
    reconcilers = []
    for app in apps:
        reconciler = make_reconciler(app.extensions["daaas"])
        counter.attach(app.extensions["daaas"].provider.connection)
        reconcilers.append(reconciler)
    threads = [threading.Thread(target=r.run_forever, args=(stop, 0.5), daemon=True)
               for r in reconcilers]
    start = time.monotonic()
    for thread in threads:
        thread.start()
    try:
        while not until():
            if time.monotonic() - start > limit:
                raise TimeoutError(f"not done after {limit:.0f} s")
            time.sleep(0.25)
        return time.monotonic() - start
    finally:
        stop.set()
        for thread in threads:
            thread.join(60)


def one_run(args: argparse.Namespace, var_dir: Path) -> dict[str, Any]:
    """Launch, wait for ACTIVE, delete; return the figures of this run."""
    database_url = args.database_url or f"sqlite:///{var_dir / 'bench.sqlite'}"
    upgrade(make_engine(database_url))
    apps = [make_portal(var_dir, database_url, args.launches, args.timeout)
            for _ in range(args.workers)]
    ids = request_launches(apps[0], args.launches, args.environment)
    launch_counter = HttpCounter()
    figures: dict[str, Any] = {}
    try:
        figures["all_active_s"] = drive(
            apps, launch_counter,
            lambda: sum(states(apps[0], ids)[s] for s in ACTIVE_STATES | {"error"}) == len(ids),
            args.timeout)
        held = servers_per_machine(apps[0])
        figures["duplicates"] = sum(n - 1 for n in held.values())
        figures["servers"] = sum(held.values())
    finally:
        final = states(apps[0], ids)
        figures["states"] = dict(final)
        figures["per_machine"] = time_to_active(apps[0], ids)
        figures["requests"] = dict(launch_counter.counts)
        figures["errors"] = error_reasons(apps[0], ids)
        with unit_of_work(apps[0].extensions["daaas"].session_factory) as db:
            for machine_id in ids:
                machine = db.get(Machine, machine_id)
                if machine is not None:
                    service.request_delete(db, machine.user, machine_id)
        delete_counter = HttpCounter()
        try:
            figures["all_deleted_s"] = drive(
                apps, delete_counter, lambda: states(apps[0], ids)["deleted"] == len(ids),
                args.timeout)
        finally:
            figures["orphans"] = remove_left_servers(apps[0], ids)
    return figures


def report(run: int, figures: dict[str, Any], launches: int) -> None:
    """Print one run's figures."""
    per = sorted(figures["per_machine"]) or [float("nan")]
    requests = figures["requests"]
    total = sum(requests.values())
    print(f"run {run}: {launches} launches, {len(figures['per_machine'])} ACTIVE, all settled "
          f"in {figures['all_active_s']:.1f} s; per machine median {statistics.median(per):.1f} s,"
          f" p90 {per[int(0.9 * (len(per) - 1))]:.1f} s, max {per[-1]:.1f} s")
    print(f"  HTTP requests while launching: {total} ({total / launches:.1f} per launch) "
          + ", ".join(f"{name} {n} ({n / launches:.1f})" for name, n in sorted(requests.items())))
    errors = figures["states"].get("error", 0)
    print(f"  final states {figures['states']}; errors {errors}; servers in Nova "
          f"{figures.get('servers', '?')}, duplicates {figures.get('duplicates', '?')}; "
          f"all deleted in {figures['all_deleted_s']:.1f} s; orphans left {figures['orphans']}")
    for reason, count in figures["errors"].most_common():
        print(f"  error x{count}: {reason}")


def main() -> None:
    """Parse arguments, run, print."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--launches", type=int, default=50)
    parser.add_argument("--workers", type=int, default=1, help="reconciler threads")
    parser.add_argument("--runs", type=int, default=1)
    parser.add_argument("--environment", default="base-desktop")
    parser.add_argument("--database-url", default="", help="default: SQLite in a temp folder")
    parser.add_argument("--timeout", type=float, default=900)
    args = parser.parse_args()
    if "DAAAS_TEST_OPENSTACK_CLOUD" not in os.environ:
        sys.exit("Run `bash .ci/openstack.sh` and export the two lines it prints first.")
    totals = []
    for run in range(1, args.runs + 1):
        with tempfile.TemporaryDirectory(prefix="daaas-bench-os-") as var_dir:
            figures = one_run(args, Path(var_dir))
        report(run, figures, args.launches)
        totals.append(figures["all_active_s"])
    if args.runs > 1:
        print(f"median time until all ACTIVE over {args.runs} runs: "
              f"{statistics.median(totals):.1f} s")


if __name__ == "__main__":
    main()
