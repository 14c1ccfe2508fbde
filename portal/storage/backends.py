"""User storage backends: where a user's persistent storage lives and how a machine mounts it.

A backend is a small class like the compute providers: a real default (``local``, a folder per
user on this host) and production ones (``nfs``: an existing NFS or CephFS export with a folder
per user; ``manila``: one OpenStack Manila share per user, :mod:`daaas.portal.storage.manila`). The
choice is ``storage_backend`` in the settings, a name in :data:`STORAGE_BACKENDS` or any
``module:Class``. Whatever the backend, storage is created on first need and never deleted with
a machine; machines mount it read-write at ``/home/<user>/storage``.
"""

from __future__ import annotations

import abc
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from daaas.contextualisation import Mount
from daaas.portal.auth.models import User
from daaas.portal.backends import Registry
from daaas.portal.config import Settings
from daaas.portal.storage.errors import StorageError
from daaas.portal.storage.usage import measure, used_bytes

#: Where a cloud machine mounts the user's storage (local sessions link ``~/storage`` too).
STORAGE_TARGET = "/home/{username}/storage"
GIB = 1024**3
NOT_EXPORTED = ("Your storage is not mounted on this machine: the portal keeps it on its own "
                "server, which does not share it with cloud machines. Copy results you want to "
                "keep to My Data (upload, or WebDAV) before the machine is deleted.")
_TEMPLATE_RE = re.compile(r"^[A-Za-z0-9_.\[\]:-]+:(/[A-Za-z0-9_./-]*)?/\{username\}$")
MISCONFIGURED = ("The portal's storage settings are incomplete, so your storage cannot be "
                 "prepared. Tell the portal administrators.")


@dataclass(frozen=True)
class StorageArea:
    """The user's storage as the portal host sees it, and how much of the quota it uses.

    ``path`` is the folder the portal itself reads and writes (My Data, WebDAV). ``on_portal``
    is False when that folder is not the storage machines mount (a Manila share the portal host
    does not mount); ``used_known`` is False when the usage could not be measured.
    ``quota_enforced_by_storage`` is True when ``quota_bytes`` is the storage's own hard limit
    (a Manila share's size), which no quota setting can change.
    """

    path: Path
    used_bytes: int
    quota_bytes: int
    used_known: bool = True
    on_portal: bool = True
    quota_enforced_by_storage: bool = False


class StorageBackend(abc.ABC):
    """Creates, finds and describes each user's persistent storage."""

    name: ClassVar[str]

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    @classmethod
    def from_settings(cls, settings: Settings) -> StorageBackend:
        """Return the backend configured by the ``storage_*`` settings.

        Raises StorageError when a setting the backend needs is missing.
        """
        return cls(settings)

    @abc.abstractmethod
    def area(self, user: User) -> StorageArea:
        """Return the user's storage as the portal host sees it, creating the folder on first
        need where the backend owns it. Raises OSError when the folder cannot be created,
        StorageError when the backend is misconfigured."""

    @abc.abstractmethod
    def machine_mount(self, user: User, machine_id: str) -> Mount | None:
        """Return the mount a cloud-init machine of ``user`` gets (read-write, at
        :data:`STORAGE_TARGET`), creating the storage on first need; None when machines cannot
        reach it (the local backend). Idempotent: a second launch reuses what the first made.
        Raises OSError, or a StorageError subclass with a message for the person."""

    def secret_files(self, user: User, machine_id: str,
                     live_machine_ids: frozenset[str]) -> list[dict[str, Any]]:
        """Return the files the bootstrap exchange hands to the machine (storage keys), in the
        exchange's ``files`` format, and grant the machine access where the backend must.
        ``live_machine_ids`` are the user's machines still running (stale grants of others may
        be revoked). Default: none. Raises StorageUnavailable (the agent retries) or
        StorageError."""
        return []

    def no_mount_reason(self) -> str:
        """Return, for the person, why a cloud machine gets no storage mount; "" when it gets
        one. Raises nothing."""
        return ""

    def quota_bytes(self) -> int:
        """Return the configured per-user quota in bytes. Raises nothing."""
        return self.settings.storage_quota_gb * GIB

    def target(self, user: User) -> str:
        """Return where machines mount the user's storage. Raises nothing."""
        return STORAGE_TARGET.format(username=user.username)

    def extra_options(self) -> tuple[str, ...]:
        """Return the site's extra mount options (``storage_mount_options``). Raises nothing."""
        return tuple(o.strip() for o in self.settings.storage_mount_options.split(",")
                     if o.strip())


class LocalStorage(StorageBackend):
    """A folder per user under ``var_dir/storage`` (mode 0700, owned by the user's uid/gid).

    Local sessions link it as ``~/storage``. Cloud machines mount it by NFS from this host's
    export of the folder when ``local_storage_export`` says how
    (:mod:`daaas.portal.storage.exports`); without it they get none.
    """

    name = "local"

    def __init__(self, settings: Settings) -> None:
        super().__init__(settings)
        if settings.local_storage_export:
            check_template(settings.local_storage_export)

    def area(self, user: User) -> StorageArea:
        """Return the user's folder, creating it on first need. Raises OSError."""
        path = self.settings.var_path / "storage" / user.username
        if not path.parent.is_dir():
            path.parent.mkdir(parents=True)
            path.parent.chmod(0o711)  # each user's desktops pass through to their own folder
        ensure_folder(path, user)
        return StorageArea(path=path, used_bytes=used_bytes(self.settings, user, path),
                           quota_bytes=self.quota_bytes())

    def machine_mount(self, user: User, machine_id: str) -> Mount | None:
        """Return the NFS mount of the user's own folder as this host exports it (made on
        first need), or None when ``local_storage_export`` is empty (no export). Raises
        OSError when the folder cannot be made."""
        if not self.settings.local_storage_export:
            return None
        self.area(user)
        return Mount(kind="nfs", source=local_export_source(self.settings, user.username),
                     target=self.target(user), options=self.extra_options(),
                     purpose="storage", label="your storage")

    def no_mount_reason(self) -> str:
        """Return why cloud machines get no storage: this host does not export it."""
        return "" if self.settings.local_storage_export else NOT_EXPORTED


