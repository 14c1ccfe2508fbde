"""The worker's view of Slurm (issue 19): what the jobs pages and API read instead of asking.

Every ``hpc_observe_interval_seconds`` the worker lists, as each watched user, that user's jobs
(one ``GET /jobs`` per user, never one request per job) and writes what changed into
``hpc_jobs``; ``hpc_observations`` keeps when each user's jobs were last listed, which the pages
show as their age. Watched are the users with a job not yet ended and the owners of a machine
starting or ready (from whose terminal a job may be submitted with sbatch). No transaction is
open while Slurm is asked: read who to ask (one query), ask, then record each user in a short
transaction of its own. A job the worker finds before the portal's own submission has recorded
it gets a ``cluster`` row that the submission replaces (it deletes any row of its job id before
adding its own); the other way round the worker's insert fails on the unique job id and that
user is recorded on the next look.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import func, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from daaas.portal.auth.models import User
from daaas.portal.config import Settings
from daaas.portal.db import unit_of_work, utcnow
from daaas.portal.errors import PortalError
from daaas.portal.hpc.backend import FINAL_STATES, HPC_BACKENDS, HpcBackend, JobInfo
from daaas.portal.hpc.errors import HpcNotConfigured, HpcUnavailable
from daaas.portal.hpc.models import HpcJob, HpcObservation
from daaas.portal.hpc.service import record_info, refresh
from daaas.portal.machines.models import Machine

log = logging.getLogger(__name__)

#: Machine states whose owner may submit with sbatch from its terminal (now or soon).
LIVE = ("requested", "provisioning", "contextualising", "ready")


@dataclass(frozen=True)
class Watched:
    """A user whose jobs are listed: the portal's id and the names Slurm knows."""

    user_id: int
    username: str
    uid: int


class JobObserver:
    """Lists the watched users' jobs every ``hpc_observe_interval_seconds`` and records them."""

    def __init__(self, session_factory: sessionmaker[Session], settings: Settings,
                 clock: Callable[[], datetime] = utcnow) -> None:
        self.session_factory, self.settings, self.clock = session_factory, settings, clock
        self.interval = timedelta(seconds=settings.hpc_observe_interval_seconds)
        self._last: datetime | None = None

    def run_due(self) -> int:
        """Observe when the interval has passed since this worker's last look and no other
        worker looked within it; return the number of users listed (0 when not due or no
        cluster is configured). Never raises: a failure is logged and tried again next time."""
        now = self.clock()
        if self._last is not None and now - self._last < self.interval:
            return 0
        self._last = now
        try:
            HPC_BACKENDS.build(self.settings)
        except HpcNotConfigured:
            return 0  # no cluster: nothing to read either
        try:
            if self._looked_since(now - self.interval * 0.9):
                return 0  # another worker looked within the interval
            return self.observe()
        except Exception:
            log.exception("HPC jobs not observed")
            return 0

    def _looked_since(self, moment: datetime) -> bool:
        """Return True when any worker's last look (on any cluster) was after ``moment``."""
        with self.session_factory() as db:
            last = db.scalar(select(func.max(HpcObservation.checked_at)))
        return last is not None and last > moment

    def observe(self) -> int:
        """List every watched user's jobs now and record what changed; return how many users
        were listed. Raises database errors only: a user Slurm does not answer for keeps the
        rows last recorded, with the problem noted for the pages."""
        try:
            backend = HPC_BACKENDS.build(self.settings)
        except HpcNotConfigured:
            return 0
        with self.session_factory() as db:
            users = watched(db, backend.cluster)
        down = ""  # once the cluster cannot be reached, the others are not asked this time
        for user in users:
            down = self._observe_one(backend, user, down)
        return len(users)

    def _observe_one(self, backend: HpcBackend, user: Watched, down: str) -> str:
        """Ask for and record one user's jobs (unless ``down`` says why the cluster cannot be
        reached); return why it cannot be reached, if it turned out so."""
        infos: list[JobInfo] | None = None
        problem = down
        if not down:
            try:
                infos = backend.jobs(user.username)
            except HpcUnavailable as exc:
                problem = down = exc.user_message
                log.warning("HPC cluster not observed: %s", exc.log_message)
            except PortalError as exc:
                problem = exc.user_message
                log.info("jobs of %s not listed: %s", user.username, exc.log_message)
        try:
            with unit_of_work(self.session_factory) as db:
                record(db, user, backend.cluster, infos, problem, self.clock())
        except IntegrityError as exc:  # a submission recorded the same job a moment ago
            log.info("jobs of %s recorded next time: %s", user.username, exc.orig)
        return down


def watched(db: Session, cluster: str) -> list[Watched]:
    """Return the users whose jobs the worker lists: those with a job on ``cluster`` not yet
    ended, and the owners of a machine starting or ready (one query). Privileged accounts
    (uid below 1000) are never listed. Raises nothing beyond database errors."""
    unfinished = select(HpcJob.user_id).where(HpcJob.cluster == cluster,
                                              HpcJob.state.not_in(FINAL_STATES))
    on_machine = select(Machine.user_id).where(Machine.state.in_(LIVE))
    rows = db.execute(select(User.id, User.username, User.uid).where(
        or_(User.id.in_(unfinished), User.id.in_(on_machine)), User.uid >= 1000)
        .order_by(User.id))
    return [Watched(*row) for row in rows]


def record(db: Session, user: Watched, cluster: str, infos: list[JobInfo] | None,
           problem: str, now: datetime) -> None:
    """Record one user's listing (``infos``; None: Slurm did not answer, ``problem`` says why):
    rows whose job changed are updated, jobs no longer listed become ENDED, jobs submitted
    elsewhere get a row; the user's observation gets its time. Raises nothing beyond database
    errors."""
    observation = db.get(HpcObservation, (user.user_id, cluster)) \
        or HpcObservation(user_id=user.user_id, cluster=cluster)
    db.add(observation)
    observation.checked_at, observation.problem = now, problem
    if infos is None:
        return
    observation.observed_at = now
    live = {info.job_id: info for info in infos
            if info.user == user.username and info.uid in (None, user.uid)}
    rows = db.scalars(select(HpcJob).where(
        HpcJob.cluster == cluster,
        or_(HpcJob.slurm_job_id.in_(list(live)),
            (HpcJob.user_id == user.user_id) & HpcJob.state.not_in(FINAL_STATES))))
    for row in rows:
        if row.user_id == user.user_id:
            refresh(row, live.pop(row.slurm_job_id, None))
        else:  # a row of an older Slurm life of the same id: not this job
            live.pop(row.slurm_job_id, None)
    for info in live.values():
        db.add(record_info(user.user_id, cluster, info, now))

