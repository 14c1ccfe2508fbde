"""One OpenStack Manila share per user, through openstacksdk's ``shared_file_system`` proxy.

The share is named ``daaas-storage-<username>`` and carries the owner and the portal's tag in
its metadata, so every later launch finds it again instead of making a second; nothing here ever
deletes a share. CephFS shares get one cephx access rule, ``daaas-<username>``: its key is a
secret, read from Manila when the machine's bootstrap exchange asks for it and never written
into user-data or the database. NFS shares get an IP rule for each machine's fixed address,
granted during that exchange (the machine then mounts), and rules of machines that are gone
are revoked then too.
"""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path
from typing import Any

from daaas.contextualisation import Mount
from daaas.portal.auth.models import User
from daaas.portal.config import Settings
from daaas.portal.providers.openstack.cloud import machine_tag
from daaas.portal.storage.backends import GIB, StorageArea, StorageBackend, ensure_folder
from daaas.portal.storage.errors import StorageError, StorageUnavailable
from daaas.portal.storage.manila_errors import (
    ERROR_SHARE,
    NO_KEY_YET,
    manila_call,
    openstack_connection,
)
from daaas.portal.storage.usage import used_bytes

log = logging.getLogger(__name__)
OWNER_KEY, PORTAL_KEY, MACHINE_KEY = "daaas_owner", "daaas_portal", "daaas_machine"
POLL_SECONDS = 2.0


