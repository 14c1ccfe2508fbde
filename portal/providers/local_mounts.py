"""Storage and experiment data in a local session's home.

Read-only data is bind-mounted read-only when the portal runs as root (it does in the embedded
mode), so a session cannot change an experiment's raw data; otherwise it is linked, and the
folder's own permissions apply. The user's storage is a link: deleting a session removes the
link, never the storage.
"""

from __future__ import annotations

import logging
import os
import subprocess
from collections.abc import Iterable
from pathlib import Path

from daaas.portal.providers.base import SessionMount
from daaas.portal.providers.errors import LaunchFailed, ProviderError

log = logging.getLogger(__name__)


def attach(home: Path, mounts: Iterable[SessionMount], machine_id: str) -> None:
    """Make each mount appear as ``home/<name>``. Raises LaunchFailed if one cannot."""
    for mount in mounts:
        target = home / mount.name
        source = Path(mount.source)
        if not source.is_dir():
            raise LaunchFailed(f"The folder for {mount.description or mount.name} is missing on "
                               "this host; ask the facility's support to check it.",
                               f"{machine_id}: {source} is not a folder")
        if is_mountpoint(target) or target.is_symlink():
            continue  # already there (a relaunch)
        if mount.read_only and os.geteuid() == 0 and _bind_read_only(source, target):
            continue
        target.symlink_to(source, target_is_directory=True)


def _bind_read_only(source: Path, target: Path) -> bool:
    target.mkdir(exist_ok=True)
    steps = [["mount", "--bind", str(source), str(target)],
             ["mount", "-o", "remount,ro,bind", str(target)]]
    for step in steps:
        done = subprocess.run(step, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            log.warning("read-only bind of %s failed (%s); linking instead", source,
                        done.stderr.strip())
            _unmount(target)
            target.rmdir()
            return False
    return True


def detach(root: Path) -> None:
    """Unmount everything mounted below ``root``. Raises ProviderError if one stays mounted,
    so the caller never deletes a folder with someone's data still mounted inside."""
    for mountpoint in sorted(mountpoints_below(root), key=lambda p: len(p.parts), reverse=True):
        if not _unmount(mountpoint):
            raise ProviderError("A data folder of this desktop could not be unmounted.",
                                f"umount {mountpoint} failed")


def _unmount(path: Path) -> bool:
    if not is_mountpoint(path):
        return True
    subprocess.run(["umount", str(path)], capture_output=True, check=False)
    return not is_mountpoint(path)


def mountpoints_below(root: Path) -> list[Path]:
    """Return the mount points at or below ``root`` (from /proc/self/mountinfo)."""
    prefix = str(root.resolve())
    found = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        point = line.split()[4].replace("\\040", " ")
        if point == prefix or point.startswith(prefix + "/"):
            found.append(Path(point))
    return found


def is_mountpoint(path: Path) -> bool:
    """Return True when ``path`` is a mount point."""
    return path.exists() and path.resolve() in {p for p in mountpoints_below(path.parent)}
