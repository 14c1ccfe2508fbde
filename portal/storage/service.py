"""Persistent user storage: created on first need, in every session of its user, never
deleted with a machine.

Where it lives is the configured backend (``storage_backend``,
:mod:`daaas.portal.storage.backends`):
a folder per user under ``var_dir/storage`` (the embedded default), a folder per user on an
existing NFS/CephFS export, or a Manila share per user. Everything else in the portal asks
here: My Data and WebDAV for :func:`storage_area`, launches for :func:`machine_mounts`, the
bootstrap exchange for :func:`secret_files`.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime
from functools import lru_cache
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from daaas.contextualisation import Mount
from daaas.portal.auth.models import User
from daaas.portal.config import Settings
from daaas.portal.machines.models import Machine, MachineEvent
from daaas.portal.quotas.storage import storage_quota_bytes
from daaas.portal.storage.backends import STORAGE_BACKENDS, StorageArea, StorageBackend

__all__ = ["StorageArea", "backend", "machine_mounts", "no_mount_reason", "note_missing_storage",
           "secret_files", "storage_area"]


@lru_cache(maxsize=8)
def backend(settings: Settings) -> StorageBackend:
    """Return the backend ``storage_backend`` names, built once per settings (so Manila's
    Connection is reused).

    Raises StorageError when the backend's settings are incomplete, BackendUnavailable when
    the name is unknown or its class cannot be imported.
    """
    return STORAGE_BACKENDS.build(settings)


def storage_area(settings: Settings, user: User) -> StorageArea:
    """Return the user's storage as the portal host sees it (``.path``, ``.used_bytes``,
    ``.quota_bytes``), creating its folder on first need where the backend owns one.

    ``.quota_bytes`` is the user's own (:func:`storage_quota_bytes`: their quota, else their
    groups', else the site's), except where the storage enforces its own size (a Manila share
    an administrator resized), which is the real limit. Raises OSError when the folder cannot
    be created, StorageError when misconfigured.
    """
    area = backend(settings).area(user)
    if area.quota_enforced_by_storage:
        return area
    return replace(area, quota_bytes=storage_quota_bytes(settings, user))


def machine_mounts(settings: Settings, user: User, machine_id: str) -> tuple[Mount, ...]:
    """Return the storage mounts of one cloud-init machine, creating the storage on first need.

    Empty for the local backend unless this host exports it (``local_storage_export``).
    Raises OSError or a StorageError subclass (a ProviderError: StorageUnavailable postpones
    the launch, the others fail it with the person's message).
    """
    mount = backend(settings).machine_mount(user, machine_id)
    return (mount,) if mount is not None else ()


def no_mount_reason(settings: Settings) -> str:
    """Return, for the person, why cloud machines get no storage mount with this backend (the
    ``local`` backend without ``local_storage_export``); "" when they get one. Raises
    StorageError or BackendUnavailable as :func:`backend`."""
    return backend(settings).no_mount_reason()


def note_missing_storage(db: Session, settings: Settings, machine: Machine,
                         now: datetime) -> None:
    """Record once on a cloud-init machine's events why its owner's storage is not mounted
    there (:func:`no_mount_reason`), so a missing export is seen instead of an empty
    ``~/storage``; nothing for a machine that gets its storage or a warm pool's machine.
    Raises StorageError or BackendUnavailable as :func:`backend`."""
    reason = no_mount_reason(settings)
    if not reason or machine.pool is not None:
        return
    known = db.scalar(select(MachineEvent.id).where(MachineEvent.machine_id == machine.id,
                                                    MachineEvent.message == reason).limit(1))
    if known is None:
        db.add(MachineEvent(machine_id=machine.id, from_state=machine.state,
                            to_state=machine.state, message=reason, at=now))


def secret_files(settings: Settings, user: User, machine_id: str,
                 live_machine_ids: frozenset[str]) -> list[dict[str, Any]]:
    """Return the storage files (keys) the bootstrap exchange hands to the machine.

    Raises StorageUnavailable (503: the agent retries) or StorageError.
    """
    return backend(settings).secret_files(user, machine_id, live_machine_ids)
