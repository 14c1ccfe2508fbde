"""Jobs in slurmrestd v0.0.38's shapes: the submission body, and JobInfo from a job record."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

from daaas.portal.hpc.backend import JobInfo, JobSpec

_PATTERN_RE = re.compile(r"%(%|[A-Za-z])")
DEFAULT_PATH = "/usr/local/bin:/usr/bin:/bin"


def submission(spec: JobSpec) -> dict[str, Any]:
    """Return the ``POST /job/submit`` body for ``spec``. Raises nothing."""
    job: dict[str, Any] = {
        "name": spec.name,
        "current_working_directory": spec.work_dir,
        "standard_output": spec.output_path,
        "environment": dict(spec.environment) or {"PATH": DEFAULT_PATH},  # Slurm needs one
        "cpus_per_task": spec.cpus,
    }
    if spec.partition:
        job["partition"] = spec.partition
    if spec.time_limit_minutes:
        job["time_limit"] = spec.time_limit_minutes
    if spec.held:
        job["hold"] = True
    return {"script": spec.script, "job": job}


def job_info(job: dict[str, Any]) -> JobInfo:
    """Return the JobInfo of one record of slurmrestd's ``jobs`` list. Raises nothing."""
    job_id, state = int(job.get("job_id") or 0), str(job.get("job_state") or "UNKNOWN")
    final_time = _time(job.get("end_time")) if state not in ("PENDING", "RUNNING") else None
    return JobInfo(
        job_id=job_id, name=str(job.get("name") or ""), user=str(job.get("user_name") or ""),
        uid=job["user_id"] if isinstance(job.get("user_id"), int) else None, state=state,
        reason=_reason(job), partition=str(job.get("partition") or ""),
        exit_code=_exit_code(job.get("exit_code")) if final_time else None,
        work_dir=str(job.get("current_working_directory") or ""),
        output_path=output_path(job), submitted_at=_time(job.get("submit_time")),
        started_at=_time(job.get("start_time")) if state != "PENDING" else None,
        ended_at=final_time)


def output_path(job: dict[str, Any]) -> str:
    """Return where the job's standard output goes, with %j, %u, %x and %% filled in.

    Slurm's default is ``slurm-%j.out`` in the working directory. A pattern the portal cannot
    expand (%A, %N, ...) is returned as it is. Raises nothing.
    """
    pattern = str(job.get("standard_output") or "slurm-%j.out")
    values = {"j": str(job.get("job_id")), "u": str(job.get("user_name") or ""),
              "x": str(job.get("name") or ""), "%": "%"}
    path = _PATTERN_RE.sub(lambda m: values.get(m.group(1), m.group(0)), pattern)
    if not path.startswith("/"):
        path = f"{str(job.get('current_working_directory') or '').rstrip('/')}/{path}"
    return path


def _reason(job: dict[str, Any]) -> str:
    parts = [str(job.get(key) or "") for key in ("state_reason", "state_description")]
    return "; ".join(part for part in parts if part and part != "None")


def _exit_code(raw: Any) -> int | None:
    """Slurm's raw wait status: the exit status in the high byte, a signal in the low bits."""
    if not isinstance(raw, int):
        return None
    return raw >> 8 if raw & 0x7F == 0 else 128 + (raw & 0x7F)


def _time(value: Any) -> datetime | None:
    return datetime.fromtimestamp(value, UTC) if isinstance(value, int) and value > 0 else None
