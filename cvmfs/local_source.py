"""The embedded default's software source: CVMFS repositories served from Debian packages.

``local-source.yaml`` lists, per repository, the paths this host can serve and the Debian
program each runs. :func:`build` writes one small program per path (``exec <program> "$@"``)
under a folder of the portal's own (``<root>/<repository>/<path>``); :func:`mount` makes each
repository folder visible at ``/cvmfs/<repository>``, where a real CVMFS client mounts it
(``mount -t cvmfs <repository> /cvmfs/<repository>`` or autofs under ``/cvmfs``), so launchers
name the same paths on every provider.

The mount is a read-only bind mount in the host's mount namespace, made only when the portal
runs as root and only where no real CVMFS is: never under an autofs-managed ``/cvmfs``, never
over something already mounted at ``/cvmfs/<repository>`` or a non-empty folder there. It stays
after the portal exits (desktops that outlive it keep their programs); the next start finds it
(same folder) and keeps it. :func:`unmount` removes only mounts of our own folders.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shlex
import shutil
import subprocess
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

import yaml

from daaas import package_path
from daaas.cvmfs.settings import validate_repository_name

log = logging.getLogger(__name__)

SHIPPED_SOURCE = package_path("daaas.cvmfs", "local-source.yaml")
CVMFS_ROOT = Path("/cvmfs")
#: Where the programs are looked up: the system's own folders, never the portal's venv
SEARCH_PATH = "/usr/local/bin:/usr/bin:/bin"


class SourceError(ValueError):
    """A local-source file that cannot be used; the message names the file and the entry."""


@dataclass(frozen=True)
class Program:
    """One path of a repository and the Debian program it runs."""

    repository: str
    path: str
    run: tuple[str, ...]
    package: str
    window: str
    description: str = ""

    @property
    def cvmfs_path(self) -> str:
        """Return where launchers name it: ``/cvmfs/<repository>/<path>``."""
        return f"{CVMFS_ROOT}/{self.repository}/{self.path}"


@dataclass(frozen=True)
class Built:
    """What :func:`build` wrote, and what it left out because the package is missing."""

    written: tuple[Program, ...]
    missing: tuple[Program, ...]


def load_source(path: Path | None = None) -> tuple[Program, ...]:
    """Read the local-source file (default: the shipped one).

    Returns its programs in file order. Raises SourceError naming the file and the entry.
    """
    path = path or SHIPPED_SOURCE
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError) as error:
        raise SourceError(f"{path}: cannot be read: {error}") from None
    repositories = data.get("repositories") if isinstance(data, dict) else None
    if not isinstance(repositories, dict):
        raise SourceError(f"{path}: needs a 'repositories' mapping")
    programs = []
    for repository, paths in repositories.items():
        try:
            validate_repository_name(str(repository))
        except ValueError as error:
            raise SourceError(f"{path}: repository {repository!r}: {error}") from None
        if not isinstance(paths, dict):
            raise SourceError(f"{path}: repository {repository!r} needs a mapping of paths")
        for relative, entry in paths.items():
            programs.append(_program(path, str(repository), str(relative), entry))
    return tuple(programs)


def _program(source: Path, repository: str, relative: str, entry: Any) -> Program:
    where = f"{source}: {repository}/{relative}"
    parts = PurePosixPath(relative).parts
    if not parts or relative.startswith("/") or any(p in ("..", ".") for p in parts):
        raise SourceError(f"{where}: the path must be relative, without '.' or '..'")
    if not isinstance(entry, dict):
        raise SourceError(f"{where}: needs run, package and window")
    run, package, window = entry.get("run"), entry.get("package"), entry.get("window")
    if (not isinstance(run, list) or not run or not all(isinstance(a, str) and a for a in run)
            or "/" in run[0]):
        raise SourceError(f"{where}: 'run' must be a list: a program name, then arguments")
    if not isinstance(package, str) or not package or not isinstance(window, str) or not window:
        raise SourceError(f"{where}: 'package' and 'window' must be non-empty text")
    return Program(repository, relative, tuple(run), package, window,
                   str(entry.get("description", "")).strip())


def repositories(programs: Iterable[Program]) -> tuple[str, ...]:
    """Return the repository names of ``programs``, in order, once each."""
    return tuple(dict.fromkeys(program.repository for program in programs))


def script(program: Program, executable: str) -> str:
    """Return the text of the program written at ``program.path``: it runs ``executable``."""
    argv = shlex.join([executable, *program.run[1:]])
    return (f"#!/bin/sh\n# {program.cvmfs_path}: written by daaas from the Debian package "
            f"{program.package} (local software source)\nexec {argv} \"$@\"\n")


def build(root: Path, programs: Iterable[Program], search_path: str = SEARCH_PATH) -> Built:
    """Write each program whose Debian program is installed to ``root/<repository>/<path>``.

    Files are replaced atomically (a live bind mount shows the new one at once); a path whose
    program is missing is removed, so nothing points at software that is not there. Folders
    are 0755 and files 0755, owned by the caller. Returns what was written and what is
    missing. Raises OSError if ``root`` cannot be written.
    """
    written, missing = [], []
    _folder(root)
    for program in programs:
        target = root / program.repository / program.path
        for folder in reversed(target.relative_to(root).parents[:-1]):
            _folder(root / folder)
        executable = shutil.which(program.run[0], path=search_path)
        if executable is None:
            target.unlink(missing_ok=True)
            missing.append(program)
            continue
        partial = target.with_name(f".{target.name}.partial")
        partial.write_text(script(program, executable), encoding="utf-8")
        partial.chmod(0o755)
        partial.replace(target)
        written.append(program)
    return Built(tuple(written), tuple(missing))


def _folder(path: Path) -> None:
    """Create ``path`` (and its parents) open to every account: 0755 whatever the umask."""
    missing = [path, *[parent for parent in path.parents if not parent.exists()]]
    path.mkdir(parents=True, exist_ok=True)
    for folder in missing:
        if folder.exists() and not folder.is_symlink():
            folder.chmod(0o755)


def mount(root: Path, names: Iterable[str], cvmfs_root: Path = CVMFS_ROOT) -> dict[str, str]:
    """Make ``root/<name>`` visible read-only at ``cvmfs_root/<name>`` for each repository.

    Needs root. Returns {name: what happened}: "mounted", "already mounted" (ours), or why it
    was left alone ("a real CVMFS …", "… not empty", the mount command's error). Raises
    nothing: a repository that cannot be shown leaves its environments unavailable.
    """
    done: dict[str, str] = {}
    if _is_mount(cvmfs_root):
        return {name: f"{cvmfs_root} is a mount of its own (a CVMFS client's autofs); left "
                      "alone" for name in names}
    for name in names:
        done[name] = _mount_one(root / name, cvmfs_root / name)
        log.info("local software source: %s: %s", cvmfs_root / name, done[name])
    return done


def _mount_one(source: Path, target: Path) -> str:
    if _is_mount(target):
        return "already mounted" if ours(source, target) else \
            "a real CVMFS (or other) mount is there; left alone"
    try:
        _folder(target)
        if any(target.iterdir()):
            return f"{target} is a folder with files in it (not a mount); left alone"
    except OSError as error:
        return f"cannot use {target}: {error.strerror or error}"
    for step in (["mount", "--bind", str(source), str(target)],
                 ["mount", "-o", "remount,bind,ro", str(target)]):
        result = subprocess.run(step, capture_output=True, text=True, check=False)
        if result.returncode != 0:
            if ours(source, target):
                subprocess.run(["umount", str(target)], capture_output=True, check=False)
            return f"{' '.join(step[:3])} failed: {result.stderr.strip()}"
    return "mounted"


def unmount(root: Path, names: Iterable[str], cvmfs_root: Path = CVMFS_ROOT) -> list[str]:
    """Unmount ``cvmfs_root/<name>`` where it is a mount of ``root/<name>`` (ours), and
    remove its then-empty mount point. Returns the names unmounted. Raises nothing."""
    removed = []
    for name in names:
        target = cvmfs_root / name
        if not (_is_mount(target) and ours(root / name, target)):
            continue
        result = subprocess.run(["umount", str(target)], capture_output=True, check=False)
        if result.returncode == 0:
            removed.append(name)
            with contextlib.suppress(OSError):
                target.rmdir()
    return removed


def ours(source: Path, target: Path) -> bool:
    """Return True when ``target`` shows the folder ``source`` (same device and inode)."""
    try:
        a, b = source.stat(), target.stat()
    except OSError:
        return False
    return (a.st_dev, a.st_ino) == (b.st_dev, b.st_ino)


def _is_mount(path: Path) -> bool:
    """Return True when ``path`` is a mount point, bind mounts of the same disk included
    (read from /proc/self/mountinfo; os.path.ismount misses those)."""
    wanted = str(path)
    try:
        lines = Path("/proc/self/mountinfo").read_text().splitlines()
    except OSError:
        return os.path.ismount(path)
    for line in lines:
        fields = line.split()
        if len(fields) > 4 and _unescape(fields[4]) == wanted:
            return True
    return False


def _unescape(field: str) -> str:
    return field.replace("\\040", " ").replace("\\011", "\t").replace("\\012", "\n") \
        .replace("\\134", "\\")


def provide(root: Path, source: Path | None = None,
            cvmfs_root: Path = CVMFS_ROOT) -> tuple[Built, dict[str, str]]:
    """Build the local software source under ``root`` and mount it at ``cvmfs_root``: what
    ``daaas serve`` does as root. Returns (what was built, per-repository mount outcome).
    Raises SourceError for a bad source file, OSError if ``root`` cannot be written."""
    programs = load_source(source)
    built = build(root, programs)
    for program in built.missing:
        log.warning("local software source: %s is not written: %s is not installed "
                    "(apt-get install %s)", program.cvmfs_path, program.run[0], program.package)
    return built, mount(root, repositories(programs), cvmfs_root)
