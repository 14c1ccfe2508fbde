"""What a local desktop session runs and shows: programs, their Debian packages, icons.

The window manager is openbox (~20 MB a session). Openbox draws no desktop icons, so a desktop
program does: ``pcmanfm --desktop`` (Debian ``pcmanfm``) shows every ``.desktop`` launcher in
``~/Desktop`` as an icon. ``desktop="none"`` runs openbox alone (no icons) for hosts without it.
"""

from __future__ import annotations

import re
import shutil
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from portal.providers.errors import LaunchFailed, MissingSystemPackages

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
_SAFE_NAME = re.compile(r"[^A-Za-z0-9_-]+")


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


def _value(text: Any, field: str) -> str:
    value = "" if text is None else str(text)
    if not value or any(ord(char) < 32 for char in value):
        raise LaunchFailed("This environment has a broken application entry.",
                           f"application {field} is empty or has a control character: {value!r}")
    return value.replace("\\", "\\\\")


def launcher_text(app: Mapping[str, Any]) -> str:
    """Return a freedesktop Desktop Entry for one catalogue application.

    Raises LaunchFailed if name or command is missing or a field holds a control character.
    """
    lines = [
        "[Desktop Entry]",
        "Type=Application",
        "Version=1.0",
        f"Name={_value(app.get('title') or app.get('name'), 'name')}",
        f"Exec={_value(app.get('command'), 'command').replace('%', '%%')}",
        f"Terminal={'true' if app.get('terminal') else 'false'}",
    ]
    if app.get("icon"):
        lines.append(f"Icon={_value(app['icon'], 'icon')}")
    if app.get("category"):
        lines.append(f"Categories={_value(app['category'], 'category')};")
    return "\n".join(lines) + "\n"


def write_launchers(home: Path, applications: Iterable[Mapping[str, Any]]) -> list[Path]:
    """Write one executable (so: trusted) launcher per application into ``home/Desktop``.

    Returns the files written. Raises LaunchFailed for a broken application entry.
    """
    desktop_dir = home / "Desktop"
    desktop_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for app in applications:
        text = launcher_text(app)
        stem = _SAFE_NAME.sub("-", str(app.get("name"))).strip("-") or "application"
        path = desktop_dir / f"{stem}.desktop"
        path.write_text(text, encoding="utf-8")
        path.chmod(0o755)
        written.append(path)
    return written


def write_desktop_config(home: Path) -> None:
    """Write the user-dirs, libfm and pcmanfm settings the session's desktop reads."""
    config = home / ".config"
    for relative, text in (("user-dirs.dirs", USER_DIRS), ("libfm/libfm.conf", LIBFM_CONF),
                           ("pcmanfm/daaas/desktop-items-0.conf", PCMANFM_DESKTOP)):
        path = config / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
