"""slurmrestd's answers and Slurm's error numbers, turned into errors a person can act on."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import requests

from daaas.portal.hpc.errors import HpcTokenRejected, HpcUnavailable

#: Slurm reports a refused token as "Unspecified error" (-1) or "Zero Bytes were transmitted or
#: received" (5005); -1 also means "controller down" on reads. Such answers are probed again.
AMBIGUOUS = frozenset({-1, 5005})
TOKEN_REFUSED = frozenset({5005, 1007})  # ... and SLURM_PROTOCOL_AUTHENTICATION_ERROR
#: Communication errors: slurmrestd is up but cannot talk to slurmctld.
CONTROLLER_DOWN = frozenset({1001, 1002, 1003, 1004, 1800, 1801, 1802, 1803, 5004})


class SlurmError(NamedTuple):
    """One entry of slurmrestd's ``errors`` list."""

    code: int
    message: str


def errors_in(body: dict[str, Any]) -> list[SlurmError]:
    """Return the errors slurmrestd listed in ``body`` (empty when none). Raises nothing."""
    found = []
    for entry in body.get("errors") or []:
        if isinstance(entry, dict):
            code = entry.get("error_number", entry.get("error_code", -1))
            text = entry.get("description") or entry.get("error") or "no reason given"
            found.append(SlurmError(int(code) if isinstance(code, int) else -1, str(text)))
    return found


def body_of(response: requests.Response, cluster: str) -> dict[str, Any]:
    """Return slurmrestd's JSON answer.

    Raises HpcTokenRejected for HTTP 401/403 and HpcUnavailable for an answer that is not
    slurmrestd's JSON (a proxy's error page, say).
    """
    if response.status_code in (401, 403):
        raise token_rejected(cluster, f"slurmrestd answered HTTP {response.status_code}")
    try:
        body: Any = response.json()
    except ValueError:
        body = None
    if not isinstance(body, dict):
        raise HpcUnavailable(
            f"The HPC cluster '{cluster}' answered in a way the portal does not understand. "
            "Try again later; if it keeps happening, tell the facility's support.",
            f"slurmrestd {response.url}: HTTP {response.status_code}, not JSON: "
            f"{response.text[:200]!r}")
    return body


def translate(error: SlurmError, cluster: str,
              otherwise: Callable[[str], Exception]) -> Exception:
    """Return the portal error for a Slurm error: a refused token, a controller that is down,
    or ``otherwise(Slurm's message)``. Raises nothing."""
    if error.code in TOKEN_REFUSED:
        return token_rejected(cluster, f"Slurm error {error.code}: {error.message}")
    if error.code in CONTROLLER_DOWN:
        return HpcUnavailable(
            f"The HPC cluster '{cluster}' is not answering: its controller cannot be contacted "
            "(Slurm says: " + error.message + "). Try again in a few minutes; if it keeps "
            "failing, tell the facility's support.", f"Slurm error {error.code}: {error.message}")
    return otherwise(error.message)


def token_rejected(cluster: str, detail: str) -> HpcTokenRejected:
    """Return the error for a token the cluster did not accept. Raises nothing."""
    return HpcTokenRejected(
        f"The HPC cluster '{cluster}' did not accept the sign-in token the portal made for you: "
        "it has expired by the cluster's clock, or it was not signed with the cluster's key. "
        "Try again in a minute; if it keeps happening, tell the facility's support (the "
        "portal's and the cluster's clocks or JWT keys differ).",
        f"token refused by {cluster}: {detail}")
