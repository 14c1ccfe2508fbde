"""What a local desktop session runs and shows: programs, their Debian packages, icons.

The window manager is openbox (~20 MB a session). Openbox draws no desktop icons, so a desktop
program does: ``pcmanfm --desktop`` (Debian ``pcmanfm``) shows every ``.desktop`` launcher in
``~/Desktop`` as an icon. ``desktop="none"`` runs openbox alone (no icons) for hosts without it.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from daaas.catalogue.loader import ICONS_DIRECTORY
from daaas.contextualisation.environment import launchers
from daaas.contextualisation.files import desktop_entries
from daaas.portal.providers.base import SessionMount
from daaas.portal.providers.errors import LaunchFailed, MissingSystemPackages

# program -> Debian package that ships it
PACKAGES = {
    "Xvnc": "tigervnc-standalone-server",
    "vncpasswd": "tigervnc-tools",
    "openbox": "openbox",
    "pcmanfm": "pcmanfm",
    "xterm": "xterm",
}
WINDOW_MANAGER = ["openbox", "--sm-disable"]
DESKTOPS: dict[str, list[str]] = {
    "pcmanfm": ["pcmanfm", "--desktop", "--profile", "daaas"],
    "none": [],
}
BASE_PROGRAMS = ("Xvnc", "vncpasswd", "openbox")

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


def write_launchers(home: Path, environment: Mapping[str, Any]) -> list[Path]:
    """Write the environment's launchers, executable (so: trusted), into ``home/Desktop``.

    The entries come from daaas.contextualisation's renderer, the same one that writes them on
    cloud VMs, so both providers show one description of the session. Returns the files
    written. Raises LaunchFailed for a broken application entry.
    """
    try:
        entries = desktop_entries(str(environment.get("name") or "session"),
                                  launchers(environment), str(ICONS_DIRECTORY))
    except ValueError as error:
        raise LaunchFailed("This environment has a broken application entry.",
                           f"launchers: {error}") from error
    desktop_dir = home / "Desktop"
    desktop_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for name, text in entries:
        path = desktop_dir / name
        path.write_text(text, encoding="utf-8")
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


def write_desktop_config(home: Path) -> None:
    """Write the user-dirs, libfm and pcmanfm settings the session's desktop reads."""
    config = home / ".config"
    for relative, text in (("user-dirs.dirs", USER_DIRS), ("libfm/libfm.conf", LIBFM_CONF),
                           ("pcmanfm/daaas/desktop-items-0.conf", PCMANFM_DESKTOP)):
        path = config / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
