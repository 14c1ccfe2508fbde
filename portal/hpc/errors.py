"""Errors of the HPC domain, each saying what went wrong, on which cluster, and what to do."""

from __future__ import annotations

from daaas.portal.errors import Forbidden, PortalError


class HpcNotConfigured(PortalError):
    """The portal has no HPC cluster configured."""

    status_code = 503
    code = "hpc_not_configured"

    def __init__(self) -> None:
        super().__init__("This portal has no HPC cluster configured, so jobs cannot be submitted "
                         "from here. Ask the facility's support if you need one.")


class HpcUnavailable(PortalError):
    """The cluster (slurmrestd or its controller) cannot be reached, or is misconfigured."""

    status_code = 503
    code = "hpc_unavailable"


class HpcTokenRejected(PortalError):
    """The cluster refused the short-lived token the portal made for the user."""

    status_code = 502
    code = "hpc_token_rejected"


class PartitionNotAllowed(Forbidden):
    """The partition is not offered for this environment by the portal's settings."""

    code = "partition_not_allowed"


class JobRejected(PortalError):
    """Slurm refused the job; the message carries Slurm's own reason."""

    status_code = 422
    code = "job_rejected"


class HpcRequestFailed(PortalError):
    """Slurm answered a request about existing jobs with an error (its message is shown)."""

    status_code = 502
    code = "hpc_request_failed"
