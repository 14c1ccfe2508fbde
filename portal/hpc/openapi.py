"""OpenAPI path items and schemas of the HPC jobs API (merged into /api/v1's document)."""

from __future__ import annotations

from typing import Any

NULLABLE_TIME = {"type": ["string", "null"], "format": "date-time"}
JOB = {
    "type": "object",
    "required": ["id", "cluster", "name", "state", "reason", "final", "partition", "exit_code",
                 "work_dir", "output_path", "submitted_at", "ended_at", "origin", "machine_id",
                 "experiment_id", "template", "links"],
    "properties": {
        "id": {"type": "integer", "description": "Slurm's job id on the cluster."},
        "cluster": {"type": "string"}, "name": {"type": "string"},
        "state": {"type": "string", "description": "Slurm's job state, e.g. PENDING, RUNNING, "
                  "COMPLETED, FAILED, CANCELLED; ENDED when Slurm has forgotten the job."},
        "reason": {"type": "string"}, "final": {"type": "boolean"},
        "partition": {"type": "string"}, "exit_code": {"type": ["integer", "null"]},
        "work_dir": {"type": "string"}, "output_path": {"type": "string"},
        "submitted_at": NULLABLE_TIME, "ended_at": NULLABLE_TIME,
        "origin": {"enum": ["portal", "cluster"]},
        "machine_id": {"type": ["string", "null"]}, "experiment_id": {"type": ["integer", "null"]},
        "template": {"type": "string"},
        "links": {"type": "object", "required": ["page", "output"], "properties": {
            "page": {"type": "string"}, "output": {"type": "string"}}},
    },
}
PARAMETER = {"type": "object", "required": ["name", "label", "help", "default", "pattern"],
             "properties": {k: {"type": "string"} for k in
                            ("name", "label", "help", "default", "pattern")}}
SCHEMAS: dict[str, Any] = {
    "Job": JOB,
    "JobList": {"type": "object", "required": ["cluster", "jobs"], "properties": {
        "cluster": {"type": "string"},
        "jobs": {"type": "array", "items": {"$ref": "#/components/schemas/Job"}}}},
    "JobSubmission": {"type": "object", "properties": {
        "script": {"type": "string", "description": "A batch script starting with #!."},
        "template": {"type": "string", "description": "A job template's name (instead of a "
                                                      "script)."},
        "parameters": {"type": "object", "additionalProperties": {"type": ["string", "number"]}},
        "name": {"type": "string"}, "partition": {"type": "string"},
        "time_limit_minutes": {"type": "integer", "minimum": 1},
        "cpus": {"type": "integer", "minimum": 1},
        "machine_id": {"type": "string", "description": "The session the job comes from."}}},
    "JobOutput": {"type": "object", "required": ["path", "available", "text", "truncated",
                                                 "message"], "properties": {
        "path": {"type": "string"}, "available": {"type": "boolean"}, "text": {"type": "string"},
        "truncated": {"type": "boolean"}, "message": {"type": "string"}}},
    "HpcOffer": {"type": "object", "required": ["configured", "cluster", "message", "machine",
                                                "partitions", "templates"], "properties": {
        "configured": {"type": "boolean"}, "cluster": {"type": "string"},
        "message": {"type": "string"}, "machine": {"type": ["object", "null"]},
        "partitions": {"type": "array", "items": {"type": "string"},
                       "description": "Offered partitions; empty: any."},
        "templates": {"type": "array", "items": {
            "type": "object", "required": ["name", "title", "description", "parameters"],
            "properties": {"name": {"type": "string"}, "title": {"type": "string"},
                           "description": {"type": "string"},
                           "parameters": {"type": "array", "items": PARAMETER}}}}}},
}


def _json(schema: str, description: str) -> dict[str, Any]:
    return {"description": description,
            "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{schema}"}}}}


def _errors(*codes: int) -> dict[str, Any]:
    return {str(code): _json("Error", "Error") for code in codes}


CLUSTER_ERRORS = (502, 503)  # token refused / request failed; not configured / unreachable
JOB_ID = {"name": "job_id", "in": "path", "required": True, "schema": {"type": "integer"}}
MACHINE = {"name": "machine", "in": "query", "schema": {"type": "string"}}
PATHS: dict[str, Any] = {
    "/hpc": {"get": {"summary": "Whether an HPC cluster is configured; partitions and job "
                                "templates offered (for jobs from ?machine=)",
                     "parameters": [MACHINE],
                     "responses": {"200": _json("HpcOffer", "OK"), **_errors(401, 404)}}},
    "/jobs": {
        "get": {"summary": "The user's jobs (?machine= or ?experiment= for those from one)",
                "parameters": [MACHINE, {"name": "experiment", "in": "query",
                                         "schema": {"type": "integer"}}],
                "responses": {"200": _json("JobList", "OK"),
                              **_errors(400, 401, 403, *CLUSTER_ERRORS)}},
        "post": {"summary": "Submit a job as the user, from a script or a template",
                 "requestBody": {"required": True, "content": {"application/json": {
                     "schema": {"$ref": "#/components/schemas/JobSubmission"}}}},
                 "responses": {"201": _json("Job", "Submitted"),
                               **_errors(400, 401, 403, 404, 422, *CLUSTER_ERRORS)}},
    },
    "/jobs/{job_id}": {
        "parameters": [JOB_ID],
        "get": {"summary": "One of the user's jobs",
                "responses": {"200": _json("Job", "OK"), **_errors(401, 404, *CLUSTER_ERRORS)}},
        "delete": {"summary": "Cancel one of the user's jobs",
                   "responses": {"202": _json("Job", "Cancelling"),
                                 **_errors(401, 404, 409, *CLUSTER_ERRORS)}},
    },
    "/jobs/{job_id}/output": {
        "parameters": [JOB_ID],
        "get": {"summary": "The end of the job's output file, or why it cannot be shown",
                "responses": {"200": _json("JobOutput", "OK"),
                              **_errors(401, 404, *CLUSTER_ERRORS)}},
    },
}
