"""The site's HPC settings read for use: the partitions offered, the users' work folders.

The settings themselves are checked when they are loaded (:mod:`daaas.portal.config`); the
backend is built by :data:`daaas.portal.hpc.backend.HPC_BACKENDS`.
"""

from __future__ import annotations

from daaas.catalogue import Environment
from daaas.portal.config import Settings, parse_partitions
from daaas.portal.hpc.errors import PartitionNotAllowed


def allowed_partitions(settings: Settings,
                       environment: Environment | None) -> tuple[str, ...]:
    """Return the partitions offered for jobs from a machine of ``environment`` (its catalogue
    entry's ``hpc_partitions``), else the site's ``hpc_partitions``; empty means any.

    Raises nothing (the setting was checked at start-up, the catalogue when loaded).
    """
    listed = environment.hpc_partitions if environment else ()
    return listed or parse_partitions(settings.hpc_partitions)


def check_partition(settings: Settings, environment: Environment | None,
                    partition: str) -> str:
    """Return the partition to use: the one asked for, or the first offered (empty: Slurm's
    default). Raises PartitionNotAllowed naming the partitions that are offered."""
    offered = allowed_partitions(settings, environment)
    if not partition or not offered or partition in offered:
        return partition or (offered[0] if offered else "")
    where = f"jobs from {environment.title} machines" \
        if environment else "jobs submitted here"
    raise PartitionNotAllowed(
        f"The partition '{partition}' is not offered for {where}. Choose one of: "
        f"{', '.join(offered)}.")


def work_dir(settings: Settings, username: str) -> str:
    """Return the folder the user's portal jobs run in. Raises nothing."""
    return settings.hpc_work_dir.replace("{username}", username)

