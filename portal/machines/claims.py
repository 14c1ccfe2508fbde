"""Claims: which worker acts on a machine while its provider call is in flight.

The reconciler calls the provider with no database transaction open (a slow cloud must not
hold a lock that a page or a token's use waits for). A row lock therefore cannot say "this
worker is launching that machine" for the length of the call; a claim does. It is held by the
worker's *process* and let go by the operating system or the database when the process dies,
so a worker killed between the provider call and the record leaves nothing to expire: the next
worker claims the machine at once and repeats the (idempotent) call.

- PostgreSQL: a session-level advisory lock (``pg_try_advisory_lock``) on a connection the
  claims keep open outside any transaction; workers on several hosts exclude each other.
- SQLite (one host): a POSIX byte-range lock (``lockf``) in ``<database file>-claims``.
- Inside one process (the embedded worker beside the tests' own reconcilers): a set of held
  ids, since both lock kinds above belong to a process or a connection, not a thread.

Two machine ids that hash alike only make one of them wait a cycle.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import text
from sqlalchemy.engine import Engine

from daaas.portal.db import AutocommitConnection

_HELD: set[str] = set()
_HELD_LOCK = threading.Lock()
_FILES: dict[str, int] = {}  # one descriptor per claims file and process: closing any
                             # descriptor of a file drops the process's POSIX locks on it


def _key(machine_id: str) -> int:
    return int.from_bytes(hashlib.sha256(machine_id.encode()).digest()[:8], "big", signed=True)


class _AdvisoryLocks:
    """PostgreSQL session-level advisory locks on a connection held outside transactions."""

    def __init__(self, engine: Engine) -> None:
        # any failure drops the connection (its locks go with it) and is tried once again
        self.connection = AutocommitConnection(engine, retry_on=(Exception,))
        self.lock = threading.Lock()

    def _run(self, sql: str, key: int) -> bool:
        with self.lock:
            return bool(self.connection.run(
                lambda connection: connection.execute(text(sql), {"k": key}).scalar()))

    def acquire(self, machine_id: str) -> bool:
        return self._run("SELECT pg_try_advisory_lock(:k)", _key(machine_id))

    def release(self, machine_id: str) -> None:
        self._run("SELECT pg_advisory_unlock(:k)", _key(machine_id))


class _FileLocks:
    """POSIX byte-range locks, one byte per machine id, in one file beside the database."""

    def __init__(self, path: Path) -> None:
        with _HELD_LOCK:
            if str(path) not in _FILES:
                _FILES[str(path)] = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
            self.fd = _FILES[str(path)]

    def acquire(self, machine_id: str) -> bool:
        try:
            fcntl.lockf(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB, 1, _key(machine_id) & 0x7FFFFFFF)
        except OSError:
            return False
        return True

    def release(self, machine_id: str) -> None:
        fcntl.lockf(self.fd, fcntl.LOCK_UN, 1, _key(machine_id) & 0x7FFFFFFF)


class Claims:
    """Claims on machines for the workers of one database (see the module's docstring)."""

    def __init__(self, engine: Engine) -> None:
        """Choose the lock kind from ``engine``'s database; an in-memory SQLite database
        (seen by one process only) needs none beyond the in-process set."""
        self.shared: _AdvisoryLocks | _FileLocks | None = None
        database = engine.url.database
        if engine.dialect.name == "postgresql":
            self.shared = _AdvisoryLocks(engine)
        elif database and database != ":memory:" and not database.startswith("file:"):
            self.shared = _FileLocks(Path(f"{database}-claims"))

    @contextmanager
    def hold(self, machine_id: str) -> Iterator[bool]:
        """Try to claim the machine for the ``with`` block; yields True when this worker has it
        and False when another worker (or thread) holds it. Never waits."""
        with _HELD_LOCK:
            mine = machine_id not in _HELD
            _HELD.add(machine_id)
        if not mine:
            yield False
            return
        try:
            shared = self.shared is None or self.shared.acquire(machine_id)
            try:
                yield shared
            finally:
                if shared and self.shared is not None:
                    self.shared.release(machine_id)
        finally:
            with _HELD_LOCK:
                _HELD.discard(machine_id)
