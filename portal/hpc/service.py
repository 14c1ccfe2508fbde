"""Job rules: submit as the user, list, get, cancel, read output.

Slurm is the truth about a job; the portal's rows keep where each job came from (session,
experiment, template) and its state as last observed. Pages and API GETs read only the rows:
the worker lists the users' jobs every few seconds (:mod:`daaas.portal.hpc.observer`) and
``hpc_observations`` says how old that listing is. Submitting and cancelling are actions and
ask Slurm with no transaction open, recording what it answered at once.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from daaas.portal.auth.models import User
from daaas.portal.config import Settings
from daaas.portal.db import end_transaction, utcnow
from daaas.portal.errors import Conflict, Forbidden, NotFound
from daaas.portal.hpc.backend import HPC_BACKENDS, HpcBackend, JobInfo
from daaas.portal.hpc.errors import JobRejected
from daaas.portal.hpc.jobview import JobView, from_row
from daaas.portal.hpc.models import HpcJob, HpcObservation
from daaas.portal.hpc.output import JobOutput, read_output
from daaas.portal.hpc.submission import Submission, job_spec
from daaas.portal.hpc.token import PRIVILEGED_NAMES
from daaas.portal.machines.models import Machine

GONE = "ENDED"
GONE_REASON = "Slurm no longer lists this job: it ended a while ago. Its output stays."
MAX_LISTED = 200


@dataclass(frozen=True)
class Jobs:
    """A user's jobs as last observed, and when (``observed_at`` None: not listed yet);
    ``problem`` says why the last listing failed, if it did."""

    jobs: list[JobView]
    observed_at: datetime | None
    problem: str = ""

    def age_seconds(self, now: datetime | None = None) -> int | None:
        """Return how many seconds ago the jobs were listed (None: never). Raises nothing."""
        if self.observed_at is None:
            return None
        return max(0, int(((now or utcnow()) - self.observed_at).total_seconds()))


def submit(db: Session, settings: Settings, user: User, request: Submission) -> JobView:
    """Submit the job as ``user`` and record where it came from; return it.

    Raises HpcNotConfigured, Forbidden (a privileged account), NotFound (a machine that is not
    the user's, an unknown template), InvalidInput, PartitionNotAllowed, JobRejected (Slurm's
    reason), HpcTokenRejected and HpcUnavailable.
    """
    backend = _backend(settings, user)
    machine = _machine(db, user, request.machine_id)
    spec = job_spec(settings, user, machine, request)
    end_transaction(db)  # no transaction (and no lock) open while Slurm answers
    job_id = backend.submit(user.username, replace(spec, held=True))
    _check_runs_as(backend, user, job_id)
    backend.release(user.username, job_id)
    db.execute(delete(HpcJob).where(HpcJob.cluster == backend.cluster,
                                    HpcJob.slurm_job_id == job_id))  # from an older Slurm life
    row = HpcJob(user=user, cluster=backend.cluster, slurm_job_id=job_id,
                 machine_id=machine.id if machine else None,
                 experiment_id=machine.experiment_id if machine else None, name=spec.name,
                 template=request.template, partition=spec.partition, state="PENDING",
                 work_dir=spec.work_dir, output_path=spec.output_path.replace("%j", str(job_id)),
                 submitted_at=utcnow(), updated_at=utcnow())
    db.add(row)
    db.flush()
    return from_row(row)


def list_jobs(db: Session, settings: Settings, user: User, machine_id: str = "",
              experiment_id: int | None = None) -> Jobs:
    """Return the user's jobs as last observed, newest first: those submitted here and, unless
    filtered by machine or experiment, those the worker found in Slurm's listing that were
    submitted elsewhere (a machine's terminal). Asks Slurm nothing (two queries).

    Raises HpcNotConfigured and Forbidden.
    """
    backend = _backend(settings, user)
    rows = _rows(db, user, backend.cluster, machine_id, experiment_id)
    seen = db.get(HpcObservation, (user.id, backend.cluster))
    jobs = sorted((from_row(row) for row in rows), key=lambda view: view.job_id, reverse=True)
    return Jobs(jobs, seen.observed_at if seen else None, seen.problem if seen else "")


def recorded_jobs(db: Session, user: User, *, machine_id: str = "",
                  experiment_id: int | None = None) -> list[JobView]:
    """Return the jobs the portal submitted for ``user`` from a machine or an experiment, in
    their last known state, without asking the cluster (for the machine and experiment pages).

    Raises nothing.
    """
    return [from_row(row) for row in _rows(db, user, None, machine_id, experiment_id)]


def _rows(db: Session, user: User, cluster: str | None, machine_id: str,
          experiment_id: int | None) -> list[HpcJob]:
    query = select(HpcJob).where(HpcJob.user_id == user.id)
    if cluster is not None:
        query = query.where(HpcJob.cluster == cluster)
    if machine_id:
        query = query.where(HpcJob.machine_id == machine_id)
    if experiment_id is not None:
        query = query.where(HpcJob.experiment_id == experiment_id)
    return list(db.scalars(query.order_by(HpcJob.submitted_at.desc(), HpcJob.id.desc())
                           .limit(MAX_LISTED)))


def get_job(db: Session, settings: Settings, user: User, job_id: int) -> Jobs:
    """Return one of the user's jobs as last observed (``jobs`` holds it alone), with the age
    of the user's last listing. Asks Slurm nothing.

    Raises NotFound for a job the portal has not recorded for the user, HpcNotConfigured and
    Forbidden.
    """
    backend = _backend(settings, user)
    row = _row(db, user, backend.cluster, job_id)
    seen = db.get(HpcObservation, (user.id, backend.cluster))
    return Jobs([from_row(row)], seen.observed_at if seen else None, seen.problem if seen else "")


def cancel(db: Session, settings: Settings, user: User, job_id: int) -> JobView:
    """Cancel one of the user's jobs (as the user) and return it as Slurm now sees it (the
    row is updated at once).

    Raises NotFound, Conflict for a job that has already ended, HpcNotConfigured, Forbidden,
    HpcTokenRejected, HpcUnavailable and HpcRequestFailed.
    """
    backend = _backend(settings, user)
    row = _row(db, user, backend.cluster, job_id)
    if from_row(row).final:
        raise Conflict(f"Job {job_id} has already ended ({row.state}); there is nothing to "
                       "cancel.")
    end_transaction(db)  # no transaction (and no lock) open while Slurm answers
    backend.cancel(user.username, job_id)
    info = backend.job(user.username, job_id)
    return from_row(refresh(row, info if info is not None and _same(user, info) else None))


def output(db: Session, settings: Settings, user: User, job_id: int) -> JobOutput:
    """Return the job's output as far as the portal can read it (the user's own files only).

    Raises what :func:`get_job` raises.
    """
    job = get_job(db, settings, user, job_id).jobs[0]
    return read_output(job.output_path, user.uid)


def refresh(row: HpcJob, info: JobInfo | None) -> HpcJob:
    """Bring the row up to what Slurm says (``info``; None: Slurm no longer lists it). The row
    is written, and ``updated_at`` set, only when something changed: a listing of jobs that
    did not change writes nothing. Raises nothing."""
    if info is not None:
        now = {"state": info.state, "reason": info.reason, "partition": info.partition,
               "exit_code": info.exit_code, "ended_at": info.ended_at}
    elif not from_row(row).final:
        now = {"state": GONE, "reason": GONE_REASON}
    else:
        return row
    if any(getattr(row, name) != value for name, value in now.items()):
        for name, value in now.items():
            setattr(row, name, value)
        row.updated_at = utcnow()
    return row


def record_info(user_id: int, cluster: str, info: JobInfo, now: datetime) -> HpcJob:
    """Return a new row (origin ``cluster``) for a job of the user's that Slurm lists and the
    portal did not submit. Raises nothing."""
    return HpcJob(user_id=user_id, cluster=cluster, slurm_job_id=info.job_id, origin="cluster",
                  name=info.name[:200], partition=info.partition, state=info.state,
                  reason=info.reason, exit_code=info.exit_code, work_dir=info.work_dir,
                  output_path=info.output_path, submitted_at=info.submitted_at or now,
                  updated_at=now, ended_at=info.ended_at)


def _row(db: Session, user: User, cluster: str, job_id: int) -> HpcJob:
    row = db.scalar(select(HpcJob).where(HpcJob.user_id == user.id, HpcJob.cluster == cluster,
                                         HpcJob.slurm_job_id == job_id))
    if row is None:
        raise NotFound(f"You have no job {job_id} on the HPC cluster '{cluster}' that the "
                       "portal has seen yet. A job submitted elsewhere shows here within a "
                       "minute.")
    return row


def _check_runs_as(backend: HpcBackend, user: User, job_id: int) -> None:
    """Cancel the (held) job unless it belongs to the user's own uid: Slurm 22.05 files a job
    for a name it has no account for under ``nobody``, and a cluster account of the same name
    but another uid is someone else."""
    info = backend.job(user.username, job_id)
    if info is not None and _same(user, info):
        return
    backend.cancel(user.username, job_id)
    raise JobRejected(
        f"The HPC cluster '{backend.cluster}' has no account '{user.username}' with your user "
        f"id ({user.uid}), so the portal will not run jobs there as you. Ask the facility's "
        "support to set up your account on the cluster.",
        f"job {job_id} of {user.username} ran as {info.user if info else 'nobody'} "
        f"(uid {info.uid if info else '?'}); cancelled")


def _same(user: User, info: JobInfo) -> bool:
    return info.user == user.username and info.uid in (None, user.uid)


def _backend(settings: Settings, user: User) -> HpcBackend:
    backend = HPC_BACKENDS.build(settings)
    if user.username in PRIVILEGED_NAMES or user.uid < 1000:
        raise Forbidden(f"The account '{user.username}' may not run jobs on the HPC cluster.")
    return backend


def _machine(db: Session, user: User, machine_id: str) -> Machine | None:
    if not machine_id:
        return None
    machine = db.get(Machine, machine_id)
    if machine is None or machine.user_id != user.id:
        raise NotFound(f"You have no machine '{machine_id}' to submit jobs from.")
    return machine
