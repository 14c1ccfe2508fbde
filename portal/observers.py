"""The worker's looks at Slurm, ICAT and Manila for the pages (issue 19), after each cycle.

Pages and API GETs read what these recorded and never ask Slurm, ICAT or Manila themselves:
the jobs every ``hpc_observe_interval_seconds`` (:mod:`daaas.portal.hpc.observer`), the
experiments of users who just signed in or are active and due
(:meth:`ExperimentBackend.refresh_due`), checked every :data:`EXPERIMENTS_EVERY`, and the
sizes of the users' Manila shares (one listing, every :data:`SHARES_EVERY`), which My Data and
the quota show.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from datetime import datetime, timedelta

from sqlalchemy.orm import Session, sessionmaker

from daaas.portal.config import Settings
from daaas.portal.db import utcnow
from daaas.portal.experiments.backends import EXPERIMENT_BACKENDS, ExperimentBackend
from daaas.portal.hpc.observer import JobObserver
from daaas.portal.machines.claims import Claims

log = logging.getLogger(__name__)

#: How often the worker looks for users whose experiments are due to be asked about again.
EXPERIMENTS_EVERY = timedelta(seconds=10)
#: How often the worker lists the portal's Manila shares for their sizes.
SHARES_EVERY = timedelta(seconds=60)


class Observers:
    """Runs each look when it is due; :meth:`run_due` never raises. With ``claims`` (the
    reconciler's), a look another worker is running is skipped, and the Slurm look is skipped
    when another worker looked within the interval, so several workers split the looks."""

    def __init__(self, session_factory: sessionmaker[Session], settings: Settings,
                 clock: Callable[[], datetime] = utcnow, claims: Claims | None = None) -> None:
        self.jobs = JobObserver(session_factory, settings, clock)
        self.settings, self.clock, self.claims = settings, clock, claims
        self._experiments: ExperimentBackend | None = None
        self._last: dict[str, datetime] = {}

    def run_due(self) -> None:
        """Observe the jobs, refresh the experiments and the shares' sizes, each when due.
        Never raises."""
        with self._claimed("jobs") as mine:
            if mine:
                self.jobs.run_due()
        if self._due("experiments", EXPERIMENTS_EVERY):
            with self._claimed("experiments") as mine:
                if mine:
                    self._refresh_experiments()
        if self.settings.storage_backend == "manila" and self._due("shares", SHARES_EVERY):
            with self._claimed("shares") as mine:
                if mine:
                    self._refresh_shares()

    def _refresh_experiments(self) -> None:
        try:
            if self._experiments is None:
                self._experiments = EXPERIMENT_BACKENDS.build(self.settings)
            self._experiments.refresh_due()
        except Exception:
            log.exception("experiments not refreshed")

    def _refresh_shares(self) -> None:
        try:
            from daaas.portal.storage.manila import ManilaStorage
            from daaas.portal.storage.service import backend

            storage = backend(self.settings)
            if isinstance(storage, ManilaStorage):
                storage.refresh_sizes()
        except Exception:
            log.exception("share sizes not read")

    @contextmanager
    def _claimed(self, what: str) -> Iterator[bool]:
        """Yield True unless another worker runs the look ``what`` now. Never waits."""
        with ExitStack() as stack:
            mine = True
            if self.claims is not None:
                try:
                    mine = stack.enter_context(self.claims.hold(f"daaas-observe-{what}"))
                except Exception:  # cannot tell: look anyway (a look is idempotent)
                    log.exception("claim for the %s look not taken", what)
            yield mine

    def _due(self, what: str, every: timedelta) -> bool:
        now, last = self.clock(), self._last.get(what)
        if last is not None and now - last < every:
            return False
        self._last[what] = now
        return True
