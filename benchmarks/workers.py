"""Several workers: the time to launch 1,000 requested machines with 1, 2 and 4 worker
processes (issue 19).

    .venv/bin/python benchmarks/workers.py [--machines 1000] [--workers 1,2,4] [--launch-ms 20]

For each number of workers: a fresh database with ``--machines`` requested machines (two
owners), then that many real worker processes (tests/support/launch_worker.py: a reconciler on
its own engine, as `daaas worker` runs it, with the in-memory provider double whose launch
takes ``--launch-ms``, as a cloud API call does) started together; each runs launch cycles
until no machine is requested. Prints the wall time until every machine is launched (the
slowest worker), the launches per worker, its first cycle's time, and duplicates (a machine
launched twice; must be 0). PostgreSQL when DAAAS_TEST_POSTGRES_URL is set (source
/tmp/daaas-test-env.sh), SQLite in a temporary folder too.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.scale import database
from daaas.portal.db import make_engine, make_session_factory
from tests.support.environments import make_environment
from tests.support.scale import add_requested

ROOT = Path(__file__).resolve().parents[1]


def run(url: str, folder: Path, machines: int, workers: int, launch_ms: int) -> dict[str, object]:
    """Launch ``machines`` requested machines with ``workers`` processes; return the figures."""
    engine = make_engine(url)
    ids = add_requested(make_session_factory(engine),
                        make_environment(applications=[], protocols=["novnc"]),
                        ["scientist", "admin"], machines)
    engine.dispose()
    start = folder / f"start-{workers}"
    results = [folder / f"worker-{workers}-{n}.json" for n in range(workers)]
    procs = [subprocess.Popen([sys.executable, "-m", "tests.support.launch_worker", url,
                               str(r), str(start), str(launch_ms)], cwd=ROOT) for r in results]
    start.touch()
    for proc in procs:
        if proc.wait(timeout=1200) != 0:
            raise SystemExit(f"a worker failed: exit {proc.returncode}")
    data = [json.loads(r.read_text()) for r in results]
    calls = Counter(m for d in data for m in d["launched"])
    return {"seconds": max(d["seconds"] for d in data),
            "per_worker": [len(d["launched"]) for d in data],
            "first_cycle": max(d["cycles"][0] for d in data),
            "duplicates": sum(1 for n in calls.values() if n > 1),
            "lost": len(set(ids) - set(calls))}


def main() -> None:
    """Run the benchmark and print one line per database and number of workers."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--machines", type=int, default=1000)
    parser.add_argument("--workers", default="1,2,4")
    parser.add_argument("--launch-ms", type=int, default=20)
    parser.add_argument("--databases", default="postgresql,sqlite")
    args = parser.parse_args()
    kinds = [k for k in args.databases.split(",")
             if k != "postgresql" or os.environ.get("DAAAS_TEST_POSTGRES_URL")]
    print(f"{args.machines} requested machines, provider launch {args.launch_ms} ms; "
          f"{os.cpu_count()} cores")
    with tempfile.TemporaryDirectory() as tmp:
        for kind in kinds:
            for workers in [int(w) for w in args.workers.split(",")]:
                with database(kind, Path(tmp)) as url:
                    f = run(url, Path(tmp), args.machines, workers, args.launch_ms)
                print(f"{kind:10} workers={workers}: all launched in {f['seconds']:.2f} s "
                      f"(first cycle {f['first_cycle']:.2f} s), per worker {f['per_worker']}, "
                      f"duplicates {f['duplicates']}, lost {f['lost']}", flush=True)


if __name__ == "__main__":
    main()
