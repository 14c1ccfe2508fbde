"""What a local desktop session runs and shows: programs, their Debian packages, icons, and
the storage and experiment folders in its home.

The window manager is openbox (~20 MB a session). Openbox draws no desktop icons, so a desktop
program does: ``pcmanfm --desktop`` (Debian ``pcmanfm``) shows every ``.desktop`` launcher in
``~/Desktop`` as an icon. ``desktop="none"`` runs openbox alone (no icons) for hosts without it.

Read-only data is bind-mounted read-only when the portal runs as root (it does in the embedded
mode), so a session cannot change an experiment's raw data; otherwise it is linked, and the
folder's own permissions apply. The user's storage is a link: deleting a session removes the
link, never the storage.
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
from collections.abc import Iterable, Sequence
from pathlib import Path

import psutil

from daaas.catalogue import Environment
from daaas.catalogue.loader import ICONS_DIRECTORY
from daaas.contextualisation.builder import launchers
from daaas.contextualisation.files import desktop_entries
from daaas.portal.providers.base import SessionMount
from daaas.portal.providers.errors import LaunchFailed, MissingSystemPackages, ProviderError
from daaas.portal.providers.local.roots import resolve_entry

log = logging.getLogger(__name__)

# program -> Debian package that ships it
PACKAGES = {
    "Xvnc": "tigervnc-standalone-server",
    "vncpasswd": "tigervnc-tools",
    "openbox": "openbox",
    "pcmanfm": "pcmanfm",
    "xterm": "xterm",
    "xauth": "xauth",
    "xmessage": "x11-utils",
}
WINDOW_MANAGER = ["openbox", "--sm-disable"]
DESKTOPS: dict[str, list[str]] = {
    "pcmanfm": ["pcmanfm", "--desktop", "--profile", "daaas"],
    "none": [],
}
BASE_PROGRAMS = ("Xvnc", "vncpasswd", "xauth", "openbox")

PCMANFM_DESKTOP = """[*]
wallpaper_mode=color
desktop_bg=#2f4858
desktop_fg=#ffffff
desktop_shadow=#000000
show_wm_menu=0
show_documents=0
show_trash=0
show_mounts=0
"""
# quick_exec: run executable launchers without asking; Terminal=true apps open in xterm
LIBFM_CONF = """[config]
quick_exec=1
terminal=xterm
"""
USER_DIRS = 'XDG_DESKTOP_DIR="$HOME/Desktop"\n'


def required_programs(desktop: str) -> list[str]:
    """Return the programs a session with this desktop runs. Raises ValueError if unknown."""
    if desktop not in DESKTOPS:
        raise ValueError(f"unknown desktop {desktop!r}; choose one of {sorted(DESKTOPS)}")
    return [*BASE_PROGRAMS, *DESKTOPS[desktop][:1]]


def check_programs(programs: Iterable[str]) -> dict[str, str]:
    """Return {program: absolute path}. Raises MissingSystemPackages naming what to install."""
    found = {name: shutil.which(name) for name in programs}
    missing = [name for name, path in found.items() if path is None]
    if missing:
        raise MissingSystemPackages(missing, [PACKAGES[name] for name in missing])
    return {name: str(path) for name, path in found.items()}


def write_launchers(home: Path, environment: Environment,
                    roots: Sequence[Path] = ()) -> list[Path]:
    """Write the environment's launchers, executable (so: trusted), into ``home/Desktop``.

    The entries come from daaas.contextualisation's renderer, the same one that writes them on
    cloud VMs, so both providers show one description of the session; a program whose
    ``/cvmfs/<repository>`` is not on this host is named where the software ``roots`` hold it
    (:mod:`daaas.portal.providers.local.roots`). Returns the files written. Raises LaunchFailed
    for a broken application entry.
    """
    try:
        entries = desktop_entries(environment.name,
                                  launchers(environment), str(ICONS_DIRECTORY))
    except ValueError as error:
        raise LaunchFailed("This environment has a broken application entry.",
                           f"launchers: {error}") from error
    desktop_dir = home / "Desktop"
    desktop_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for name, text in entries:
        path = desktop_dir / name
        path.write_text(resolve_entry(text, roots), encoding="utf-8")
        path.chmod(0o755)
        written.append(path)
    return written


def write_folder_links(home: Path, mounts: Iterable[SessionMount]) -> list[Path]:
    """Put an icon for each mounted folder on the desktop: a link ``Desktop/<label>`` to
    ``home/<name>`` ("My storage", "Experiment MX31850-12"). Returns the links made."""
    desktop_dir = home / "Desktop"
    desktop_dir.mkdir(parents=True, exist_ok=True)
    made = []
    for mount in mounts:
        label = "My storage" if mount.name == "storage" else \
            mount.name.replace("experiment-", "Experiment ", 1)
        link = desktop_dir / label
        if not link.is_symlink():
            link.symlink_to(Path("..") / mount.name, target_is_directory=True)
        made.append(link)
    return made


#: The desktop's "Storage use" view: the program (in the session's home) and its launcher
STORAGE_VIEW_PROGRAM = ".local/bin/daaas-storage-use"
STORAGE_VIEW_LAUNCHER = "daaas-storage-use.desktop"
STORAGE_VIEW_SCRIPT = r"""#!/bin/sh
# Written by daaas: how much of your storage quota is used. The file manager's free space (and
# df) is the free space of this server's disk, which you share with others; your quota is this.
folder="$HOME/{name}"
quota={quota}
used=$(find -P "$folder/" \( -type f -o -type l \) -printf '%s\n' 2>/dev/null \
       | awk '{{ total += $1 }} END {{ printf "%d", total }}')
