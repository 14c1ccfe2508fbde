"""Storage quota reservations: an upload reserves its bytes before it writes one.

Two uploads at once each used to see the quota as it was before either wrote, and both fit.
Now every upload (My Data, a WebDAV PUT) goes through :func:`reserve_upload`, which, under a
per-user lock, weighs what the storage uses and what uploads in progress have reserved, and
records its own reservation before the body is read: the second upload sees the first one's
bytes as taken. The body goes to a temporary file in the destination folder, counted as it
is written; an upload that would write more than it reserved asks for more (a body without a
Content-Length reserves as it goes, :data:`GROW` at a time) or is refused, and a refused
upload leaves nothing behind.

The lock and the reservations live under ``var_dir/quota/<user id>``: a lock file (``flock``,
released by the kernel if the process dies) and one small JSON file per upload in progress
naming its temporary file. A reservation counts only what is not yet on disk (reserved bytes
minus its temporary file's size); one whose temporary file is gone, or whose process is, is
dropped (with its temporary file; a process is looked for only on the host that recorded it).
Processes of one host share it, so several portal
processes on one host (waitress threads, a WebDAV client's parallel PUTs) are covered; portal
hosts that share storage must share ``var_dir/quota`` too.

:func:`room_left` is the one place the storage's use is read for a reservation: the figure
kept between requests (:mod:`daaas.portal.storage.usage`: measured at most every few minutes,
an upload's bytes added when it finishes), never a walk per request. That figure leaves
uploads in progress out, so a reservation counts in full until its upload finishes.
"""

from __future__ import annotations

import fcntl
import json
import os
import secrets
import socket
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import BinaryIO

from daaas.portal.auth.models import User
from daaas.portal.config import Settings
from daaas.portal.errors import PortalError
from daaas.portal.quotas.storage import storage_quota_bytes
from daaas.portal.storage import usage
from daaas.portal.storage.files import QuotaExceeded, give_to_owner, human_size, quota_message
from daaas.portal.storage.service import storage_area

#: A body of unknown length reserves this much more each time it outgrows its reservation.
GROW = 64 * 1024**2
GIB = 1024**3
#: this host's name: a reservation's process is looked for only on the host that made it
HOST = socket.gethostname()


class UploadTooLarge(PortalError):
    """One upload is larger than the whole quota (the largest body the portal accepts)."""

    status_code = 413
    code = "upload_too_large"


def too_large_message(size: int | None, quota: int) -> str:
    """Return what to tell a person whose upload (``size`` bytes, None when unknown) is larger
    than their whole quota of ``quota`` bytes. Raises nothing."""
    what = f"This file ({human_size(size)})" if size is not None else "This upload"
    return (f"{what} is larger than your whole storage quota ({human_size(quota)}), the "
            "most one upload can be. Split it into smaller files, or ask the facility for a "
            "larger quota.")


def quota_bytes(settings: Settings, user: User | None) -> int:
    """Return the user's storage quota in bytes: their own, else their groups', else
    ``storage_quota_gb`` (:func:`daaas.portal.quotas.storage.storage_quota_bytes`; None:
    nobody signed in, the site's). Raises database errors only."""
    return storage_quota_bytes(settings, user)


class Upload:
    """One upload in progress: its temporary file (next to where the file will be) and the
    bytes reserved for it. Write with :meth:`write`, then :meth:`finish` or :meth:`abandon`
    (always one of them: :func:`reserve_upload`'s caller owns it)."""

    def __init__(self, settings: Settings, user: User, entry: Path, temp: Path,
                 file: BinaryIO, reserved: int) -> None:
        self.settings, self.user = settings, user
        self.entry, self.temp, self.file = entry, temp, file
        self.reserved, self.written = reserved, 0

    def write(self, data: bytes) -> None:
        """Append ``data`` to the temporary file, reserving more first if it needs more than
        is reserved. Raises QuotaExceeded (nothing of ``data`` written) when the quota has no
        room for it, OSError when the disk refuses."""
        need = self.written + len(data)
        if need > self.reserved:
            self._grow(need)
        self.file.write(data)
        self.written = need

    def _grow(self, need: int) -> None:
        with _locked(self.settings, self.user) as ledger:
            self.file.flush()
            # the kept use leaves this upload's temporary file out: room is for all of it
            room = room_left(self.settings, self.user, ledger, but=self.entry)
            if need > room:
                raise QuotaExceeded(quota_message(need, room))
            self.reserved = min(max(need, self.reserved + GROW), room)
            _write_entry(self.entry, self.reserved, self.temp)

    def finish(self, target: Path, top: Path) -> Path:
        """Move the written file to ``target`` (replacing a file there), owned like ``top``
        (the user's storage folder), and end the reservation; returns ``target``. Raises
        OSError (the temporary file is removed then)."""
        try:
            self.file.close()
            give_to_owner(top, self.temp)
            replaced = target.lstat().st_size if target.is_file() else 0
            os.replace(self.temp, target)
        except BaseException:
            self.abandon()
            raise
        usage.add(self.settings, self.user, self.written - replaced)
        _drop(self.entry)
        return target

    def abandon(self) -> None:
        """Remove the temporary file and end the reservation. Raises nothing."""
        with suppress(OSError):
            self.file.close()
        for path in (self.temp, self.entry):
            _drop(path)