class ExportStorage(StorageBackend):
    """A folder per user on an existing NFS or CephFS export the portal host mounts too.

    ``storage_export`` is the machines' mount source with ``{username}`` (NFS
    ``server:/export/home/{username}``, CephFS ``mon1,mon2:/volumes/users/{username}``) and
    ``storage_portal_root_template`` where the portal host sees the same folder. The folder is
    made there on first need and given to the user's uid/gid. CephFS machines authenticate as
    ``storage_ceph_client`` with the key in ``storage_ceph_key_file``, handed over by the
    bootstrap exchange.
    """

    name = "nfs"

    def __init__(self, settings: Settings) -> None:
        super().__init__(settings)
        missing = [key for key in ("storage_export", "storage_portal_root_template")
                   if "{username}" not in getattr(settings, key)]
        if settings.storage_fs_type == "ceph" and not settings.storage_ceph_client:
            missing.append("storage_ceph_client")
        if missing:
            raise StorageError(MISCONFIGURED, f"storage_backend nfs needs {', '.join(missing)} "
                               "(export and portal path with {username})")

    def area(self, user: User) -> StorageArea:
        """Return the user's folder on the portal host, creating it on first need (mode 0700,
        owned by the user). Raises OSError when the export is not mounted or refuses."""
        path = Path(self.settings.storage_portal_root_template.format(username=user.username))
        ensure_folder(path, user, parents=False)
        return StorageArea(path=path, used_bytes=used_bytes(self.settings, user, path),
                           quota_bytes=self.quota_bytes())

    def machine_mount(self, user: User, machine_id: str) -> Mount | None:
        """Return the export's mount line for the user, after making their folder."""
        self.area(user)
        ceph = self.settings.storage_fs_type == "ceph"
        auth = (f"name={self.settings.storage_ceph_client}",
                f"secretfile={self.secret_path()}") if ceph else ()
        return Mount(kind="cephfs" if ceph else "nfs",
                     source=self.settings.storage_export.format(username=user.username),
                     target=self.target(user), options=(*auth, *self.extra_options()),
                     purpose="storage", label="your storage")

    def secret_files(self, user: User, machine_id: str,
                     live_machine_ids: frozenset[str]) -> list[dict[str, Any]]:
        """Return the CephFS client key file (none for NFS). Raises StorageError when the key
        file cannot be read."""
        if self.settings.storage_fs_type != "ceph" or not self.settings.storage_ceph_key_file:
            return []
        try:
            key = Path(self.settings.storage_ceph_key_file).read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise StorageError(MISCONFIGURED, f"storage_ceph_key_file: {exc}") from None
        return [{"path": self.secret_path(), "content": key + "\n", "mode": "0600",
                 "owner": "root"}]

    def secret_path(self) -> str:
        """Return where the CephFS key goes on the machine. Raises nothing."""
        return f"/etc/ceph/{self.settings.storage_ceph_client}.secret"


def check_template(template: str) -> None:
    """Check ``local_storage_export``: ``server:/path/{username}``, ``{username}`` the last
    folder and nowhere else. Raises StorageError (the person's message says to tell the
    administrators)."""
    folders = template.rpartition(":")[2].split("/")
    if (template.count("{username}") != 1 or not _TEMPLATE_RE.match(template)
            or "." in folders or ".." in folders):
        raise StorageError(MISCONFIGURED, f"local_storage_export {template!r} must look like "
                           "'server:/path/{username}' ({username} the last folder)")


def local_export_source(settings: Settings, username: str) -> str:
    """Return the mount source of ``username``'s own folder (never another user's: the
    template's one field is its last folder, and a POSIX user name has no '/').
    Raises StorageError for a malformed template."""
    check_template(settings.local_storage_export)
    return settings.local_storage_export.format(username=username)


def ensure_folder(path: Path, user: User, parents: bool = True) -> None:
    """Create ``path`` (mode 0700, owned by the user when running as root) unless it exists.

    ``parents=False`` for an export: a missing parent means the export is not mounted, and
    making it would hide that. Raises OSError.
    """
    if path.is_dir():
        return
    try:
        path.mkdir(parents=parents, mode=0o700)
    except FileExistsError:
        if not path.is_dir():
            raise
        # Made a moment ago by another process on first need too (the web process and the
        # worker both do); it may not have given it to the user yet, so give it here as well.
    if os.geteuid() == 0:
        os.chown(path, user.uid, user.gid)


def usage(path: Path) -> int:
    """Return the bytes of the regular files below ``path`` (0 if missing), walking it: the
    pages use the kept figure (:func:`daaas.portal.storage.usage.used_bytes`). Raises
    nothing."""
    return measure(path)


#: The storage backends by ``storage_backend`` name; Manila (openstacksdk) is imported only
#: when chosen.
STORAGE_BACKENDS: Registry[StorageBackend] = Registry(
    "storage backend", "storage_backend", StorageBackend,
    {"local": "daaas.portal.storage.backends:LocalStorage",
     "nfs": "daaas.portal.storage.backends:ExportStorage",
     "manila": "daaas.portal.storage.manila:ManilaStorage"})