left=$((quota > used ? quota - used : 0))
percent=$((quota > 0 ? used * 100 / quota : 0))
size() {{ numfmt --to=iec-i --suffix=B --format=%.1f "$1"; }}
text="My storage (~/{name})

$(size "$used") used of your $(size "$quota") quota ($percent %)
$(size "$left") left

The same storage as My Data and WebDAV, and on all your desktops.
The file manager's free space is this server's disk, not your quota."
[ -n "$DAAAS_STORAGE_USE_PRINT" ] && {{ printf '%s\n' "$text"; exit 0; }}
exec xmessage -title "My storage" -center -buttons Close:0 "$text"
"""
STORAGE_VIEW_ENTRY = """[Desktop Entry]
Type=Application
Version=1.5
Name=Storage use
Comment=How much of your storage quota is used, and how much is left
Exec={program}
Icon=drive-harddisk
Terminal=false
Categories=Utility;
"""


def write_storage_view(home: Path, mounts: Iterable[SessionMount]) -> Path | None:
    """Put a "Storage use" icon on the desktop for the mount with a quota (the user's
    storage): it opens a window with the space used, the quota and what is left, counted as
    the portal counts it (the sizes of the files in the folder). ``df`` and the file manager
    show the host disk's free space; this view is the quota. Returns the launcher written, or
    None when no mount has a quota or xmessage (x11-utils) is missing. Raises OSError."""
    storage = next((mount for mount in mounts if mount.quota_bytes > 0), None)
    if storage is None or shutil.which("xmessage") is None:  # (Debian x11-utils)
        return None
    program = home / STORAGE_VIEW_PROGRAM
    program.parent.mkdir(parents=True, exist_ok=True)
    program.write_text(STORAGE_VIEW_SCRIPT.format(name=storage.name,
                                                  quota=int(storage.quota_bytes)),
                       encoding="utf-8")
    program.chmod(0o755)
    launcher = home / "Desktop" / STORAGE_VIEW_LAUNCHER
    launcher.parent.mkdir(parents=True, exist_ok=True)
    launcher.write_text(STORAGE_VIEW_ENTRY.format(program=program), encoding="utf-8")
    launcher.chmod(0o755)
    return launcher


def write_desktop_config(home: Path) -> None:
    """Write the user-dirs, libfm and pcmanfm settings the session's desktop reads."""
    config = home / ".config"
    for relative, text in (("user-dirs.dirs", USER_DIRS), ("libfm/libfm.conf", LIBFM_CONF),
                           ("pcmanfm/daaas/desktop-items-0.conf", PCMANFM_DESKTOP)):
        path = config / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")


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
    """Return the mount points at or below ``root`` (bind mounts too), as psutil lists them."""
    prefix = str(root.resolve())
    return [Path(part.mountpoint) for part in psutil.disk_partitions(all=True)
            if part.mountpoint == prefix or part.mountpoint.startswith(prefix + "/")]


def is_mountpoint(path: Path) -> bool:
    """Return True when ``path`` is a mount point."""
    return path.exists() and path.resolve() in {p for p in mountpoints_below(path.parent)}