class ManilaStorage(StorageBackend):
    """A Manila share per user (CephFS with a cephx key per user, or NFS with IP rules)."""

    name = "manila"

    def __init__(self, settings: Settings, connection: Any = None) -> None:
        super().__init__(settings)
        self.protocol = settings.storage_manila_protocol
        self._conn = connection
        self._connect_lock = threading.Lock()
        self._create_lock = threading.Lock()  # one worker thread creates a user's share

    @property
    def connection(self) -> Any:
        """Return the openstacksdk Connection (made on first use). Raises StorageUnavailable."""
        with self._connect_lock:
            if self._conn is None:
                cloud = self.settings.storage_manila_cloud or self.settings.openstack_cloud
                self._conn = openstack_connection(cloud)
            return self._conn

    @property
    def sfs(self) -> Any:
        """Return the shared file system proxy. Raises StorageUnavailable."""
        return self.connection.shared_file_system

    # -- the seam ------------------------------------------------------------------------------

    def area(self, user: User) -> StorageArea:
        """Return the portal's view: the share's size as quota, as last seen by a launch or a
        bootstrap exchange (:meth:`remembered_size`; Manila is not asked, so a page view makes
        no Manila call); the usage is measured where the portal host mounts the share
        (``storage_portal_root_template``), else unknown (Manila's API reports no usage). Never
        creates a share. Raises nothing for Manila trouble (the configured quota is shown until
        a share was seen)."""
        template = self.settings.storage_portal_root_template
        path = self.settings.var_path / "storage" / user.username
        if template:
            path = type(path)(template.format(username=user.username))
        elif not path.is_dir():
            ensure_folder(path, user)
        quota, from_share = self.quota_bytes(), False
        size = self.remembered_size(user)
        if size:
            quota, from_share = size * GIB, True
        on_portal = bool(template) and path.is_dir()
        used = used_bytes(self.settings, user, path) if on_portal else 0
        return StorageArea(path=path, used_bytes=used, quota_bytes=quota,
                           used_known=on_portal, on_portal=on_portal,
                           quota_enforced_by_storage=from_share)

    def machine_mount(self, user: User, machine_id: str) -> Mount | None:
        """Find or create the user's share, wait until it is available, make sure its cephx
        rule exists (CephFS), and return the mount of its export location."""
        share = self.ensure_share(user)
        options: tuple[str, ...] = ()
        if self.protocol == "CEPHFS":
            self.ensure_cephx_rule(share, user)
            options = (f"name={cephx_id(user)}", f"secretfile={secret_path(user)}")
        return Mount(kind="cephfs" if self.protocol == "CEPHFS" else "nfs",
                     source=self.export_path(share, user), target=self.target(user),
                     options=(*options, *self.extra_options()), purpose="storage",
                     label="your storage")

    def secret_files(self, user: User, machine_id: str,
                     live_machine_ids: frozenset[str]) -> list[dict[str, Any]]:
        """CephFS: return the cephx key file. NFS: grant the machine's fixed IPs, revoke rules of
        machines no longer live, return nothing."""
        share = self.find_share(user)
        if share is None or share.status != "available":
            raise StorageUnavailable(NO_KEY_YET, f"manila: share of {user.username} not "
                                                 f"available for {machine_id}")
        if self.protocol == "NFS":
            self.grant_machine(share, user, machine_id, live_machine_ids)
            return []
        rule = self._cephx_rule(share, user)
        if rule is None or rule.state == "error":
            raise StorageError(ERROR_SHARE, f"manila: cephx rule of {user.username} is "
                                            f"{'missing' if rule is None else 'in error'}")
        if not rule.access_key:
            raise StorageUnavailable(NO_KEY_YET, f"manila: cephx key of {user.username} not "
                                                 f"ready ({rule.state})")
        return [{"path": secret_path(user), "content": rule.access_key + "\n", "mode": "0600",
                 "owner": "root"}]

    # -- shares --------------------------------------------------------------------------------

    def find_share(self, user: User) -> Any:
        """Return the user's share (the oldest, should there be several), or None."""
        with manila_call(f"find the share of {user.username}"):
            shares = [s for s in self.sfs.shares(details=True, name=share_name(user))
                      if (s.metadata or {}).get(OWNER_KEY) == user.username]
        if len(shares) > 1:
            log.warning("user %s has %d shares named %s; using the oldest", user.username,
                        len(shares), share_name(user))
        share = min(shares, key=lambda s: s.created_at or "") if shares else None
        if share is not None and share.size:
            self._remember_size(user.username, int(share.size))
        return share

    def refresh_sizes(self) -> int:
        """List every share of this portal (one listing, whatever the number of users) and
        remember each owner's size, which :meth:`area` shows; the worker calls this (an
        administrator's resize is shown within a minute). Return how many owners were seen.
        Raises StorageError or StorageUnavailable when Manila cannot be asked."""
        tag = self.settings.openstack_server_tag
        with manila_call("list the portal's shares"):
            shares = [s for s in self.sfs.shares(details=True)
                      if (s.metadata or {}).get(PORTAL_KEY) == tag
                      and (s.metadata or {}).get(OWNER_KEY) and s.size]
        oldest: dict[str, Any] = {}
        for share in sorted(shares, key=lambda s: s.created_at or "", reverse=True):
            oldest[share.metadata[OWNER_KEY]] = share
        for owner, share in oldest.items():
            self._remember_size(owner, int(share.size))
        return len(oldest)

    def remembered_size(self, user: User) -> int | None:
        """Return the size in GiB of the user's share as last seen (None: never seen), read
        from ``var_dir/manila/<username>.size``. Raises nothing."""
        try:
            return int(self._size_path(user.username).read_text())
        except (OSError, ValueError):
            return None

    def _remember_size(self, username: str, size: int) -> None:
        path = self._size_path(username)
        try:
            if path.is_file() and path.read_text() == str(size):
                return
            path.parent.mkdir(mode=0o700, exist_ok=True)
            partial = path.with_suffix(f".{threading.get_ident()}.part")
            partial.write_text(str(size))
            partial.replace(path)
        except OSError as exc:
            log.warning("share size of %s not remembered: %s", username, exc)

    def _size_path(self, username: str) -> Path:
        return self.settings.var_path / "manila" / f"{username}.size"

    def ensure_share(self, user: User) -> Any:
        """Return the user's available share, creating it (quota-sized) on first need."""
        with self._create_lock:
            share = self.find_share(user)
            if share is None:
                share = self._create_share(user)
                if share.size:
                    self._remember_size(user.username, int(share.size))
        return self._wait_available(share, user)

    def _create_share(self, user: User) -> Any:
        settings = self.settings
        attrs: dict[str, Any] = {
            "name": share_name(user), "size": settings.storage_quota_gb,
            "share_protocol": self.protocol,
            "description": f"Persistent storage of {user.username} (daaas portal)",
            "metadata": {OWNER_KEY: user.username, PORTAL_KEY: settings.openstack_server_tag}}
        if settings.storage_manila_share_type:
            attrs["share_type"] = settings.storage_manila_share_type
        if settings.storage_manila_share_network:
            attrs["share_network_id"] = settings.storage_manila_share_network
        with manila_call(f"create the share of {user.username}"):
            share = self.sfs.create_share(**attrs)
        log.info("created Manila share %s (%s GiB) for %s", share.id, share.size, user.username)
        return share

    def _wait_available(self, share: Any, user: User) -> Any:
        deadline = time.monotonic() + self.settings.storage_manila_timeout_seconds
        while True:
            if share.status == "available":
                return share
            if share.status not in ("creating", "extending", "shrinking", "manage_starting"):
                raise StorageError(ERROR_SHARE, f"manila: share {share.id} of {user.username} "
                                                f"is {share.status}")
            if time.monotonic() > deadline:
                raise StorageUnavailable(NO_KEY_YET, f"manila: share {share.id} still "
                                                     f"{share.status}")
            with manila_call(f"watch the share of {user.username}"):
                share = self.sfs.get_share(share.id)
            if share.status != "available":
                time.sleep(POLL_SECONDS)

    def export_path(self, share: Any, user: User) -> str:
        """Return the share's preferred export location (non-admin). Raises StorageError."""
        with manila_call(f"read the export of {user.username}"):
            locations = [loc for loc in self.sfs.export_locations(share) if not loc.is_admin]
        if not locations:
            raise StorageError(ERROR_SHARE, f"manila: share {share.id} has no export location")
        return str(sorted(locations, key=lambda loc: not loc.is_preferred)[0].path)

    # -- access rules --------------------------------------------------------------------------

    def _cephx_rule(self, share: Any, user: User) -> Any:
        with manila_call(f"list the access rules of {user.username}"):
            rules = list(self.sfs.access_rules(share))
        return next((r for r in rules if r.access_type == "cephx"
                     and r.access_to == cephx_id(user)), None)

    def ensure_cephx_rule(self, share: Any, user: User) -> None:
        """Give ``daaas-<username>`` read-write cephx access unless it has it."""
        if self._cephx_rule(share, user) is None:
            with manila_call(f"allow cephx access for {user.username}"):
                self.sfs.create_access_rule(share, access_type="cephx",
                                            access_to=cephx_id(user), access_level="rw")

    def grant_machine(self, share: Any, user: User, machine_id: str,
                      live_machine_ids: frozenset[str]) -> None:
        """Allow the machine's fixed IPs read-write; deny IP rules of machines no longer live."""
        addresses = self._fixed_ips(machine_id)
        with manila_call(f"list the access rules of {user.username}"):
            rules = [r for r in self.sfs.access_rules(share) if r.access_type == "ip"]
        granted = set()
        for rule in rules:
            owner = (rule.metadata or {}).get(MACHINE_KEY)
            if owner and owner != machine_id and owner not in live_machine_ids:
                with manila_call(f"revoke access of machine {owner}"):
                    self.sfs.delete_access_rule(rule, share)
            else:
                granted.add(rule.access_to)
        for address in addresses - granted:
            with manila_call(f"allow NFS access for machine {machine_id}"):
                self.sfs.create_access_rule(share, access_type="ip", access_to=address,
                                            access_level="rw",
                                            metadata={MACHINE_KEY: machine_id})

    def _fixed_ips(self, machine_id: str) -> set[str]:
        with manila_call(f"find the addresses of machine {machine_id}"):
            servers = list(self.connection.compute.servers(details=True,
                                                           tags=machine_tag(machine_id)))
        found = {entry["addr"] for server in servers for entries in (server.addresses or {})
                 .values() for entry in entries if entry.get("OS-EXT-IPS:type", "fixed") == "fixed"}
        if not found:
            raise StorageUnavailable(NO_KEY_YET, f"manila: machine {machine_id} has no fixed IP")
        return found


def share_name(user: User) -> str:
    """Return the name of the user's share. Raises nothing."""
    return f"daaas-storage-{user.username}"


def cephx_id(user: User) -> str:
    """Return the cephx identity the user's machines mount as. Raises nothing."""
    return f"daaas-{user.username}"


def secret_path(user: User) -> str:
    """Return where the cephx key goes on a machine (inside the exchange's /etc/ceph)."""
    return f"/etc/ceph/{cephx_id(user)}.secret"
