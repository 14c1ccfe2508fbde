"""JSON API for HPC jobs: cluster, submit, list, get, cancel, output (bodies: :mod:`.schemas`)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from flask import Blueprint

from daaas.portal.api.schema import ID, dump, parse_body, parse_query, with_ids
from daaas.portal.auth.current import require_user
from daaas.portal.hpc import schemas, service
from daaas.portal.hpc.jobview import JobView, job_json
from daaas.portal.hpc.offer import offer
from daaas.portal.hpc.submission import from_mapping
from daaas.portal.lifecycle import db
from daaas.portal.runtime import runtime

blueprint = with_ids(Blueprint("hpc_api", __name__, url_prefix="/api/v1"))


@blueprint.get("/hpc")
def cluster() -> dict[str, Any]:
    """Say whether a cluster is configured, and what the user may submit (from ``?machine=``)."""
    query = parse_query(schemas.OfferQuery)
    found = offer(db(), runtime().settings, require_user(), query.machine)
    return dump(schemas.HpcOffer.model_validate(found.as_json()))


@blueprint.post("/jobs")
def submit() -> tuple[dict[str, Any], int]:
    """Submit a job as the user; 201 with the job.

    Raises InvalidInput for a body that is not a :class:`~schemas.JobSubmission`, and what
    :func:`service.submit` raises.
    """
    user = require_user()
    body = parse_body(schemas.JobSubmission)
    job = service.submit(db(), runtime().settings, user,
                         from_mapping(body.model_dump(), body.parameters))
    return reply(job), 201


@blueprint.get("/jobs")
def list_jobs() -> dict[str, Any]:
    """List the user's jobs as the worker last observed them (``?machine=`` or
    ``?experiment=`` for those from one); Slurm is not asked."""
    settings, query = runtime().settings, parse_query(schemas.JobListQuery)
    found = service.list_jobs(db(), settings, require_user(), query.machine, query.experiment)
    return dump(schemas.JobList(
        cluster=settings.hpc_cluster, problem=found.problem,
        observed_at=found.observed_at.isoformat() if found.observed_at else None,
        jobs=[schemas.Job.model_validate(job_json(job, found.observed_at))
              for job in found.jobs]))


@blueprint.get(f"/jobs/<{ID}:job_id>")
def get_job(job_id: int) -> dict[str, Any]:
    """Return one of the user's jobs as the worker last observed it."""
    found = service.get_job(db(), runtime().settings, require_user(), job_id)
    return reply(found.jobs[0], found.observed_at)


@blueprint.delete(f"/jobs/<{ID}:job_id>")
def cancel(job_id: int) -> tuple[dict[str, Any], int]:
    """Cancel one of the user's jobs; 202 with the job as Slurm now sees it."""
    return reply(service.cancel(db(), runtime().settings, require_user(), job_id)), 202


@blueprint.get(f"/jobs/<{ID}:job_id>/output")
def job_output(job_id: int) -> dict[str, Any]:
    """Return the end of the job's output file, or why it cannot be shown."""
    found = service.output(db(), runtime().settings, require_user(), job_id)
    return dump(schemas.JobOutput(path=found.path, available=found.available, text=found.text,
                                  truncated=found.truncated, message=found.problem))


def reply(job: JobView, observed_at: datetime | None = None) -> dict[str, Any]:
    """Return ``job`` as the API's :class:`~schemas.Job` (its state as of ``observed_at``).

    Raises pydantic.ValidationError when :func:`job_json` writes what the model does not
    declare (a bug: the document would lie).
    """
    return dump(schemas.Job.model_validate(job_json(job, observed_at)))
