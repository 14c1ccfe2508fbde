"""Telling web requests that a machine changed, so a page waiting for "ready" learns it by a
push instead of asking on a timer (issue 20, the click path).

Every state change writes a ``machine_events`` row (:func:`...service.transition`), so a
session that commits new event rows announces their machines: installed on the web app's
and the workers' session factories (:func:`announce_changes`). A web request that waits
(:meth:`Hub.wait`, used by the desktop status's long poll) holds **no database connection**:
it waits on a condition variable of its process, which one listener thread per process feeds.

- **PostgreSQL**: ``SELECT pg_notify('daaas_machine', <id>)`` inside the committing
  transaction (delivered on commit only, to every process on any host); the listener thread
  holds one LISTEN connection per process (never one per waiting request).
- **SQLite** (processes on one host): after the commit the machines' ids are written, without
  blocking, to every named pipe in ``<database file>-watch/`` (one per waiting web process,
  ``<pid>``, made by its listener thread); a pipe without a reader is a dead process's and is
  removed. In the same process (``daaas serve``'s embedded worker) the hub is told directly.
- An in-memory database has no file: only the process itself is told.

As with the worker's wake-up (:mod:`.wakeup`), the signal is a hint: a waiter reads the
machine again from the database after it, and waits at most its bound.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import select
import stat
import threading
import time
from collections import OrderedDict
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from sqlalchemy import event, text
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session, sessionmaker

from daaas.portal.db import make_engine

log = logging.getLogger(__name__)
CHANNEL = "daaas_machine"
#: A pipe write larger than this is not atomic: then "*" (something changed) is written
PIPE_ATOMIC = 4096
#: Ids remembered per process (the oldest are forgotten; a waiter then waits its bound)
REMEMBERED = 10000
#: A listener with no wait for this long stops (the next wait starts it again)
IDLE_SECONDS = 60.0
_KEY = "daaas_changed_machines"


# -- announcing --------------------------------------------------------------------------------


def announce_changes(factory: sessionmaker[Session]) -> None:
    """Make every session of ``factory`` announce the machines whose events it commits (once
    per factory: calling it again changes nothing). Raises nothing."""
    if event.contains(factory, "after_flush", _after_flush):
        return
    event.listen(factory, "after_flush", _after_flush)
    event.listen(factory, "after_commit", _after_commit)
    event.listen(factory, "after_rollback", _after_rollback)


def _after_flush(session: Session, _context: Any) -> None:
    ids = {str(obj.machine_id) for obj in session.new
           if getattr(obj, "__tablename__", None) == "machine_events"
           and getattr(obj, "machine_id", None)}
    if not ids:
        return
    known: set[str] = session.info.setdefault(_KEY, set())
    fresh = ids - known
    known.update(ids)
    connection = session.connection()
    if fresh and connection.dialect.name == "postgresql":
        for machine_id in sorted(fresh):  # delivered on commit only
            connection.execute(text("SELECT pg_notify(:channel, :id)"),
                               {"channel": CHANNEL, "id": machine_id})
    session.info.setdefault(_KEY + "_engine", connection.engine)


def _after_commit(session: Session) -> None:
    ids: set[str] | None = session.info.pop(_KEY, None)
    engine: Engine | None = session.info.pop(_KEY + "_engine", None)
    if not ids or engine is None:
        return
    hub_of(engine).publish(ids)  # this process's waiters (the embedded worker's commits)
    if engine.dialect.name != "postgresql":
        _write_pipes(watch_folder(engine), ids)


def _after_rollback(session: Session) -> None:
    session.info.pop(_KEY, None)
    session.info.pop(_KEY + "_engine", None)


def watch_folder(engine: Engine) -> Path | None:
    """Return the folder of the SQLite database's watch pipes, or None (PostgreSQL, or an
    in-memory database). Raises nothing."""
    database = engine.url.database
    if engine.dialect.name != "sqlite" or not database or database == ":memory:" \
            or database.startswith("file:"):
        return None
    return Path(f"{database}-watch")


def _write_pipes(folder: Path | None, ids: Iterable[str]) -> None:
    """Write ``ids`` to every other process's pipe in ``folder`` without blocking; remove the
    pipes no process reads. Raises nothing."""
    if folder is None:
        return
    try:
        names = os.listdir(folder)
    except OSError:
        return  # no process waits
    data = "".join(f"{machine_id}\n" for machine_id in sorted(ids)).encode()
    if len(data) > PIPE_ATOMIC:
        data = b"*\n"
    for name in names:
        if name == str(os.getpid()):
            continue  # told directly
        path = folder / name
        try:
            pipe = os.open(path, os.O_WRONLY | os.O_NONBLOCK)
        except OSError as exc:
            if exc.errno == errno.ENXIO:  # nobody reads it: its process is gone
                with contextlib.suppress(OSError):
                    if not _alive(name):
                        path.unlink()
            continue
        try:
            os.write(pipe, data)
        except OSError:  # full: that process has changes to read already
            pass
        finally:
            os.close(pipe)


def _alive(name: str) -> bool:
    try:
        os.kill(int(name), 0)
    except (ValueError, ProcessLookupError):
        return False
    except PermissionError:
        return True
    return True


# -- waiting -----------------------------------------------------------------------------------


class Hub:
    """One process's record of which machines changed, and the waits on it."""

    def __init__(self) -> None:
        """An empty hub, with no listener yet (:meth:`listen` starts one)."""
        self._condition = threading.Condition()
        self._count = 0
        self._changed: OrderedDict[str, int] = OrderedDict()
        self._anything = 0  # when "*" (any machine) last came
        self._listener: threading.Thread | None = None
        self._waiting = 0  # waits in progress
        self._last_wait = time.monotonic()

    def version(self, machine_id: str) -> int:
        """Return the count of changes seen so far for ``machine_id`` (compare after a wait).
        Raises nothing."""
        with self._condition:
            return max(self._changed.get(machine_id, 0), self._anything)

    def publish(self, ids: Iterable[str]) -> None:
        """Record that the machines ``ids`` ("*": any) changed and wake the waits. Raises
        nothing."""
        with self._condition:
            for machine_id in ids:
                self._count += 1
                if machine_id == "*":
                    self._anything = self._count
                    continue
                self._changed.pop(machine_id, None)
                self._changed[machine_id] = self._count
                if len(self._changed) > REMEMBERED:
                    self._changed.popitem(last=False)
            self._condition.notify_all()

    def wait(self, machine_id: str, since: int, timeout: float) -> bool:
        """Wait until ``machine_id`` changes after :meth:`version` gave ``since``, at most
        ``timeout`` seconds; True if it did. Raises nothing."""
        deadline = time.monotonic() + timeout
        with self._condition:
            self._waiting += 1
            try:
                while max(self._changed.get(machine_id, 0), self._anything) <= since:
                    left = deadline - time.monotonic()
                    if left <= 0:
                        return False
                    self._condition.wait(left)
                return True
            finally:
                self._waiting -= 1
                self._last_wait = time.monotonic()

    def _idle(self) -> bool:
        """True when nobody waits and nobody has for :data:`IDLE_SECONDS`."""
        with self._condition:
            return self._waiting == 0 and time.monotonic() - self._last_wait > IDLE_SECONDS

    def listen(self, engine: Engine) -> None:
        """Start this process's listener thread for ``engine``'s database, unless running.
        The thread stops when no one has waited for :data:`IDLE_SECONDS`, or when the
        database fails while no one waits. Raises nothing."""
        with self._condition:
            self._last_wait = time.monotonic()
            if self._listener is not None and self._listener.is_alive():
                return
            if engine.dialect.name == "postgresql":
                target: Any = self._listen_postgresql
            elif watch_folder(engine) is not None:
                target = self._listen_pipe
            else:
                return  # an in-memory database: only this process changes it
            self._listener = threading.Thread(target=target, args=(engine,), daemon=True,
                                              name="daaas-machine-changes")
            self._listener.start()

    def _listen_postgresql(self, engine: Engine) -> None:
        # its own connection, outside the pool the requests use
        listener = make_engine(engine.url.render_as_string(hide_password=False), pooled=False)
        try:
            while True:
                raw: Any = None
                try:
                    raw = listener.raw_connection()
                    connection = raw.driver_connection
                    connection.autocommit = True
                    connection.execute(f"LISTEN {CHANNEL}")
                    self.publish(["*"])  # anything missed while not listening
                    while not self._idle():
                        for note in connection.notifies(timeout=5):
                            self.publish([note.payload])
                    return
                except Exception as exc:
                    if self._idle() or self._waiting == 0:
                        return
                    log.warning("machine changes: LISTEN failed, again in 1 s: %s", exc)
                    time.sleep(1)
                finally:
                    if raw is not None:
                        with contextlib.suppress(Exception):
                            raw.invalidate()
        finally:
            listener.dispose()

    def _listen_pipe(self, engine: Engine) -> None:
        folder = watch_folder(engine)
        assert folder is not None
        path = folder / str(os.getpid())
        while True:
            pipe = -1
            try:
                folder.mkdir(mode=0o700, exist_ok=True)
                with contextlib.suppress(FileNotFoundError):
                    if not stat.S_ISFIFO(os.stat(path).st_mode):
                        raise OSError(f"{path} exists and is not a named pipe")
                if not path.exists():
                    os.mkfifo(path, 0o600)
                pipe = os.open(path, os.O_RDWR | os.O_NONBLOCK)
                self.publish(["*"])
                pending = b""
                while not self._idle():
                    select.select([pipe], [], [], 5)
                    try:
                        pending += os.read(pipe, 65536)
                    except BlockingIOError:
                        continue
                    *lines, pending = pending.split(b"\n")
                    if lines:
                        self.publish(line.decode() for line in lines if line)
                with contextlib.suppress(OSError):
                    path.unlink()  # idle: writers stop writing to it
                return
            except OSError as exc:
                if self._waiting == 0:
                    return
                log.warning("machine changes: %s failed, again in 1 s: %s", path, exc)
                time.sleep(1)
            finally:
                if pipe >= 0:
                    os.close(pipe)


_hubs: dict[str, Hub] = {}
_hubs_lock = threading.Lock()


def hub_of(engine: Engine) -> Hub:
    """Return this process's hub for ``engine``'s database (one per database URL). Raises
    nothing."""
    key = engine.url.render_as_string(hide_password=True)
    with _hubs_lock:
        return _hubs.setdefault(key, Hub())
