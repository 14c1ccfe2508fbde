"""Slurm through slurmrestd (OpenAPI v0.0.38, Slurm 21.08 to 23.02), authenticated per user by JWT.

Every request carries ``X-SLURM-USER-NAME`` and a token minted for that user a moment before,
so Slurm itself decides what the user may see and do. slurmrestd answers most failures with
HTTP 500 and a list of Slurm errors; they are translated here, the one place that knows them.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

import requests

from daaas.portal.config import Settings
from daaas.portal.db import utcnow
from daaas.portal.hpc.backend import HpcBackend, JobInfo, JobSpec
from daaas.portal.hpc.errors import HpcNotConfigured, HpcRequestFailed, HpcUnavailable, JobRejected
from daaas.portal.hpc.slurm_errors import AMBIGUOUS, SlurmError, body_of, errors_in, translate
from daaas.portal.hpc.slurm_jobs import job_info, submission
from daaas.portal.hpc.token import KeyUnreadable, mint, read_key

INVALID_JOB_ID = 2017
JOB_HELD = 2042  # "Job is in held state": what a job submitted on hold is told


class SlurmRestBackend(HpcBackend):
    """Submits, lists and cancels jobs through slurmrestd as the user asking."""

    def __init__(self, url: str, api_version: str, cluster: str, key_file: str, *,
                 token_lifetime_seconds: int = 300, timeout_seconds: float = 20.0,
                 clock: Callable[[], datetime] = utcnow) -> None:
        self.base = f"{url.rstrip('/')}/slurm/{api_version}"
        self.url, self.cluster, self.key_file = url, cluster, key_file
        self.token_lifetime, self.timeout = token_lifetime_seconds, timeout_seconds
        self.clock = clock

    @classmethod
    def from_settings(cls, settings: Settings) -> SlurmRestBackend:
        """Return the backend for ``hpc_slurmrestd_url``. Raises HpcNotConfigured when it is
        empty (the site has no cluster)."""
        if not settings.hpc_slurmrestd_url:
            raise HpcNotConfigured()
        return cls(settings.hpc_slurmrestd_url, settings.hpc_api_version, settings.hpc_cluster,
                   settings.hpc_jwt_key_file,
                   token_lifetime_seconds=settings.hpc_token_lifetime_seconds,
                   timeout_seconds=settings.hpc_timeout_seconds)

    def submit(self, username: str, spec: JobSpec) -> int:
        """Submit ``spec`` as ``username``; return Slurm's job id. Raises as HpcBackend.submit."""
        body = self._call("POST", "/job/submit", username, submission(spec))
        errors = [e for e in errors_in(body) if not (e.code == JOB_HELD and spec.held)]
        if errors:
            self._raise(errors, username, lambda text: JobRejected(
                f"Slurm on '{self.cluster}' rejected the job: {text}. Change what it names and "
                "submit again."))
        return int(body["job_id"])

    def jobs(self, username: str) -> list[JobInfo]:
        """Return the user's jobs Slurm still lists, newest first. Raises as HpcBackend.jobs."""
        body = self._checked("GET", "/jobs", username)
        found = [job_info(job) for job in body.get("jobs", []) if job.get("user_name") == username]
        return sorted(found, key=lambda job: job.job_id, reverse=True)

    def job(self, username: str, job_id: int) -> JobInfo | None:
        """Return one job of the user, or None. Raises as HpcBackend.job."""
        body = self._call("GET", f"/job/{job_id}", username)
        errors = errors_in(body)
        if errors and errors[0].code == INVALID_JOB_ID:
            return None
        if errors:
            self._raise(errors, username, self._request_failed)
        found = [job_info(job) for job in body.get("jobs", []) if job.get("user_name") == username]
        return found[0] if found else None

    def release(self, username: str, job_id: int) -> None:
        """Release the user's held job. Raises as HpcBackend.release."""
        self._checked("POST", f"/job/{job_id}", username, {"hold": False})

    def cancel(self, username: str, job_id: int) -> None:
        """Cancel the job as the user; Slurm checks ownership. Raises as HpcBackend.cancel."""
        self._checked("DELETE", f"/job/{job_id}", username)

    def _checked(self, method: str, path: str, username: str,
                 payload: dict[str, Any] | None = None) -> dict[str, Any]:
        body = self._call(method, path, username, payload)
        errors = errors_in(body)
        if errors:
            self._raise(errors, username, self._request_failed)
        return body

    def _request_failed(self, text: str) -> HpcRequestFailed:
        return HpcRequestFailed(f"Slurm on '{self.cluster}' refused the request: {text}.")

    def _raise(self, errors: list[SlurmError], username: str,
               otherwise: Callable[[str], Exception]) -> None:
        first = errors[0]
        if first.code in AMBIGUOUS:  # auth failure or controller down: ask again
            first = self._probe(username) or first
        raise translate(first, self.cluster, otherwise)

    def _probe(self, username: str) -> SlurmError | None:
        """Tell a refused token from a controller that is down: cancelling job 0 (which never
        exists) fails with 'invalid job id' when all is well, and with a precise error when
        not."""
        errors = errors_in(self._call("DELETE", "/job/0", username))
        if errors and errors[0].code != INVALID_JOB_ID:
            return errors[0]
        return None

    def _call(self, method: str, path: str, username: str,
              body: dict[str, Any] | None = None) -> dict[str, Any]:
        try:
            response = requests.request(method, self.base + path, json=body,
                                        headers=self._headers(username), timeout=self.timeout)
        except requests.RequestException as exc:
            raise HpcUnavailable(
                f"The HPC cluster '{self.cluster}' cannot be reached right now. Try again in a "
                "few minutes; if it keeps failing, tell the facility's support.",
                f"slurmrestd {self.url} unreachable: {exc}") from None
        return body_of(response, self.cluster)

    def _headers(self, username: str) -> dict[str, str]:
        try:
            key = read_key(self.key_file)
        except KeyUnreadable as exc:
            raise HpcUnavailable(
                f"The portal's connection to the HPC cluster '{self.cluster}' is not set up "
                "completely. The facility's support has been told; please try again later.",
                f"hpc_jwt_key_file: {exc}") from None
        token = mint(key, username, self.clock(), self.token_lifetime)
        return {"X-SLURM-USER-NAME": username, "X-SLURM-USER-TOKEN": token}
