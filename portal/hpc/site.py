"""The site's HPC settings read for use: partitions offered, folders, the backend.

Parsing functions raise ValueError so :class:`daaas.portal.config.Settings` can name the bad key at
start-up.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from daaas.portal.hpc.backend import HpcBackend
from daaas.portal.hpc.errors import HpcNotConfigured, PartitionNotAllowed

if TYPE_CHECKING:
    from daaas.portal.config import Settings

_NAME_RE = re.compile(r"^[A-Za-z0-9_.-]+$")


def parse_partitions(value: str) -> tuple[str, ...]:
    """Return the partitions of a comma-separated list such as ``"debug, long"``.

    Raises ValueError naming an entry that is not a partition name.
    """
    names = tuple(name.strip() for name in value.split(",") if name.strip())
    for name in names:
        if not _NAME_RE.match(name):
            raise ValueError(f"'{name}' is not a partition name (letters, digits, . _ -)")
    return names


def check_work_dir(value: str) -> str:
    """Return ``value`` if it is an absolute folder whose only placeholder is ``{username}``.

    Raises ValueError otherwise.
    """
    rest = value.replace("{username}", "")
    if not value.startswith("/") or "{" in rest or "}" in rest:
        raise ValueError("must be an absolute path; {username} is the only placeholder")
    return value


def allowed_partitions(settings: Settings,
                       environment: Mapping[str, Any] | None) -> tuple[str, ...]:
    """Return the partitions offered for jobs from a machine of ``environment`` (its catalogue
    entry's ``hpc_partitions``), else the site's ``hpc_partitions``; empty means any.

    Raises nothing (the setting was checked at start-up, the catalogue when loaded).
    """
    listed = tuple(environment.get("hpc_partitions") or ()) if environment else ()
    return listed or parse_partitions(settings.hpc_partitions)


def check_partition(settings: Settings, environment: Mapping[str, Any] | None,
                    partition: str) -> str:
    """Return the partition to use: the one asked for, or the first offered (empty: Slurm's
    default). Raises PartitionNotAllowed naming the partitions that are offered."""
    offered = allowed_partitions(settings, environment)
    if not partition or not offered or partition in offered:
        return partition or (offered[0] if offered else "")
    where = f"jobs from {environment.get('title') or environment.get('name')} machines" \
        if environment else "jobs submitted here"
    raise PartitionNotAllowed(
        f"The partition '{partition}' is not offered for {where}. Choose one of: "
        f"{', '.join(offered)}.")


def work_dir(settings: Settings, username: str) -> str:
    """Return the folder the user's portal jobs run in. Raises nothing."""
    return settings.hpc_work_dir.replace("{username}", username)


def backend(settings: Settings) -> HpcBackend:
    """Return the configured HPC backend. Raises HpcNotConfigured when there is none."""
    from daaas.portal.hpc.slurm import SlurmRestBackend

    if not settings.hpc_slurmrestd_url:
        raise HpcNotConfigured()
    return SlurmRestBackend(settings.hpc_slurmrestd_url, settings.hpc_api_version,
                            settings.hpc_cluster, settings.hpc_jwt_key_file,
                            token_lifetime_seconds=settings.hpc_token_lifetime_seconds,
                            timeout_seconds=settings.hpc_timeout_seconds)
