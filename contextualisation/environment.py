"""Read the parts of a catalogue environment dictionary that contextualisation needs.

The dictionary comes from the catalogue's ``Environment.to_dict()``. Reading is tolerant:
unknown keys are ignored, ``None`` counts as missing, and a few spellings are accepted (a command
line in ``command`` or a program plus ``arguments``; ``category`` or ``categories``; a repository
as a string or ``{"name": ...}``; protocols at the top level or under ``access``). A malformed
application still fails, naming the application.
"""

from __future__ import annotations

import shlex
from collections.abc import Mapping, Sequence
from typing import Any

from pydantic import ValidationError

from daaas.contextualisation.context import AccessServices
from daaas.contextualisation.launchers import DEFAULT_CATEGORY, Launcher
from daaas.contextualisation.validation import describe

PROTOCOLS = {"novnc": "vnc", "vnc": "vnc", "rdp": "xrdp", "xrdp": "xrdp", "ssh": "ssh"}
_TRUE = {"1", "true", "yes", "on"}


def launchers(environment: Mapping[str, Any]) -> tuple[Launcher, ...]:
    """Return a Launcher per entry of ``applications`` (none when missing).

    Raises ValueError naming the application that is malformed.
    """
    apps = _sequence(environment.get("applications"), "applications")
    result = []
    for index, app in enumerate(apps):
        if not isinstance(app, Mapping):
            raise ValueError(f"application #{index + 1} is not a mapping")
        label = str(app.get("name") or f"#{index + 1}")
        if not app.get("command"):
            raise ValueError(f"application '{label}' has no command")
        try:
            result.append(_launcher(app))
        except ValidationError as exc:
            raise ValueError(f"application '{label}': {describe(exc)}") from None
    return tuple(result)


def _launcher(app: Mapping[str, Any]) -> Launcher:
    command = str(app["command"])
    arguments = _sequence(app.get("arguments"), "arguments")
    if arguments:  # the catalogue keeps the program and its arguments apart
        command = shlex.join([*shlex.split(command), *(str(arg) for arg in arguments)])
    return Launcher(
        name=str(app.get("name") or ""),
        command=command,
        icon=str(app.get("icon") or ""),
        category=_category(app.get("category") or app.get("categories")),
        terminal=_flag(app.get("terminal")),
        description=str(app.get("description") or app.get("comment") or ""),
    )


def repositories(
    environment: Mapping[str, Any], apps: Sequence[Launcher] = ()
) -> tuple[str, ...]:
    """Return the CVMFS repositories: those listed, then any an application's command needs.

    Raises ValueError for an entry that is neither a name nor a mapping with a name.
    """
    names = []
    for entry in _sequence(environment.get("cvmfs_repositories"), "cvmfs_repositories"):
        name = entry.get("name") if isinstance(entry, Mapping) else entry
        if not isinstance(name, str) or not name:
            raise ValueError(f"CVMFS repository entry {entry!r} has no name")
        names.append(name.strip())
    names.extend(app.repository for app in apps)
    return tuple(dict.fromkeys(names))


def access_services(environment: Mapping[str, Any]) -> AccessServices:
    """Return the services to switch on from ``protocols`` (or ``access.protocols``).

    Unknown protocol names are ignored; with none known, only VNC (for noVNC) is enabled.
    Raises nothing.
    """
    access = environment.get("access")
    protocols = environment.get("protocols")
    if protocols is None and isinstance(access, Mapping):
        protocols = access.get("protocols")
    if isinstance(protocols, str):
        protocols = [protocols]
    names = [str(protocol).strip().lower() for protocol in protocols or ()]
    wanted = {PROTOCOLS[name] for name in names if name in PROTOCOLS}
    if not wanted:
        return AccessServices()
    return AccessServices(vnc="vnc" in wanted, xrdp="xrdp" in wanted, ssh="ssh" in wanted)


def _sequence(value: Any, what: str) -> Sequence[Any]:
    if value is None:
        return ()
    if isinstance(value, str | bytes) or not isinstance(value, Sequence):
        raise ValueError(f"'{what}' must be a list")
    return value


def _category(value: Any) -> str:
    if isinstance(value, Sequence) and not isinstance(value, str):
        return ";".join(str(item) for item in value)
    return str(value or DEFAULT_CATEGORY)


def _flag(value: Any) -> bool:
    return value if isinstance(value, bool) else str(value).strip().lower() in _TRUE
