"""Several workers split the launches (issue 19): four real worker processes, each a
reconciler on its own engine with its own in-memory provider double, launch 1,000 requested
machines from one database: every machine is launched exactly once (no duplicate, none lost),
each ends ``provisioning`` with one event for it, and every worker did part of the work.

The claim that makes this so is the real one (`portal/machines/claims.py`: a PostgreSQL
advisory lock, a byte-range lock on SQLite, tried without waiting, so a worker skips a machine
another holds). Not timed: benchmarks/workers.py measures the time per number of workers.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections import Counter
from pathlib import Path

from sqlalchemy import func, select

from daaas.portal.db import make_engine, make_session_factory
from daaas.portal.machines.models import Machine, MachineEvent
from tests.support.environments import make_environment
from tests.support.paths import ROOT
from tests.support.scale import add_requested

WORKERS, MACHINES = 4, 1000
#: Each provider launch takes this long (ms), as a cloud's API call does: the call is made with
#: no transaction open, so the workers' calls overlap (on SQLite an instant launch leaves only
#: the one-writer-at-a-time database, and a worker can take every machine before another's
#: first claim: no duplicate either way, but no split to see).
LAUNCH_MS = 5


def test_four_workers_launch_1000_machines_once_each(demo_database_url: str,
                                                     tmp_path: Path) -> None:
    engine = make_engine(demo_database_url)
    factory = make_session_factory(engine)
    ids = add_requested(factory, make_environment(applications=[], protocols=["novnc"]),
                        ["scientist", "admin"], MACHINES)
    start = tmp_path / "start"
    results = [tmp_path / f"worker-{n}.json" for n in range(WORKERS)]
    workers = [subprocess.Popen([sys.executable, "-m", "tests.support.launch_worker",
                                 demo_database_url, str(result), str(start), str(LAUNCH_MS)],
                                cwd=ROOT)
               for result in results]
    try:
        start.touch()  # all four begin together, their imports done
        for worker in workers:
            assert worker.wait(timeout=600) == 0
    finally:
        for worker in workers:
            if worker.poll() is None:
                worker.kill()
                worker.wait()

    launched = [json.loads(r.read_text())["launched"] for r in results]
    calls = Counter(machine_id for each in launched for machine_id in each)
    assert sorted(calls) == sorted(ids)  # none lost, none made up
    assert [m for m, n in calls.items() if n > 1] == []  # no duplicate launch
    assert all(len(each) > 0 for each in launched), [len(each) for each in launched]
    with factory() as db:
        states = dict(db.execute(select(Machine.state, func.count())
                                 .group_by(Machine.state)).tuples().all())
        events = db.scalar(select(func.count()).select_from(MachineEvent)
                           .where(MachineEvent.to_state == "provisioning"))
    assert states == {"provisioning": MACHINES} and events == MACHINES, (states, events)
    engine.dispose()
    print("launches per worker:", [len(each) for each in launched])

