"""Launch step 3, context: what a cloud-init machine is told at boot, and its bootstrap token.

:func:`launch_user_data` is the step as the reconciler runs it: mint the machine's single-use
bootstrap token, prepare the user's storage mount, build the session's
:class:`daaas.contextualisation.Context` and render it into cloud-init user-data. The Context is
built here and only here (also for ``daaas context render`` and the administrators' view): the
site part (where the VM reaches the portal, the CVMFS client settings, the HPC cluster) from the
portal's settings, the user part from the account, the environment from the machine's snapshot
of its catalogue entry.
"""

from __future__ import annotations

import gzip
from collections.abc import Sequence
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy.orm import Session

from daaas.catalogue import Environment
from daaas.contextualisation import Context, Mount, context_from_parts, render_user_data
from daaas.contextualisation.pool import render_pool_user_data
from daaas.cvmfs import CvmfsClientSettings
from daaas.cvmfs.registry import load_registry
from daaas.portal.auth.models import User
from daaas.portal.bootstrap.models import MachineContext
from daaas.portal.config import Settings
from daaas.portal.hpc.machine import client_settings
from daaas.portal.machines.models import Machine
from daaas.portal.machines.secrets import bootstrap_token, token_digest
from daaas.portal.storage.service import machine_mounts

#: What ``daaas context render`` puts where the real machine's id and token go.
PLACEHOLDER_MACHINE_ID = "placeholder-machine-id"
PLACEHOLDER_TOKEN = "PLACEHOLDER-single-use-bootstrap-token"


def launch_user_data(db: Session, settings: Settings, secret_key: str, machine: Machine,
                     now: datetime) -> bytes:
    """Mint (or refresh) the machine's bootstrap token and return its user-data.

    The token is derived from the secret key, so a launch repeated after a crash renders the
    same user-data; its expiry is reset to ``now`` + the configured TTL while it is unused.
    The user's storage is created on first need. A warm pool's machine gets the pool-mode
    user-data of :func:`daaas.contextualisation.pool.render_pool_user_data` (no user, no
    storage: the claim's answer brings them). Raises
    contextualisation.ContextualisationError with a message for the user, OSError or a
    storage error (portal.storage.errors) when the user's storage cannot be prepared.
    """
    token = bootstrap_token(secret_key, machine.id)
    if machine.pool is not None:  # a warm pool's machine: no user, no storage (issue 20)
        rendered = render_pool_user_data(build_context(settings, machine.user, machine.id,
                                                       machine.environment, token))
    else:
        mounts = machine_mounts(settings, machine.user, machine.id)
        rendered = user_data(settings, machine.user, machine.id, machine.environment, token,
                             mounts)
    ttl = timedelta(minutes=settings.bootstrap_token_ttl_minutes)
    row = db.get(MachineContext, machine.id)
    if row is None:
        db.add(MachineContext(machine_id=machine.id, token_hash=token_digest(token), created_at=now,
                              expires_at=now + ttl))
    elif row.used_at is None:
        row.token_hash, row.expires_at = token_digest(token), now + ttl
    return rendered


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
    ``mounts`` are its storage mounts (:func:`daaas.portal.storage.service.machine_mounts`).

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
    """Return a machine's user-data as text for administrators, with the token replaced (a
    warm pool's machine: its pool-mode user-data).

    Gzipped user-data is shown decompressed. Raises ContextualisationError like user_data.
    """
    if machine.pool is not None or machine.claimed_at is not None:  # booted in a pool
        data = render_pool_user_data(build_context(settings, machine.user, machine.id,
                                                   machine.environment, PLACEHOLDER_TOKEN))
    else:
        data = user_data(settings, machine.user, machine.id, machine.environment,
                         PLACEHOLDER_TOKEN)
    if data[:2] == b"\x1f\x8b":
        data = gzip.decompress(data)
    return data.decode("utf-8", errors="replace")
