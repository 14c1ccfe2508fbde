"""What one /metrics scrape costs as the machines pile up.

    .venv/bin/python benchmarks/metrics_scrape.py [--sizes 1000,10000] [--runs 10]

For each size N (ready machines in the database, four events each, as benchmarks/scale.py
seeds them) it times :func:`daaas.portal.metrics.collect.scrape` on a fresh connection and
prints the statements it ran, the median and p95 time and the size of the text. SQLite in a
temporary folder always; PostgreSQL too when DAAAS_TEST_POSTGRES_URL is set.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # for the tests' helpers
sys.path.insert(0, str(Path(__file__).resolve().parent))

from scale import database  # benchmarks/scale.py: a fresh migrated database

from daaas.catalogue import load_catalogue
from daaas.portal.config import load_settings
from daaas.portal.db import make_engine, make_session_factory
from daaas.portal.metrics.collect import scrape
from tests.support.scale import add_machines, counting


def run(kind: str, size: int, runs: int, folder: Path) -> None:
    """Seed ``size`` machines in a fresh database of ``kind`` and print one line of figures."""
    with database(kind, folder) as url:
        settings = load_settings({"database_url": url, "var_dir": str(folder / f"var-{kind}")},
                                 environ={})
        engine = make_engine(url)
        ccp4 = load_catalogue(Path(settings.catalogue_dir)).environments["ccp4"]
        add_machines(make_session_factory(engine), ccp4, ["scientist", "neutron", "admin"],
                     size)
        times, body = [], b""
        with counting(engine) as counts:
            for _ in range(runs):
                started = time.perf_counter()
                with engine.connect() as connection:
                    body = scrape(connection, settings)
                times.append(time.perf_counter() - started)
        engine.dispose()
    times.sort()
    p95 = times[min(len(times) - 1, round(0.95 * (len(times) - 1)))]
    print(f"{kind:10} N = {size:>7,}: {counts()['statements'] // runs} statements, "
          f"median {statistics.median(times) * 1000:7.1f} ms, p95 {p95 * 1000:7.1f} ms, "
          f"{len(body):,} bytes")


def main() -> None:
    """Parse the options and measure each database kind at each size."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1000,10000")
    parser.add_argument("--runs", type=int, default=10)
    args = parser.parse_args()
    kinds = ["sqlite"] + (["postgresql"] if os.environ.get("DAAAS_TEST_POSTGRES_URL") else [])
    with tempfile.TemporaryDirectory() as folder:
        for kind in kinds:
            for size in (int(s) for s in args.sizes.split(",")):
                run(kind, size, args.runs, Path(folder))


if __name__ == "__main__":
    main()
