"""An unfinished HPC job launched from a machine keeps it from being stopped as idle.

Asked by the reconciler only for the machines it is about to warn or stop, so an idle cycle
never calls the cluster. The recorded jobs' states are refreshed from Slurm (as the owner,
the way the jobs page does); when the cluster cannot be asked, the last recorded state counts,
so a job is never cut short by a cluster's hiccup.
"""

from __future__ import annotations

import logging
from collections import defaultdict

from sqlalchemy import select
from sqlalchemy.orm import Session, joinedload

from daaas.portal.config import Settings
from daaas.portal.errors import PortalError
from daaas.portal.hpc.backend import FINAL_STATES, HPC_BACKENDS
from daaas.portal.hpc.models import HpcJob
from daaas.portal.hpc.service import refresh

log = logging.getLogger(__name__)


def machines_with_jobs(db: Session, settings: Settings, machine_ids: list[str]) -> set[str]:
    """Return which of ``machine_ids`` have a job launched from them that has not ended,
    after refreshing those jobs' rows from the cluster (one listing per owner). Raises
    nothing beyond database errors: a cluster that cannot be asked leaves the rows as they
    are (logged)."""
    if not machine_ids:
        return set()
    rows = list(db.scalars(select(HpcJob).options(joinedload(HpcJob.user)).where(
        HpcJob.machine_id.in_(machine_ids), HpcJob.state.not_in(FINAL_STATES))))
    by_user: dict[int, list[HpcJob]] = defaultdict(list)
    for row in rows:
        by_user[row.user_id].append(row)
    for jobs in by_user.values():
        _refresh_from_cluster(settings, jobs)
    return {row.machine_id for row in rows
            if row.machine_id is not None and row.state not in FINAL_STATES}


def _refresh_from_cluster(settings: Settings, jobs: list[HpcJob]) -> None:
    """Bring one owner's ``jobs`` up to what Slurm says; leave them when it cannot tell."""
    user = jobs[0].user
    try:
        backend = HPC_BACKENDS.build(settings)
        live = {info.job_id: info for info in backend.jobs(user.username)
                if info.user == user.username}
    except PortalError as exc:
        log.info("jobs of %s not refreshed for the idle stop (recorded states count): %s",
                 user.username, exc.log_message)
        return
    for row in jobs:
        if row.cluster == backend.cluster:
            refresh(row, live.get(row.slurm_job_id))
