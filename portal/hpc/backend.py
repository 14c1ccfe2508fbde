"""The HPC seam: what the portal asks of a batch system, whichever it is.

A backend acts for one named user at a time and never as a shared account. The production
implementation is :class:`daaas.portal.hpc.slurm.SlurmRestBackend`; the choice is the
``hpc_backend`` setting, built by :data:`HPC_BACKENDS`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING

from daaas.portal.backends import Registry

if TYPE_CHECKING:
    from daaas.portal.config import Settings

#: Job states after which a job never changes again (Slurm's names).
FINAL_STATES = frozenset({"COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "NODE_FAIL",
                          "PREEMPTED", "OUT_OF_MEMORY", "BOOT_FAIL", "DEADLINE", "ENDED"})


@dataclass(frozen=True)
class JobSpec:
    """A batch job to submit: the script and where and how it runs."""

    name: str
    script: str
    work_dir: str
    output_path: str
    partition: str = ""
    time_limit_minutes: int | None = None
    cpus: int = 1
    environment: dict[str, str] = field(default_factory=dict)
    held: bool = False  # submitted on hold, to start only once :meth:`HpcBackend.release`d


@dataclass(frozen=True)
class JobInfo:
    """What the batch system says about one job."""

    job_id: int
    name: str
    user: str
    uid: int | None
    state: str
    reason: str
    partition: str
    exit_code: int | None
    work_dir: str
    output_path: str
    submitted_at: datetime | None
    started_at: datetime | None
    ended_at: datetime | None

    @property
    def final(self) -> bool:
        """Return True when the job has ended and will not change again. Raises nothing."""
        return self.state in FINAL_STATES


class HpcBackend(ABC):
    """A batch system the portal submits to on behalf of its users."""

    #: The cluster's name as users see it.
    cluster: str

    @classmethod
    @abstractmethod
    def from_settings(cls, settings: Settings) -> HpcBackend:
        """Return the backend configured by the ``hpc_*`` settings.

        Raises HpcNotConfigured when the site has no cluster of this kind configured.
        """

    @abstractmethod
    def submit(self, username: str, spec: JobSpec) -> int:
        """Submit ``spec`` as ``username`` and return the new job's id.

        Raises JobRejected with the batch system's own reason, HpcTokenRejected when the
        cluster refuses the user's credentials, HpcUnavailable when it cannot be reached.
        """

    @abstractmethod
    def jobs(self, username: str) -> list[JobInfo]:
        """Return the jobs of ``username`` the batch system still knows, newest first.

        Raises HpcTokenRejected, HpcUnavailable or HpcRequestFailed.
        """

    @abstractmethod
    def job(self, username: str, job_id: int) -> JobInfo | None:
        """Return one job of ``username``, or None when it is unknown or someone else's.

        Raises HpcTokenRejected, HpcUnavailable or HpcRequestFailed.
        """

    @abstractmethod
    def release(self, username: str, job_id: int) -> None:
        """Let a job submitted on hold start.

        Raises HpcRequestFailed, HpcTokenRejected or HpcUnavailable.
        """

    @abstractmethod
    def cancel(self, username: str, job_id: int) -> None:
        """Cancel the job as ``username`` (the batch system checks ownership).

        Raises HpcRequestFailed with the batch system's reason when it refuses, and
        HpcTokenRejected or HpcUnavailable as above.
        """


#: The HPC backends by ``hpc_backend`` name; Slurm's client is imported only when chosen.
HPC_BACKENDS: Registry[HpcBackend] = Registry(
    "HPC backend", "hpc_backend", HpcBackend, {"slurm": "daaas.portal.hpc.slurm:SlurmRestBackend"})
