"""Persistent user storage: created on first need, in every session of its user, never
deleted with a machine.

The embedded default is a folder per user under ``var_dir/storage``, owned by the user's POSIX
uid/gid. NFS/CephFS exports and Manila shares are planned behind the same function.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from portal.auth.models import User
from portal.config import Settings


@dataclass(frozen=True)
class StorageArea:
    """Where a user's storage is, and how much of the quota it uses."""

    path: Path
    used_bytes: int
    quota_bytes: int


def storage_area(settings: Settings, user: User) -> StorageArea:
    """Return the user's storage, creating it (mode 0700, owned by the user) on first need.

    Raises OSError when the folder cannot be created.
    """
    path = settings.var_path / "storage" / user.username
    if not path.is_dir():
        path.mkdir(parents=True, mode=0o700)
        if os.geteuid() == 0:
            os.chown(path, user.uid, user.gid)
    return StorageArea(path=path, used_bytes=_usage(path),
                       quota_bytes=settings.storage_quota_gb * 1024**3)


def _usage(path: Path) -> int:
    total = 0
    for folder, _dirs, files in os.walk(path):
        for name in files:
            try:
                total += (Path(folder) / name).lstat().st_size
            except OSError:
                continue
    return total