def reserve_upload(settings: Settings, user: User, folder: Path, size: int | None) -> Upload:
    """Reserve ``size`` bytes of the user's quota (a first slice, up to :data:`GROW`, when
    the size is unknown) and open the upload's temporary file in ``folder``; returns the
    Upload, which the caller must finish or abandon.

    Raises UploadTooLarge (413) when ``size`` is larger than the whole quota, QuotaExceeded
    (507; nothing is created) when it does not fit in the room left, OSError when the folder
    cannot take the temporary file.
    """
    quota = quota_bytes(settings, user)
    if size is not None and size > quota:
        raise UploadTooLarge(too_large_message(size, quota))
    with _locked(settings, user) as ledger:
        room = room_left(settings, user, ledger)
        if size is not None and size > room:
            raise QuotaExceeded(quota_message(size, room))
        reserved = size if size is not None else max(min(GROW, room), 0)
        fd, name = tempfile.mkstemp(dir=folder, prefix=".upload-", suffix=".part")
        temp = Path(name)
        entry = ledger / f"{secrets.token_hex(8)}.json"
        try:
            _write_entry(entry, reserved, temp)
        except BaseException:
            os.close(fd)
            _drop(temp)
            raise
    return Upload(settings, user, entry, temp, os.fdopen(fd, "wb"), reserved)


def reserver(settings: Settings, user: User) -> Callable[[Path, int | None], Upload]:
    """Return ``reserve(folder, size)``: :func:`reserve_upload` for this user. Raises
    nothing itself."""
    return lambda folder, size: reserve_upload(settings, user, folder, size)


def room_left(settings: Settings, user: User, ledger: Path, *, but: Path | None = None) -> int:
    """Return the bytes of the user's quota neither used on disk nor reserved by uploads in
    progress (reservation ``but`` left out); may be negative. Call it holding the user's lock
    (:func:`_locked` gives ``ledger``).

    The use is the kept figure (:func:`daaas.portal.storage.usage.used_bytes`), which leaves
    uploads in progress out; each counts its reservation (or what it wrote, if more) until it
    finishes and adds its bytes to the figure, so a finishing upload may be counted twice,
    never missed: the answer errs on the small side. Raises OSError or a StorageError when the
    storage cannot be measured.
    """
    outstanding = sum(_outstanding(entry) for entry in ledger.glob("*.json") if entry != but)
    used = storage_area(settings, user).used_bytes
    return quota_bytes(settings, user) - used - outstanding


def room_before_upload(settings: Settings, user: User) -> int:
    """Return the room :func:`reserve_upload` would find now (for an early answer; the
    reservation decides). Raises OSError or a StorageError as :func:`room_left` does."""
    with _locked(settings, user) as ledger:
        return room_left(settings, user, ledger)


def _outstanding(entry: Path) -> int:
    """The bytes a reservation holds: reserved, or what its temporary file has if more; 0 for
    one that has ended (temporary file gone), which is removed, as is one whose process (on
    this host) has died (with its temporary file)."""
    try:
        record = json.loads(entry.read_text())
        reserved, temp, pid = int(record["bytes"]), Path(record["temp"]), int(record["pid"])
        host = str(record.get("host", HOST))
    except (OSError, ValueError, KeyError, TypeError):
        _drop(entry)
        return 0
    if host == HOST and not _alive(pid):
        _drop(temp)
        _drop(entry)
        return 0
    try:
        written = temp.lstat().st_size
    except FileNotFoundError:
        _drop(entry)
        return 0
    return max(reserved, written)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _write_entry(entry: Path, reserved: int, temp: Path) -> None:
    partial = entry.with_suffix(".tmp")
    partial.write_text(json.dumps({"bytes": reserved, "temp": str(temp), "pid": os.getpid(),
                                   "host": HOST}))
    os.replace(partial, entry)


def _drop(path: Path) -> None:
    with suppress(FileNotFoundError):
        path.unlink()


@contextmanager
def _locked(settings: Settings, user: User) -> Iterator[Path]:
    """Hold the user's quota lock; yields the folder of their reservations."""
    top = settings.var_path / "quota"
    ledger = top / str(user.id)
    ledger.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd = os.open(top / f"{user.id}.lock", os.O_RDWR | os.O_CREAT | getattr(os, "O_CLOEXEC", 0),
                 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield ledger
    finally:
        os.close(fd)
