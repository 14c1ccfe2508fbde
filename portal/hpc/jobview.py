"""One job as the pages and the API show it, whether the portal submitted it or not."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from flask import g, url_for

from daaas.portal.hpc.backend import FINAL_STATES
from daaas.portal.hpc.models import HpcJob


@dataclass(frozen=True)
class JobView:
    """A job's public fields. ``origin`` is ``portal`` for jobs submitted here, ``cluster`` for
    jobs Slurm lists that were submitted elsewhere (e.g. with sbatch on a machine)."""

    job_id: int
    cluster: str
    name: str
    state: str
    reason: str
    partition: str
    exit_code: int | None
    work_dir: str
    output_path: str
    submitted_at: datetime | None
    ended_at: datetime | None
    origin: Literal["portal", "cluster"]
    machine_id: str | None = None
    experiment_id: int | None = None
    template: str = ""

    @property
    def final(self) -> bool:
        """Return True when the job has ended. Raises nothing."""
        return self.state in FINAL_STATES


def from_row(row: HpcJob) -> JobView:
    """Return the view of a job's row (submitted here, or found in Slurm's listing). Raises
    nothing."""
    origin: Literal["portal", "cluster"] = "cluster" if row.origin == "cluster" else "portal"
    return JobView(row.slurm_job_id, row.cluster, row.name, row.state, row.reason,
                   row.partition, row.exit_code, row.work_dir, row.output_path,
                   row.submitted_at, row.ended_at, origin, row.machine_id, row.experiment_id,
                   row.template)


#: A job's links by name: the endpoint each is built from (with ``job_id``).
LINKS = {"page": "hpc.job_page", "output": "hpc_api.job_output"}
PLACEHOLDER = 987654321987654321  # an id no cluster gives, replaced in the built links


def _link_templates() -> dict[str, str]:
    """Return each link with :data:`PLACEHOLDER` for the job id, built once per request
    (``url_for`` per job and link was a fifth of the jobs list's time)."""
    if "job_link_templates" not in g:
        g.job_link_templates = {name: url_for(endpoint, job_id=PLACEHOLDER)
                                for name, endpoint in LINKS.items()}
    templates: dict[str, str] = g.job_link_templates
    return templates


def job_json(job: JobView, observed_at: datetime | None = None) -> dict[str, Any]:
    """Return the job as the API's ``Job`` object, with links and the time of the listing its
    state is as of. Raises nothing."""
    def when(value: datetime | None) -> str | None:
        return value.isoformat() if value else None

    return {
        "id": job.job_id, "cluster": job.cluster, "name": job.name, "state": job.state,
        "reason": job.reason, "final": job.final, "partition": job.partition,
        "exit_code": job.exit_code, "work_dir": job.work_dir, "output_path": job.output_path,
        "submitted_at": when(job.submitted_at), "ended_at": when(job.ended_at),
        "origin": job.origin, "machine_id": job.machine_id,
        "experiment_id": job.experiment_id, "template": job.template,
        "observed_at": when(observed_at),
        "links": {name: link.replace(str(PLACEHOLDER), str(job.job_id))
                  for name, link in _link_templates().items()},
    }
