"""JSON API for HPC jobs: the cluster, submit, list, get, cancel, output."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, request

from daaas.portal.auth.current import require_user
from daaas.portal.errors import InvalidInput
from daaas.portal.hpc import service
from daaas.portal.hpc.jobview import job_json
from daaas.portal.hpc.offer import offer
from daaas.portal.hpc.submission import from_mapping
from daaas.portal.lifecycle import db
from daaas.portal.runtime import runtime

blueprint = Blueprint("hpc_api", __name__, url_prefix="/api/v1")


@blueprint.get("/hpc")
def cluster() -> dict[str, Any]:
    """Say whether a cluster is configured, and what the user may submit (from ``?machine=``)."""
    return offer(db(), runtime().settings, require_user(),
                 request.args.get("machine", "")).as_json()


@blueprint.post("/jobs")
def submit() -> tuple[dict[str, Any], int]:
    """Submit a job as the user; 201 with the job."""
    body = request.get_json(silent=True)
    if not isinstance(body, dict) or not isinstance(body.get("parameters", {}), dict):
        raise InvalidInput('Send JSON like {"script": "#!/bin/bash\\n...", "partition": "debug"} '
                           'or {"template": "list-data", "parameters": {...}}.')
    job = service.submit(db(), runtime().settings, require_user(),
                         from_mapping(body, body.get("parameters", {})))
    return job_json(job), 201


@blueprint.get("/jobs")
def list_jobs() -> dict[str, Any]:
    """List the user's jobs (``?machine=`` or ``?experiment=`` for those from one)."""
    settings, experiment = runtime().settings, request.args.get("experiment", "")
    if experiment and not experiment.isdigit():
        raise InvalidInput("'experiment' must be an experiment's id, e.g. ?experiment=12.")
    jobs = service.list_jobs(db(), settings, require_user(), request.args.get("machine", ""),
                             int(experiment) if experiment else None)
    return {"cluster": settings.hpc_cluster, "jobs": [job_json(job) for job in jobs]}


@blueprint.get("/jobs/<int:job_id>")
def get_job(job_id: int) -> dict[str, Any]:
    """Return one of the user's jobs."""
    return job_json(service.get_job(db(), runtime().settings, require_user(), job_id))


@blueprint.delete("/jobs/<int:job_id>")
def cancel(job_id: int) -> tuple[dict[str, Any], int]:
    """Cancel one of the user's jobs; 202 with the job as Slurm now sees it."""
    return job_json(service.cancel(db(), runtime().settings, require_user(), job_id)), 202


@blueprint.get("/jobs/<int:job_id>/output")
def job_output(job_id: int) -> dict[str, Any]:
    """Return the end of the job's output file, or why it cannot be shown."""
    found = service.output(db(), runtime().settings, require_user(), job_id)
    return {"path": found.path, "available": found.available, "text": found.text,
            "truncated": found.truncated, "message": found.problem}
