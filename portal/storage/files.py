"""File operations confined to one folder (a user's storage, or an experiment's data).

Every path a person sends is relative to a root folder. It is refused before anything is
touched when it could leave the root: ``..`` or ``.`` segments, absolute paths, backslashes,
NUL bytes, names that still decode (once or twice) into any of those, and symlinks whose
target is outside the root (checked with ``os.path.realpath``). Files are opened with
``O_NOFOLLOW`` and uploads go to a temporary file in the destination folder, renamed into place
(with the quota reserved first: :mod:`daaas.portal.storage.quota`).
"""

from __future__ import annotations

import os
import shutil
import stat
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import BinaryIO, Protocol
from urllib.parse import unquote

from daaas.portal.errors import Conflict, Forbidden, InvalidInput, NotFound, PortalError

CHUNK = 1024 * 1024
MAX_NAME = 255
BAD_PATH = ("'{path}' is not a valid path in your storage: use folder and file names "
            "separated by '/', without '..', '\\' or a leading '/'.")


class QuotaExceeded(PortalError):
    """Writing this would take the user's storage over its quota."""

    status_code = 507
    code = "quota_exceeded"


@dataclass(frozen=True)
class Root:
    """A folder that paths are confined to; ``writable`` is False for experiment data."""

    key: str
    title: str
    path: Path
    writable: bool


@dataclass(frozen=True)
class Entry:
    """One item of a folder listing."""

    name: str
    path: str
    is_dir: bool
    size: int
    modified: datetime
    is_link_outside: bool = False


def clean_relative(path: str) -> str:
    """Return ``path`` normalised to 'a/b' (empty for the root); raises InvalidInput."""
    for variant in _decodings(path):
        if "\x00" in variant or "\\" in variant or variant.startswith("/") or \
                any(part in {"..", "."} for part in variant.split("/")):
            raise InvalidInput(BAD_PATH.format(path=_shown(path)))
    parts = [part for part in path.split("/") if part]
    if any(len(part.encode()) > MAX_NAME for part in parts):
        raise InvalidInput(f"A name in '{_shown(path)}' is longer than {MAX_NAME} bytes.")
    return "/".join(parts)


def clean_name(name: str) -> str:
    """Return a single file or folder name; raises InvalidInput for an empty, over-long
    (more than 255 bytes) or bad one ('..', 'a/b'), saying which for a person."""
    name = name.strip()
    if len(name.encode()) > MAX_NAME:
        raise InvalidInput(f"This name is {len(name.encode())} bytes long; a name can be at "
                           f"most {MAX_NAME} bytes (about {MAX_NAME} letters).")
    try:
        usable = bool(name) and "/" not in name and clean_relative(name) == name
    except InvalidInput:
        usable = False
    if not usable:
        shown = f"'{_shown(name)}'" if name else "An empty name"
        raise InvalidInput(f"{shown} is not a valid name: use a name without '/', "
                           "'\\' or '..'.")
    return name


def _decodings(path: str) -> Iterator[str]:
    """The path as sent and as it would read after one or two rounds of URL decoding."""
    current = path
    for _round in range(3):
        yield current
        decoded = unquote(current)
        if decoded == current:
            return
        current = decoded


def _shown(path: str) -> str:
    return path.replace("\x00", "\\0")[:200]


def resolve(root: Root, relative: str, *, follow: bool = True) -> Path:
    """Return the absolute path of ``relative`` inside ``root``.

    With ``follow`` (reading, or writing into a folder) the whole path is resolved through
    symlinks and must stay inside the root. Without it (rename, delete) only the parent is
    resolved, so a symlink itself can be acted on without touching its target. Raises
    InvalidInput for a path that could escape and NotFound for one that resolves outside.
    """
    clean = clean_relative(relative)
    base = os.path.realpath(root.path)
    if not clean:
        return Path(base)
    if follow:
        target = os.path.realpath(os.path.join(base, clean))
    else:
        parent, _, name = clean.rpartition("/")
        target = os.path.join(os.path.realpath(os.path.join(base, parent)), name)
    if not (target == base or target.startswith(base + os.sep)):
        raise NotFound(f"'{clean}' is not in {root.title}.",
                       f"path {clean!r} resolves outside {base}: {target}")
    return Path(target)


