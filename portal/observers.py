"""The worker's looks at Slurm and ICAT for the pages (issue 19), run after each cycle.

Pages and API GETs read what these recorded and never ask Slurm or ICAT themselves: the jobs
every ``hpc_observe_interval_seconds`` (:mod:`daaas.portal.hpc.observer`), the experiments of
users who just signed in or are active and due (:meth:`ExperimentBackend.refresh_due`),
checked every :data:`EXPERIMENTS_EVERY`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime, timedelta

from sqlalchemy.orm import Session, sessionmaker

from daaas.portal.config import Settings
from daaas.portal.db import utcnow
from daaas.portal.experiments.backends import EXPERIMENT_BACKENDS, ExperimentBackend
from daaas.portal.hpc.observer import JobObserver

log = logging.getLogger(__name__)

#: How often the worker looks for users whose experiments are due to be asked about again.
EXPERIMENTS_EVERY = timedelta(seconds=10)


class Observers:
    """Runs each look when it is due; :meth:`run_due` never raises."""

    def __init__(self, session_factory: sessionmaker[Session], settings: Settings,
                 clock: Callable[[], datetime] = utcnow) -> None:
        self.jobs = JobObserver(session_factory, settings, clock)
        self.settings, self.clock = settings, clock
        self._experiments: ExperimentBackend | None = None
        self._experiments_at: datetime | None = None

    def run_due(self) -> None:
        """Observe the jobs and refresh the experiments when due. Never raises."""
        self.jobs.run_due()
        now = self.clock()
        if self._experiments_at is not None and now - self._experiments_at < EXPERIMENTS_EVERY:
            return
        self._experiments_at = now
        try:
            if self._experiments is None:
                self._experiments = EXPERIMENT_BACKENDS.build(self.settings)
            self._experiments.refresh_due()
        except Exception:
            log.exception("experiments not refreshed")
