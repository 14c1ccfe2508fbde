"""Software roots: where a local desktop finds ``/cvmfs/<repository>/…`` programs when no
``/cvmfs/<repository>`` is on this host.

A portal running as root shows its software at ``/cvmfs/<repository>`` (a real CVMFS client, or
the local software source bind-mounted there, :mod:`daaas.cvmfs.local_source`), so launchers
run unchanged. A portal that is not root cannot mount anything: there a launcher's program
``/cvmfs/<repository>/<path>`` is looked up as ``<root>/<repository>/<path>`` in each of the
site's software roots in turn (the ``software_roots`` setting: a software share laid out like
``/cvmfs``, and the portal's own local software source last), and the desktop's launcher names
the program found. A repository that *is* at ``/cvmfs/<repository>`` is always used from there.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path, PurePosixPath

from daaas.portal.config import parse_software_roots

CVMFS_ROOT = "/cvmfs"


def site_roots(software_roots: str, local_software_dir: str, as_root: bool) -> tuple[Path, ...]:
    """Return the roots a local desktop uses: ``software_roots``, then, when the portal is not
    root (no bind mount of its own software source is possible), ``local_software_dir`` where
    ``daaas serve`` builds that source. Raises ValueError for a bad root
    (:func:`~daaas.portal.config.parse_software_roots`).
    """
    roots = parse_software_roots(software_roots)
    if not as_root and local_software_dir:
        roots = (*roots, *parse_software_roots(local_software_dir))
    return tuple(dict.fromkeys(roots))


def repository_of(command: str) -> str | None:
    """Return the repository of a ``/cvmfs/<repository>/…`` path, or None for another path."""
    parts = PurePosixPath(command).parts
    if len(parts) > 2 and parts[0] == "/" and f"/{parts[1]}" == CVMFS_ROOT:
        return parts[2]
    return None


def resolve(command: str, roots: Sequence[Path]) -> str:
    """Return the path a launcher's program ``command`` runs as on this host.

    ``command`` itself unless it is ``/cvmfs/<repository>/<path>``, no ``/cvmfs/<repository>``
    is here, and a root holds ``<root>/<repository>/<path>`` (the first that does). Raises
    nothing (a program found nowhere is returned unchanged, and reported missing).
    """
    repository = repository_of(command)
    if repository is None or not roots or os.path.isdir(f"{CVMFS_ROOT}/{repository}"):
        return command
    relative = PurePosixPath(command).relative_to(CVMFS_ROOT)
    for root in roots:
        candidate = root / relative
        if os.path.lexists(candidate):
            return str(candidate)
    return command


def repository_present(repository: str, roots: Sequence[Path]) -> bool:
    """Return True when ``/cvmfs/<repository>`` or ``<root>/<repository>`` is a folder here."""
    return any(os.path.isdir(folder / repository) for folder in (Path(CVMFS_ROOT), *roots))


def resolve_entry(text: str, roots: Sequence[Path]) -> str:
    """Return a desktop entry's text with the program of its ``Exec=`` and ``TryExec=`` lines
    resolved through ``roots`` (:func:`resolve`); other lines unchanged. Raises nothing."""
    if not roots:
        return text
    lines = []
    for line in text.splitlines(keepends=True):
        key, equals, value = line.partition("=")
        if equals and key in ("Exec", "TryExec") and value.startswith(CVMFS_ROOT + "/"):
            program = value.split(" ", 1)[0].rstrip("\r\n")
            line = f"{key}={resolve(program, roots)}{value[len(program):]}"
        lines.append(line)
    return "".join(lines)
