"""How much of their storage each user uses, kept between requests (issue 19).

Walking a user's storage costs time in proportion to its files (10,000 files: ~80 ms), so it
is not done per request: the figure is kept in ``var_dir/quota/<user id>.usage`` (JSON: bytes
and when measured, replaced atomically) and

- an upload through the portal (My Data, a WebDAV PUT) adds what it wrote, less the file it
  replaced (:func:`add`), under the file's lock;
- a deletion, copy or move through the portal forgets the figure (:func:`forget`), so the
  next check measures again (a copy's size would need a walk of what was copied anyway);
- a figure older than :data:`MAX_AGE_SECONDS` is measured again, for what the user's machines
  wrote into the storage themselves (the portal does not see those writes).

Uploads in progress (``.upload-*.part`` files) are never counted here: the quota's
reservations hold their bytes (:mod:`daaas.portal.storage.quota`). Hosts that share the
storage must share ``var_dir/quota``, as the reservations already need.
"""

from __future__ import annotations

import fcntl
import json
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

from daaas.portal.auth.models import User
from daaas.portal.config import Settings

#: A measured figure is trusted this long (seconds); older, the storage is walked again.
MAX_AGE_SECONDS = 300.0
#: How an upload in progress names its temporary file (``tempfile.mkstemp`` in quota.py).
PARTIAL_PREFIX, PARTIAL_SUFFIX = ".upload-", ".part"


def measure(path: Path) -> int:
    """Return the bytes of the regular files below ``path`` (0 if missing), uploads in
    progress left out: the one full walk. Raises nothing."""
    total = 0
    for folder, _dirs, names in os.walk(path):
        for name in names:
            if name.startswith(PARTIAL_PREFIX) and name.endswith(PARTIAL_SUFFIX):
                continue
            try:
                total += (Path(folder) / name).lstat().st_size
            except OSError:
                continue
    return total


def used_bytes(settings: Settings, user: User, path: Path) -> int:
    """Return the bytes the user's storage at ``path`` uses: the kept figure, or (none kept,
    or older than :data:`MAX_AGE_SECONDS`) a new measurement, which is then kept. Raises
    OSError when the figure cannot be kept."""
    with _locked(settings, user) as record:
        known = _read(record)
        if known is not None and time.time() - known[1] < MAX_AGE_SECONDS:
            return known[0]
        used = measure(path)
        _write(record, used)
        return used


def add(settings: Settings, user: User, delta: int) -> None:
    """Add ``delta`` bytes (negative: fewer) to the kept figure, if there is one (none: the
    next check measures). Raises nothing: a figure not updated is forgotten instead."""
    try:
        with _locked(settings, user) as record:
            known = _read(record)
            if known is not None:
                _write(record, max(known[0] + delta, 0), at=known[1])
    except OSError:
        forget(settings, user)


def forget(settings: Settings, user: User) -> None:
    """Drop the kept figure, so the next check measures the storage. Raises nothing."""
    with suppress(OSError):
        _record_path(settings, user).unlink()


def _record_path(settings: Settings, user: User) -> Path:
    return settings.var_path / "quota" / f"{user.id}.usage"


def _read(record: Path) -> tuple[int, float] | None:
    try:
        data = json.loads(record.read_text(encoding="utf-8"))
        return int(data["bytes"]), float(data["at"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _write(record: Path, used: int, at: float | None = None) -> None:
    partial = record.with_name(f".{record.name}.{os.getpid()}")
    partial.write_text(json.dumps({"bytes": used, "at": time.time() if at is None else at}),
                       encoding="utf-8")
    os.replace(partial, record)


@contextmanager
def _locked(settings: Settings, user: User) -> Iterator[Path]:
    """Hold the lock of the user's kept figure (``flock``); yields the figure's file."""
    record = _record_path(settings, user)
    record.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd = os.open(record.with_suffix(".usage-lock"),
                 os.O_RDWR | os.O_CREAT | getattr(os, "O_CLOEXEC", 0), 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield record
    finally:
        os.close(fd)
