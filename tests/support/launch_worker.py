"""One real worker process for the several-workers test and benchmark (issue 19).

    python -m tests.support.launch_worker <database_url> <result.json> <start_file> [launch_ms]

Builds a reconciler on its own engine (as `daaas worker` does) with a recording in-memory
provider, waits until ``start_file`` exists (so several processes start together, imports
done), then runs launch cycles (:meth:`Reconciler.run_asked`: launches and deletions) until no
machine is left ``requested``. Writes to ``result.json``: every machine id it asked the
provider to launch, in order, and each cycle's duration in seconds. ``launch_ms`` makes each
provider launch take that long (a cloud's API answers in tens of milliseconds).
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Collection
from pathlib import Path

from sqlalchemy import func, select

from daaas.portal.db import worker_session_factory
from daaas.portal.machines.models import Machine
from daaas.portal.machines.reconciler import Reconciler
from daaas.portal.providers import LaunchSpec, ProviderState, ProviderStatus
from tests.support.providers import InMemoryProvider

#: Give up after this long (seconds): a worker that never finishes fails the test, not hangs.
DEADLINE = 600.0


class RecordingProvider(InMemoryProvider):
    """The in-memory double, recording every launch call (a repeat included) in order."""

    def __init__(self, launch_seconds: float) -> None:
        super().__init__(max_sessions=10**6)
        self.launch_seconds = launch_seconds
        self.launched: list[str] = []

    def launch(self, spec: LaunchSpec) -> None:
        """Record the call, wait ``launch_seconds``, then launch as the parent does."""
        self.launched.append(spec.machine_id)
        if self.launch_seconds:
            time.sleep(self.launch_seconds)
        super().launch(spec)

    def poll(self, machine_ids: Collection[str]) -> dict[str, ProviderStatus]:
        """Report every machine still being built. The workers share one cloud, but each
        process's double knows only its own launches: a woken cycle's poll of the machines on
        their way would otherwise find the others' "gone". Still building, every launched
        machine stays ``provisioning``, which the test counts."""
        return {mid: ProviderStatus(ProviderState.BUILDING) for mid in machine_ids}


def main(argv: list[str]) -> None:
    """Run as described in the module's docstring."""
    url, result, start = argv[0], Path(argv[1]), Path(argv[2])
    provider = RecordingProvider(float(argv[3]) / 1000 if len(argv) > 3 else 0.0)
    factory = worker_session_factory(url)
    worker = Reconciler(factory, provider, secret_key="several-workers",
                        ready_timeout_seconds=3600)
    began = time.monotonic()
    while not start.exists():
        if time.monotonic() - began > DEADLINE:
            raise SystemExit("never started")
        time.sleep(0.005)
    cycles: list[float] = []
    began = time.monotonic()
    while time.monotonic() - began < DEADLINE:
        at = time.monotonic()
        worker.run_asked()
        cycles.append(time.monotonic() - at)
        with factory() as db:
            left = db.scalar(select(func.count()).select_from(Machine)
                             .where(Machine.state == "requested"))
        if not left:
            break
    result.write_text(json.dumps({"launched": provider.launched, "cycles": cycles,
                                  "seconds": time.monotonic() - began}), encoding="utf-8")
    factory.kw["bind"].dispose()


if __name__ == "__main__":
    main(sys.argv[1:])
