"""Portal request latency for launch and list with 1,000 machines in the database.

    .venv/bin/python benchmarks/api_latency.py [--machines 1000] [--requests 50]

Runs the real application in-process (Flask test client, SQLite in a temporary folder, or
PostgreSQL with --database-url) and prints the median, 90th percentile and spread of each
request. No provider is involved: launch only records the request, as in production.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
import uuid
from datetime import timedelta
from pathlib import Path

from daaas.portal import create_app
from daaas.portal.analysis.service import load_site_catalogue
from daaas.portal.auth.models import User
from daaas.portal.auth.service import create_token
from daaas.portal.config import load_settings
from daaas.portal.db import make_engine, make_session_factory, unit_of_work, utcnow
from daaas.portal.demo import create_demo_users
from daaas.portal.machines.models import Machine, MachineEvent
from daaas.portal.migrate import upgrade
from daaas.portal.providers import PROVIDERS

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # for the tests' doubles
from tests.support.providers import InMemoryProvider

STATES = ["requested", "provisioning", "contextualising", "ready"]


def seed(url: str, machines: int) -> str:
    """Migrate, add demo users and ``machines`` ready machines; return an admin API token.

    Each machine records the shipped catalogue's ``ccp4`` entry as its environment, as a real
    launch does. Raises KeyError if the site's catalogue has no valid ``ccp4``.
    """
    upgrade(make_engine(url))
    factory = make_session_factory(make_engine(url))
    settings = load_settings({"database_url": url}, environ={})
    environment = load_site_catalogue(settings).environments["ccp4"]
    with unit_of_work(factory) as db:
        create_demo_users(db, settings)
        users = db.query(User).all()
        now = utcnow()
        for index in range(machines):
            machine_id = uuid.uuid4().hex
            db.add(Machine(id=machine_id, user=users[index % len(users)],
                           environment_name=environment.name, environment=environment,
                           flavor="m1.large", provider="memory", state="ready",
                           created_at=now, state_changed_at=now,
                           expires_at=now + timedelta(days=7)))
            previous = None
            for step, state in enumerate(STATES):
                db.add(MachineEvent(machine_id=machine_id, from_state=previous, to_state=state,
                                    at=now + timedelta(seconds=step)))
                previous = state
        admin = next(u for u in users if u.is_admin)
        return create_token(db, admin, "bench", 1)[1]


def measure(call: object, repeats: int) -> list[float]:
    """Return the wall time of ``repeats`` calls in milliseconds."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        call()  # type: ignore[operator]
        times.append((time.perf_counter() - start) * 1000)
    return times


def report(name: str, times: list[float]) -> None:
    """Print median, p90 and spread of one measurement."""
    ordered = sorted(times)
    p90 = ordered[int(len(ordered) * 0.9) - 1]
    print(f"{name:<50} median {statistics.median(times):8.2f} ms   p90 {p90:8.2f} ms   "
          f"min {ordered[0]:7.2f}   max {ordered[-1]:7.2f}   n={len(times)}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--machines", type=int, default=1000)
    parser.add_argument("--requests", type=int, default=50)
    parser.add_argument("--database-url", default="")
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="daaas-bench-"))
    url = args.database_url or f"sqlite:///{folder / 'bench.sqlite'}"
    token = seed(url, args.machines)
    with PROVIDERS.registered("memory", InMemoryProvider):
        app = create_app({"database_url": url, "var_dir": str(folder), "secret_key": "bench",
                          "provider": "memory", "max_machines_per_user": 10**6})
    client = app.test_client()
    headers = {"Authorization": f"Bearer {token}"}

    def list_all() -> None:
        response = client.get("/api/v1/machines?all=1", headers=headers)
        assert response.status_code == 200 and response.get_json()["total"] >= args.machines

    def list_own() -> None:
        assert client.get("/api/v1/machines", headers=headers).status_code == 200

    def launch() -> None:
        response = client.post("/api/v1/machines", json={"environment": "ccp4"}, headers=headers)
        assert response.status_code == 202, response.get_json()

    print(f"database: {url.split(':')[0]}, {args.machines} machines, {args.requests} requests "
          "each")
    report("POST /api/v1/machines (launch)", measure(launch, args.requests))
    report("GET /api/v1/machines (own, ~1/3 of them)", measure(list_own, args.requests))
    report(f"GET /api/v1/machines?all=1 (page of 100 of {args.machines}+)",
           measure(list_all, args.requests))


if __name__ == "__main__":
    main()
