"""What an analysis machine needs to be a Slurm submit host.

Two halves, kept apart on purpose: :func:`client_settings` goes into the Context (user-data,
readable by anything on the VM, so no credential), and :func:`secret_files` is handed over once
by the bootstrap exchange: a JWT for the session's user, expiring with the machine at the
latest. With ``SLURM_CONF_SERVER`` (configless Slurm) and ``SLURM_JWT`` set, ``sbatch`` and
``squeue`` work without munge or a copy of slurm.conf, and only as that user. (The profile
script exporting them, and the "Submit to HPC" desktop icon, are contextualisation's.)
"""

from __future__ import annotations

import json
import logging
from datetime import datetime, timedelta
from typing import Any

from daaas.portal.config import Settings
from daaas.portal.hpc import site
from daaas.portal.hpc.errors import PartitionNotAllowed
from daaas.portal.hpc.token import KeyUnreadable, mint, read_key
from daaas.portal.machines.models import Machine

log = logging.getLogger(__name__)
#: Where the machine's Slurm token is installed (inside the exchange's /etc/daaas/secrets).
JWT_PATH = "/etc/daaas/secrets/slurm.jwt"
#: daaas-submit's settings (where slurmrestd is, the user's storage folder on the cluster),
#: delivered with the token so the command needs nothing else.
SUBMIT_CONFIG_PATH = "/etc/daaas/secrets/hpc.json"


def configured(settings: Settings) -> bool:
    """Return True when the portal has an HPC cluster configured. Raises nothing."""
    return bool(settings.hpc_slurmrestd_url)


def client_settings(settings: Settings) -> dict[str, str]:
    """Return the Context's ``hpc`` site part (contextualisation's HpcSettings fields): where
    the cluster is, never a credential. Empty when no cluster is configured. Raises nothing."""
    if not configured(settings):
        return {}
    return {"cluster_name": settings.hpc_cluster, "slurmctld_host": settings.hpc_slurmctld_host,
            "slurmrestd_url": machine_slurmrestd_url(settings)}


def machine_slurmrestd_url(settings: Settings) -> str:
    """Return slurmrestd's URL as machines reach it (``hpc_machine_slurmrestd_url``, e.g. a
    QEMU guest's forwarded address), else the portal's own. Raises nothing."""
    return settings.hpc_machine_slurmrestd_url or settings.hpc_slurmrestd_url


def secret_files(settings: Settings, machine: Machine, now: datetime) -> list[dict[str, Any]]:
    """Return the HPC files for the bootstrap exchange's ``files`` list: the user's Slurm JWT,
    readable by the user only, valid for ``hpc_machine_token_hours`` but never past the
    machine's own expiry. Empty when no cluster is configured, machine tokens are off
    (hours = 0), the machine has expired, or the key cannot be read (logged: the machine still
    starts, only without HPC). Raises nothing."""
    if not configured(settings) or settings.hpc_machine_token_hours == 0:
        return []
    until = min(now + timedelta(hours=settings.hpc_machine_token_hours), machine.expires_at)
    lifetime = int((until - now).total_seconds())
    if lifetime <= 0:
        return []
    try:
        token = mint(read_key(settings.hpc_jwt_key_file), machine.user.username, now, lifetime)
    except (KeyUnreadable, ValueError) as exc:
        log.error("machine %s gets no Slurm token: %s", machine.id, exc)
        return []
    return [{"path": JWT_PATH, "content": token + "\n", "mode": "0400",
             "owner": machine.user.username},
            {"path": SUBMIT_CONFIG_PATH, "content": submit_config(settings, machine),
             "mode": "0400", "owner": machine.user.username}]


def submit_config(settings: Settings, machine: Machine) -> str:
    """Return daaas-submit's JSON settings for the machine's user: slurmrestd's URL and API
    version, the cluster, the user, the token file, the folder the user's jobs run in and
    write their output to (``hpc_work_dir``: their storage as the cluster sees it) and the
    partition offered to the machine's environment. No credential. Raises nothing."""
    try:
        partition = site.check_partition(settings, machine.environment, "")
    except PartitionNotAllowed:  # never for an empty request; kept total
        partition = ""
    return json.dumps({
        "slurmrestd_url": machine_slurmrestd_url(settings),
        "api_version": settings.hpc_api_version,
        "cluster": settings.hpc_cluster, "username": machine.user.username,
        "token_file": JWT_PATH, "work_dir": site.work_dir(settings, machine.user.username),
        "partition": partition, "machine_id": machine.id}, indent=2) + "\n"
