"""Build a session's Context from the portal's data: the one recipe for the reconciler and the CLI.

The site part (where the VM reaches the portal, the CVMFS client settings, the HPC cluster) comes
from the portal's settings; the user part from the account; the environment is the resolved
catalogue entry stored on the machine.
"""

from __future__ import annotations

import gzip
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from daaas.catalogue import Environment
from daaas.contextualisation import Context, Mount, context_from_parts, render_user_data
from daaas.cvmfs import CvmfsClientSettings
from daaas.cvmfs.registry import load_registry
from daaas.portal.auth.models import User
from daaas.portal.config import Settings
from daaas.portal.hpc.machine import client_settings
from daaas.portal.machines.models import Machine

#: What ``daaas context render`` puts where the real machine's id and token go.
PLACEHOLDER_MACHINE_ID = "placeholder-machine-id"
PLACEHOLDER_TOKEN = "PLACEHOLDER-single-use-bootstrap-token"


def callback_url(settings: Settings) -> str:
    """Return the portal's base URL as a VM reaches it: ``public_url``, else http://host:port.

    Raises nothing.
    """
    return settings.public_url.rstrip("/") or f"http://{settings.host}:{settings.port}"


def site_settings(settings: Settings) -> dict[str, Any]:
    """Return the site part of a Context (keys of contextualisation's SITE_KEYS).

    CVMFS: the site's proxy chain and cache size from the settings, Stratum-1 servers from the
    CVMFS registry (public keys are baked into the image). HPC: where the cluster is, never a
    credential (:func:`daaas.portal.hpc.machine.client_settings`). Raises RegistryError for a broken
    registry file.
    """
    registry = load_registry(Path(settings.cvmfs_registry) if settings.cvmfs_registry else None)
    cvmfs = CvmfsClientSettings(http_proxy=settings.cvmfs_http_proxy, mount=settings.cvmfs_mount,
                                quota_limit_mb=settings.cvmfs_quota_mb,
                                server_urls=registry.server_urls())
    return {"callback_url": callback_url(settings), "cvmfs": cvmfs,
            "hpc": client_settings(settings)}


def account(user: User) -> dict[str, Any]:
    """Return the POSIX account fields of ``user`` for the VM. Raises nothing."""
    return {"username": user.username, "uid": user.uid, "gid": user.gid,
            "full_name": user.display_name}


def build_context(settings: Settings, user: User, machine_id: str,
                  environment: Environment, token: str,
                  mounts: Sequence[Mount] = ()) -> Context:
    """Return the Context of one session of ``environment`` (a catalogue entry);
    ``mounts`` are its storage mounts (:func:`daaas.portal.machines.mounts.cloud_mounts`).

    Raises contextualisation.InvalidContext (a ContextualisationError) with a message for the
    user when the account, the environment or the site settings cannot be used.
    """
    return context_from_parts(account(user), machine_id, environment, site_settings(settings),
                              bootstrap_token=token, mounts=mounts)


def user_data(settings: Settings, user: User, machine_id: str,
              environment: Environment, token: str, mounts: Sequence[Mount] = ()) -> bytes:
    """Return the cloud-init user-data for the session (gzip-compressed when large).

    Raises ContextualisationError: InvalidContext as :func:`build_context`, UserDataTooLarge
    (naming the environment) when it cannot fit the cloud's limit.
    """
    return render_user_data(build_context(settings, user, machine_id, environment, token,
                                          mounts))


def inspectable_user_data(settings: Settings, machine: Machine) -> str:
    """Return a machine's user-data as text for administrators, with the token replaced.

    Gzipped user-data is shown decompressed. Raises ContextualisationError like user_data.
    """
    data = user_data(settings, machine.user, machine.id, machine.environment, PLACEHOLDER_TOKEN)
    if data[:2] == b"\x1f\x8b":
        data = gzip.decompress(data)
    return data.decode("utf-8", errors="replace")
