"""The ``local`` storage backend on cloud VMs: this host exports each user's folder by NFS.

``local_storage_export`` says how a cloud VM reaches a user's folder ``var_dir/storage/<user>``
(``10.0.2.100:/storage/{username}``, always ending in ``/{username}``); a VM is told only its
owner's folder (:func:`local_export_source`). The exports themselves are the NFS server's: one
per user folder, read-write, every client uid squashed to the folder's owner, open only to the
cloud VMs' networks and to clients on a privileged port (root's, never a VM user's).
:func:`user_exports` lists them and :func:`ganesha_exports` / :func:`kernel_exports` write
them for NFS-Ganesha or the kernel's nfsd (``daaas storage exports``, run again when users are
added; the server is told to re-read its exports).
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from daaas.portal.auth.models import User
from daaas.portal.config import Settings
from daaas.portal.storage.backends import MISCONFIGURED, ensure_folder, local_export_source
from daaas.portal.storage.errors import StorageError

#: Ganesha export ids of user folders are this plus the user's database id (ids below it stay
#: free for the site's own exports; Ganesha's ids end at 65535).
EXPORT_ID_BASE = 10000
MAX_EXPORT_ID = 65535
_PATH_RE = re.compile(r"^/[A-Za-z0-9_./@+-]*$")


@dataclass(frozen=True)
class UserExport:
    """One user's folder as the NFS server exports it.

    ``path`` is the folder on this host, ``pseudo`` the path VMs mount (the template's path
    part), ``uid``/``gid`` the folder's owner, whom every client id is squashed to.
    """

    username: str
    path: Path
    pseudo: str
    uid: int
    gid: int
    export_id: int


def pseudo_path(settings: Settings, username: str) -> str:
    """Return the path part of the user's mount source: what the NFS server must export the
    folder as. Raises StorageError for a malformed template."""
    return local_export_source(settings, username).rpartition(":")[2]  # IPv6: [fd00::1]:/x


def storage_folder(settings: Settings, username: str) -> Path:
    """Return the user's folder on this host (``var_dir/storage/<user>``). Raises nothing."""
    return settings.var_path / "storage" / username


def user_exports(settings: Settings, users: Iterable[User], *,
                 create: bool = False) -> list[UserExport]:
    """Return the export of each user's folder, by user name; users without a folder are left
    out unless ``create`` makes it (mode 700, the user's when running as root).

    Raises StorageError when ``local_storage_export`` is empty or malformed, or a user's
    database id is too large for an export id; OSError when a folder cannot be made.
    """
    if not settings.local_storage_export:
        raise StorageError(MISCONFIGURED, "local_storage_export is empty: cloud VMs are not "
                           "told of any export, so there is nothing to export")
    exports = []
    for user in sorted(users, key=lambda u: u.username):
        folder = storage_folder(settings, user.username)
        if create:
            if not folder.parent.is_dir():
                folder.parent.mkdir(parents=True)
                folder.parent.chmod(0o711)
            ensure_folder(folder, user)
        if not folder.is_dir():
            continue
        export_id = EXPORT_ID_BASE + user.id
        if export_id > MAX_EXPORT_ID:
            raise StorageError(MISCONFIGURED, f"user {user.username} (id {user.id}) is past "
                               f"the export ids Ganesha allows ({MAX_EXPORT_ID})")
        owner = folder.stat()
        exports.append(UserExport(username=user.username, path=folder,
                                  pseudo=pseudo_path(settings, user.username),
                                  uid=owner.st_uid, gid=owner.st_gid, export_id=export_id))
    return exports


def check_clients(clients: Sequence[str]) -> tuple[str, ...]:
    """Return the client networks as written (addresses or CIDR networks), checked.

    Raises StorageError naming the first that is not an address or network, or when there is
    none (an export open to anyone who reaches the server is never written).
    """
    if not clients:
        raise StorageError(MISCONFIGURED, "name the networks the cloud VMs come from "
                           "(e.g. --clients 10.0.0.0/16)")
    for client in clients:
        try:
            ipaddress.ip_network(client, strict=False)
        except ValueError:
            raise StorageError(MISCONFIGURED, f"{client!r} is not an address or network") \
                from None
    return tuple(clients)


def ganesha_exports(exports: Sequence[UserExport], clients: Sequence[str], *,
                    insecure_ports: bool = False) -> str:
    """Return NFS-Ganesha EXPORT blocks, one per user folder: NFSv4 over TCP, read-write only
    for ``clients``, every client uid/gid squashed to the folder's owner, and only from a
    privileged source port (below 1024: only root on the client can open one, so a VM's user
    cannot talk NFS with a client of their own) unless ``insecure_ports`` (QEMU's user
    network, whose forwards connect from any port).

    Raises StorageError for bad ``clients`` or a path Ganesha's syntax cannot carry.
    """
    allowed = ", ".join(check_clients(clients))
    privileged = "false" if insecure_ports else "true"
    blocks = ["# Written by `daaas storage exports`: one export per user folder.\n"]
    for export in exports:
        _check_path(export)
        blocks.append(
            f"EXPORT {{\n  Export_Id = {export.export_id};\n  Path = \"{export.path}\";\n"
            f"  Pseudo = \"{export.pseudo}\";\n  Protocols = 4;\n  Transports = TCP;\n"
            "  Access_Type = None;\n  Squash = All_Squash;\n"
            f"  Anonymous_Uid = {export.uid};\n  Anonymous_Gid = {export.gid};\n"
            f"  SecType = sys;\n  PrivilegedPort = {privileged};\n"
            f"  CLIENT {{ Clients = {allowed}; Access_Type = RW; }}\n"
            "  FSAL { Name = VFS; }\n}\n")
    return "".join(blocks)


def kernel_exports(exports: Sequence[UserExport], clients: Sequence[str], *,
                   insecure_ports: bool = False) -> str:
    """Return /etc/exports lines for the kernel's nfsd, one per user folder, with the same
    rules as :func:`ganesha_exports` (``secure``, or ``insecure`` for ``insecure_ports``; the
    VMs mount the folder's own path: set ``local_storage_export`` to
    ``host:<var_dir>/storage/{username}``).

    Raises StorageError for bad ``clients`` or a path exports(5) cannot carry.
    """
    lines = ["# Written by `daaas storage exports --format exports`: one per user folder.\n"]
    for export in exports:
        _check_path(export)
        options = (f"rw,sync,no_subtree_check,{'insecure' if insecure_ports else 'secure'},"
                   f"all_squash,anonuid={export.uid},anongid={export.gid},sec=sys")
        lines.append(f"{export.path} "
                     + " ".join(f"{client}({options})" for client in check_clients(clients))
                     + "\n")
    return "".join(lines)


def _check_path(export: UserExport) -> None:
    if not _PATH_RE.match(str(export.path)):
        raise StorageError(MISCONFIGURED, f"{export.path} cannot be written in an exports file")