def existing(root: Root, relative: str, *, follow: bool = True) -> Path:
    """Like :func:`resolve`, for a path that must exist; raises NotFound."""
    path = resolve(root, relative, follow=follow)
    if not os.path.lexists(path):
        raise NotFound(f"There is no '{clean_relative(relative)}' in {root.title}.")
    return path


def writable(root: Root) -> None:
    """Raise Forbidden when ``root`` is read-only (experiment data)."""
    if not root.writable:
        raise Forbidden(f"{root.title} is read-only: copy files into your storage to change "
                        "them.")


def listing(root: Root, relative: str) -> list[Entry]:
    """Return the folder's entries, folders first, then by name; raises NotFound."""
    folder = existing(root, relative)
    if not folder.is_dir():
        raise NotFound(f"'{clean_relative(relative)}' is not a folder in {root.title}.")
    prefix = clean_relative(relative)
    entries = [_entry(root, prefix, item) for item in os.scandir(folder)]
    return sorted(entries, key=lambda e: (not e.is_dir, e.name.lower()))


def _entry(root: Root, prefix: str, item: os.DirEntry[str]) -> Entry:
    info = item.stat(follow_symlinks=False)
    outside = False
    is_dir = stat.S_ISDIR(info.st_mode)
    if item.is_symlink():
        real = os.path.realpath(item.path)
        base = os.path.realpath(root.path)
        outside = not (real == base or real.startswith(base + os.sep))
        is_dir = not outside and os.path.isdir(real)
    return Entry(name=item.name, path=f"{prefix}/{item.name}".lstrip("/"), is_dir=is_dir,
                 size=0 if is_dir else info.st_size,
                 modified=datetime.fromtimestamp(info.st_mtime, UTC), is_link_outside=outside)


def open_for_reading(root: Root, relative: str) -> tuple[BinaryIO, os.stat_result]:
    """Open a file of ``root`` for reading (no symlink as the last step); raises NotFound."""
    path = existing(root, relative)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0))
    except OSError as exc:
        raise NotFound(f"'{clean_relative(relative)}' cannot be read.", str(exc)) from None
    info = os.fstat(fd)
    if not stat.S_ISREG(info.st_mode):
        os.close(fd)
        raise NotFound(f"'{clean_relative(relative)}' is not a file in {root.title}.")
    return os.fdopen(fd, "rb"), info


class Reserved(Protocol):
    """An upload's temporary file with quota reserved for it
    (:class:`daaas.portal.storage.quota.Upload`); ``written`` counts the bytes written."""

    written: int

    def write(self, data: bytes) -> None:
        """Append ``data``; raises QuotaExceeded past what the quota allows."""

    def finish(self, target: Path, top: Path) -> Path:
        """Move the file to ``target``, owned like ``top``; returns ``target``."""

    def abandon(self) -> None:
        """Remove the temporary file and end the reservation."""


#: ``reserve(folder, size)``: reserve ``size`` bytes (None: unknown) of the quota and open a
#: temporary file in ``folder`` (:func:`daaas.portal.storage.quota.reserve_upload`).
Reserve = Callable[[Path, "int | None"], Reserved]


def save_stream(root: Root, folder: str, name: str, stream: BinaryIO, length: int | None,
                room: int | Reserve) -> Path:
    """Write ``stream`` to ``folder/name`` through a temporary file in the same folder.

    ``room`` is how the bytes are allowed: ``reserve`` (the user's quota, reserved before
    anything is written, so concurrent uploads cannot overrun it together) or a plain number
    of bytes accepted. Returns the new file's path. Raises Forbidden (read-only root),
    NotFound (no such folder), InvalidInput (bad name or a body shorter than announced),
    QuotaExceeded, or what ``reserve`` raises (UploadTooLarge); nothing is kept then.
    """
    writable(root)
    name = clean_name(name)
    target_dir = existing(root, folder)
    if not target_dir.is_dir():
        raise NotFound(f"'{clean_relative(folder)}' is not a folder in {root.title}.")
    if (target_dir / name).is_dir():
        raise Conflict(f"There is already a folder called '{name}' here.")
    upload = room(target_dir, length) if callable(room) else _Capped(target_dir, length, room)
    try:
        while chunk := stream.read(CHUNK):
            upload.write(chunk)
        if length is not None and upload.written != length:
            raise InvalidInput(f"The upload of '{name}' ended early ({upload.written} of "
                               f"{length} bytes). Try again.")
        return upload.finish(target_dir / name, root.path)
    except BaseException:
        upload.abandon()
        raise


