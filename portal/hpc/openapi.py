"""OpenAPI path items of the HPC jobs API; the bodies are the models in :mod:`.schemas`."""

from __future__ import annotations

from typing import Any

from daaas.portal.api.schema import ID_SCHEMA, content, errors, query_parameters, request_body
from daaas.portal.hpc.schemas import (
    HpcOffer,
    Job,
    JobList,
    JobListQuery,
    JobOutput,
    JobSubmission,
    OfferQuery,
)

CLUSTER_ERRORS = (502, 503)  # token refused / request failed; not configured / unreachable
JOB_ID = {"name": "job_id", "in": "path", "required": True, "schema": ID_SCHEMA}
PATHS: dict[str, Any] = {
    "/hpc": {"get": {"summary": "Whether an HPC cluster is configured; partitions and job "
                                "templates offered (for jobs from ?machine=)",
                     "parameters": query_parameters(OfferQuery),
                     "responses": {"200": content(HpcOffer, "OK"), **errors(400, 401, 404)}}},
    "/jobs": {
        "get": {"summary": "The user's jobs (?machine= or ?experiment= for those from one)",
                "parameters": query_parameters(JobListQuery),
                "responses": {"200": content(JobList, "OK"),
                              **errors(400, 401, 403, *CLUSTER_ERRORS)}},
        "post": {"summary": "Submit a job as the user, from a script or a template",
                 "requestBody": request_body(JobSubmission),
                 "responses": {"201": content(Job, "Submitted"),
                               **errors(400, 401, 403, 404, 422, *CLUSTER_ERRORS)}},
    },
    "/jobs/{job_id}": {
        "parameters": [JOB_ID],
        "get": {"summary": "One of the user's jobs",
                "responses": {"200": content(Job, "OK"), **errors(401, 404, *CLUSTER_ERRORS)}},
        "delete": {"summary": "Cancel one of the user's jobs",
                   "responses": {"202": content(Job, "Cancelling"),
                                 **errors(401, 404, 409, *CLUSTER_ERRORS)}},
    },
    "/jobs/{job_id}/output": {
        "parameters": [JOB_ID],
        "get": {"summary": "The end of the job's output file, or why it cannot be shown",
                "responses": {"200": content(JobOutput, "OK"),
                              **errors(401, 404, *CLUSTER_ERRORS)}},
    },
}
