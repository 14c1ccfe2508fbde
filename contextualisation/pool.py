"""Warm pools on cloud machines (issue 20): the user-data of a pooled machine, which carries no
user, and the session part of the claim's answer, which carries the claimer's.

A pooled machine boots with :func:`render_pool_user_data`: a bootstrap.json in *pool mode*
(:func:`pool_document`: the machine, the portal, a pool bootstrap token, the CVMFS repositories,
the user-independent services) and the environment's system-wide files, but no account, no
storage mount, no Desktop copies and no ``vncserver.users``. Its agent sets up what needs no
user, reports ``pooled-ready`` and waits for a claim. When a launch claims it, the portal's
answer to the agent's claim request carries :func:`claimed_session` of the claimer's Context:
the account to create, where their secrets go, their storage mounts and the access services
to start as them. BOOTSTRAP_PROTOCOL.md, "Pool mode", is the contract.
"""

from __future__ import annotations

import gzip
import json
from typing import Any

from daaas.contextualisation.bootstrap import (
    ACCESS_UNITS,
    AGENT_PATH,
    BOOTSTRAP_CONFIG_PATH,
    DOCUMENT_VERSION,
    SECRET_DIRS,
    VNC_DISPLAY,
    bootstrap_document,
    services,
)
from daaas.contextualisation.context import Context
from daaas.contextualisation.errors import UserDataTooLarge
from daaas.contextualisation.files import File, session_files
from daaas.contextualisation.mounts import FSTYPES
from daaas.contextualisation.render import (
    NOVA_USER_DATA_LIMIT,
    _write_file,
    cvmfs_fstab,
    dump_cloud_config,
    encoded_size,
)

#: The bootstrap.json mode of a pooled machine
POOL_MODE = "pool"
#: The VNC server's user map, written by the agent once the machine has its user
VNC_USERS_PATH = "/etc/tigervnc/vncserver.users"
#: Where the environment's desktop entries are installed system-wide
APPLICATIONS = "/usr/share/applications"
#: The access service that runs as the user (``vncserver.users`` names them), so it starts
#: after the claim. xrdp and sshd are root daemons that need no user: they start while the
#: machine waits in its pool (xrdp's first start makes its keys: ~20 s on an emulated VM), and
#: accept no one until the claim (no account, no RDP verifier settings, no authorized keys).
USER_UNITS = frozenset({ACCESS_UNITS["vnc"]})


def pool_files(ctx: Context) -> list[File]:
    """Return the files of a pooled machine: the session's files without any that names or
    belongs to a user (the Desktop copies, the VNC user map), and the pool-mode bootstrap.json.
    ``ctx`` is built for the pool account, whose name appears nowhere. Raises nothing."""
    kept = [f for f in session_files(ctx)
            if not f.defer and f.path not in (BOOTSTRAP_CONFIG_PATH, VNC_USERS_PATH)]
    document = json.dumps(pool_document(ctx), indent=2) + "\n"
    return [File(BOOTSTRAP_CONFIG_PATH, document, "0600"), *kept]


def desktop_entries(ctx: Context) -> list[str]:
    """Return the system-wide desktop entries the agent copies to the claimer's Desktop (the
    files a session's user-data would have written there). Raises nothing."""
    desktop = f"{ctx.user.home}/Desktop/"
    return [f"{APPLICATIONS}/{f.path.removeprefix(desktop)}" for f in session_files(ctx)
            if f.defer and f.path.startswith(desktop)]


def pool_document(ctx: Context) -> dict[str, Any]:
    """Return bootstrap.json for a pooled machine: no ``user``, no mounts, only the services
    that need no user (the VNC server starts after the claim, as the user). Raises nothing."""
    enable, disable = services(ctx)
    return {
        "version": DOCUMENT_VERSION,
        "mode": POOL_MODE,
        "machine_id": ctx.machine_id,
        "environment": ctx.environment_name,
        "callback_url": ctx.callback_url,
        "token": ctx.bootstrap_token,
        "cvmfs_repositories": list(ctx.cvmfs_repositories),
        "secret_dirs": list(SECRET_DIRS),
        "services": {"enable": [unit for unit in enable if unit not in USER_UNITS],
                     "disable": disable},
        "desktop_files": desktop_entries(ctx),
    }


def claimed_session(ctx: Context) -> dict[str, Any]:
    """Return the ``session`` of the claim's answer for the claimer's Context: their account,
    where their VNC password, SSH keys and RDP settings go, their storage mounts (read-write,
    mounted by the agent) and the services to start once the account exists (the VNC server,
    as them). Raises nothing."""
    document = bootstrap_document(ctx)
    enable, _ = services(ctx)
    return {
        "user": {**document["user"], "full_name": ctx.user.full_name},
        "vnc_password_file": document["vnc_password_file"],
        "authorized_keys_file": document["authorized_keys_file"],
        "rdp_sign_in_file": document["rdp_sign_in_file"],
        "vnc_users": f":{VNC_DISPLAY}={ctx.user.username}\n" if ctx.access.vnc else None,
        "storage_mounts": [{"fstype": FSTYPES[m.kind], "source": m.source, "target": m.target,
                            "options": m.fstab_options} for m in ctx.mounts],
        "services": {"enable": [unit for unit in enable if unit in USER_UNITS]},
    }


def build_pool_cloud_config(ctx: Context) -> dict[str, Any]:
    """Return a pooled machine's cloud-config: no user (``users: []`` also keeps the image's
    default user away), the files of :func:`pool_files`, CVMFS fstab lines, the agent.
    Raises nothing."""
    config: dict[str, Any] = {"users": [], "disable_root": True, "ssh_pwauth": False,
                              "write_files": [_write_file(f) for f in pool_files(ctx)]}
    mounts = cvmfs_fstab(ctx)
    if mounts:
        config["mounts"] = mounts
    config["runcmd"] = [[AGENT_PATH]]
    return config


def render_pool_user_data(ctx: Context) -> bytes:
    """Return a pooled machine's user-data (gzip-compressed when large), as
    :func:`daaas.contextualisation.render.render_user_data` does for a session.

    Raises UserDataTooLarge when even the compressed form exceeds Nova's limit.
    """
    plain = dump_cloud_config(build_pool_cloud_config(ctx)).encode("utf-8")
    if encoded_size(plain) <= NOVA_USER_DATA_LIMIT:
        return plain
    compressed = gzip.compress(plain, compresslevel=9, mtime=0)
    if encoded_size(compressed) <= NOVA_USER_DATA_LIMIT:
        return compressed
    raise UserDataTooLarge(ctx.environment_name, encoded_size(compressed), NOVA_USER_DATA_LIMIT,
                           len(ctx.launchers))