class _Capped:
    """A temporary file that takes at most ``room`` bytes (no reservation shared with other
    uploads: for a caller that has none, such as a test or a tool)."""

    def __init__(self, folder: Path, length: int | None, room: int) -> None:
        if length is not None and length > room:
            raise QuotaExceeded(quota_message(length, room))
        fd, temp = tempfile.mkstemp(dir=folder, prefix=".upload-", suffix=".part")
        self.temp, self.file, self.room, self.written = Path(temp), os.fdopen(fd, "wb"), room, 0

    def write(self, data: bytes) -> None:
        if self.written + len(data) > self.room:
            raise QuotaExceeded(quota_message(self.written + len(data), self.room))
        self.file.write(data)
        self.written += len(data)

    def finish(self, target: Path, top: Path) -> Path:
        self.file.close()
        give_to_owner(top, self.temp)
        os.replace(self.temp, target)
        return target

    def abandon(self) -> None:
        self.file.close()
        if os.path.lexists(self.temp):
            os.unlink(self.temp)


def quota_message(size: int, room: int) -> str:
    """Return what to tell a person whose upload of ``size`` bytes does not fit in ``room``."""
    return (f"Not enough room in your storage: this needs {human_size(size)} but only "
            f"{human_size(max(room, 0))} of your quota is left. Delete files you no longer "
            "need, or ask the facility for a larger quota.")


def make_folder(root: Root, parent: str, name: str) -> Path:
    """Create folder ``parent/name``; raises Forbidden, NotFound, InvalidInput or Conflict."""
    writable(root)
    path = existing(root, parent) / clean_name(name)
    try:
        os.mkdir(path, 0o700)
    except FileExistsError:
        raise Conflict(f"'{path.name}' already exists here.") from None
    except NotADirectoryError:
        raise NotFound(f"'{clean_relative(parent)}' is not a folder.") from None
    give_to_owner(root.path, path)
    return path


def give_to_owner(top: Path, path: Path) -> None:
    """Make ``path`` (and, for a folder, everything below it) owned like ``top``, the user's
    storage folder, when the portal runs as root: what the portal writes there for a user
    (uploads, WebDAV) is then theirs inside their desktops too. Links are changed themselves,
    never what they name. Returns None; raises OSError."""
    if os.geteuid() != 0 or not os.path.lexists(path):
        return
    owner = os.stat(top)
    ids = (owner.st_uid, owner.st_gid)
    items = [path]
    if path.is_dir() and not path.is_symlink():
        for folder, folders, names in os.walk(path):
            items.extend(Path(folder) / name for name in (*folders, *names))
    for item in items:
        found = os.lstat(item)
        if (found.st_uid, found.st_gid) != ids:
            os.lchown(item, *ids)


def rename(root: Root, relative: str, new_name: str) -> Path:
    """Rename an item within its folder; raises Forbidden, NotFound, InvalidInput or Conflict."""
    writable(root)
    source = existing(root, relative, follow=False)
    if source == Path(os.path.realpath(root.path)):
        raise InvalidInput("The top folder of your storage cannot be renamed.")
    target = source.with_name(clean_name(new_name))
    if os.path.lexists(target):
        raise Conflict(f"'{target.name}' already exists here.")
    os.rename(source, target)
    return target


def delete(root: Root, relative: str) -> None:
    """Delete a file, link or folder (with its contents); raises Forbidden or NotFound."""
    writable(root)
    path = existing(root, relative, follow=False)
    if path == Path(os.path.realpath(root.path)):
        raise InvalidInput("The top folder of your storage cannot be deleted.")
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    else:
        path.unlink()


def human_size(size: int) -> str:
    """Return ``size`` bytes as '1.5 GiB'."""
    value = float(size)
    for unit in ("bytes", "KiB", "MiB", "GiB", "TiB"):
        if value < 1024 or unit == "TiB":
            return f"{int(value)} {unit}" if unit == "bytes" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{size} bytes"
