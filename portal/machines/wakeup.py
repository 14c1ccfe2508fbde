"""Waking the worker when the portal records something for it to do.

A launch (or a stop, start or delete) is recorded by the portal and carried out by the
reconciler. Without a signal it would wait for the worker's next cycle
(``reconcile_interval_seconds``); with one, the worker starts a cycle as soon as the portal's
transaction commits. The signal is a hint, never the work list: a lost one costs at most one
interval, and the cycle still reads the machines from the database.

- **PostgreSQL**: ``NOTIFY daaas_reconcile`` inside the portal's transaction, which PostgreSQL
  delivers only if it commits, to every worker that LISTENs, on any host. A notification that
  arrives while a worker is busy waits on its connection for the next wait.
- **SQLite** (portal and workers on one host): a named pipe, ``<database file>-wake``, made by
  the first worker. A worker keeps it open (read and write, so it never sees an end of file)
  and waits in ``select``: no polling, no CPU while idle. After it commits, the portal writes
  one byte without blocking; with no worker there (no reader: ``ENXIO``) or bytes already
  pending (a full pipe) it writes nothing and moves on. One byte wakes one worker, which is
  enough; a byte written while the worker was busy wakes its next wait. A killed worker
  leaves only the pipe, which the next one opens again. An in-memory database has no file:
  its worker waits the interval. (Polling the mtime of a file every 20 ms cost 1 % of a core
  idle and 10 ms of latency; a Unix socket's path is limited to 108 bytes.)

The portal's sessions send the signal (:func:`wake_on_intent`, installed on the web app's
session factory); a worker's :class:`Waker` waits for it.
"""

from __future__ import annotations

import contextlib
import logging
import os
import select
import stat
import threading
import time
from itertools import chain
from typing import Any

from sqlalchemy import event, inspect
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session, sessionmaker

from daaas.portal.machines.states import State

log = logging.getLogger(__name__)
CHANNEL = "daaas_reconcile"
#: States a web request records for the worker to act on (a start is stopped -> provisioning).
#: Contextualising: a warm pool's machine claimed by a launch (issue 20), to personalise.
INTENTS = frozenset({State.REQUESTED.value, State.DELETING.value, State.STOPPING.value,
                     State.PROVISIONING.value, State.CONTEXTUALISING.value})
_WAKE = "daaas_wake_worker"


def wake_path(engine: Engine) -> str | None:
    """Return the SQLite wake-up pipe of ``engine``'s database, or None (PostgreSQL, or an
    in-memory SQLite database)."""
    database = engine.url.database
    if engine.dialect.name != "sqlite" or not database or database == ":memory:" \
            or database.startswith("file:"):
        return None
    return f"{database}-wake"


def wake_on_intent(factory: sessionmaker[Session]) -> None:
    """Make every session of ``factory`` wake the workers when it commits a machine in a
    state a worker acts on (:data:`INTENTS`). Raises nothing."""
    event.listen(factory, "after_flush", _after_flush)
    event.listen(factory, "after_commit", _after_commit)
    event.listen(factory, "after_rollback", _after_rollback)


def ask_the_worker(session: Session) -> None:
    """Make ``session`` wake the workers when it commits, for something recorded without a
    machine changing state (a VM's set-up report: the worker applies it at once). Needs a
    session of a factory made with :func:`wake_on_intent`. Raises only database errors."""
    if _WAKE not in session.info:
        _wake_on_commit(session)


def _asks_the_worker(obj: object) -> bool:
    if getattr(obj, "__tablename__", None) != "machines" or getattr(obj, "state", None) \
            not in INTENTS:
        return False
    state = inspect(obj)
    return bool(state.pending or state.attrs.state.history.has_changes())


def _after_flush(session: Session, _context: Any) -> None:
    if _WAKE not in session.info and any(
            _asks_the_worker(obj) for obj in chain(session.new, session.dirty)):
        _wake_on_commit(session)


def _wake_on_commit(session: Session) -> None:
    """Arrange the wake-up for when ``session`` commits: NOTIFY inside the transaction
    (PostgreSQL delivers it on commit only), or note the pipe to write after the commit."""
    connection = session.connection()
    if connection.dialect.name == "postgresql":
        connection.exec_driver_sql(f"NOTIFY {CHANNEL}")
        session.info[_WAKE] = None
    else:
        session.info[_WAKE] = wake_path(connection.engine)


def _after_commit(session: Session) -> None:
    path = session.info.pop(_WAKE, None)
    if path is None:
        return
    try:
        pipe = os.open(path, os.O_WRONLY | os.O_NONBLOCK)
    except OSError:  # no worker has made the pipe, or none is reading it: the interval
        return
    try:
        os.write(pipe, b"!")
    except BlockingIOError:  # wake-ups are pending already
        pass
    except OSError as exc:
        log.debug("worker not woken: %s", exc)
    finally:
        os.close(pipe)


def _after_rollback(session: Session) -> None:
    session.info.pop(_WAKE, None)


class Waker:
    """What a worker waits on between cycles (see the module's docstring)."""

    def __init__(self, engine: Engine) -> None:
        """Wait for ``engine``'s database: NOTIFY on PostgreSQL, the named pipe on SQLite."""
        self.engine = engine
        self.path = wake_path(engine)
        self._pipe: int | None = None  # the named pipe, open for reading and writing (SQLite)
        self._listener: Any = None  # the psycopg connection that LISTENs (PostgreSQL)

    def wait(self, timeout: float, stop: threading.Event) -> bool:
        """Wait up to ``timeout`` seconds; return True as soon as the portal asks for a cycle
        (or ``stop`` is set), False when the time is up. Never raises."""
        deadline = time.monotonic() + timeout
        while not stop.is_set():
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            slice_ = min(left, 0.5)  # ``stop`` is looked at twice a second
            if self.engine.dialect.name == "postgresql":
                woken = self._notified(slice_)
            elif self.path is not None:
                woken = self._piped(slice_)
            else:
                woken = stop.wait(slice_)
            if woken:
                return True
        return True

    def listen(self) -> None:
        """Start listening now (open the named pipe, or LISTEN on PostgreSQL), so that a
        wake-up sent before the first :meth:`wait` (during the worker's first cycle) is kept
        for it instead of lost. Raises nothing: a failure is logged and tried again at the
        wait."""
        try:
            if self.engine.dialect.name == "postgresql":
                self._listening()
            elif self.path is not None and self._pipe is None:
                self._pipe = _open_pipe(self.path)
        except Exception as exc:
            log.warning("not listening for wake-ups yet: %s", exc)
            self.close()

    def _listening(self) -> Any:
        """Return the psycopg connection that LISTENs (opened on first use). Raises what
        connecting raises."""
        if self._listener is None:
            raw = self.engine.raw_connection()
            raw.driver_connection.autocommit = True  # type: ignore[union-attr]
            raw.driver_connection.execute(f"LISTEN {CHANNEL}")  # type: ignore[union-attr]
            self._listener = raw
        return self._listener.driver_connection

    def _piped(self, timeout: float) -> bool:
        """Wait for a byte on the named pipe (made and opened on first use); True if one came.
        A pipe that cannot be made or read waits ``timeout``."""
        assert self.path is not None
        try:
            if self._pipe is None:
                self._pipe = _open_pipe(self.path)
            readable, _, _ = select.select([self._pipe], [], [], timeout)
            woken = False
            while readable:
                try:
                    woken = bool(os.read(self._pipe, 4096)) or woken
                except BlockingIOError:  # drained (or another worker took the byte)
                    break
            return woken
        except OSError as exc:
            log.warning("waiting on %s failed, retrying: %s", self.path, exc)
            self.close()
            time.sleep(timeout)
            return False

    def _notified(self, timeout: float) -> bool:
        """Wait for a notification on the LISTEN connection (opened on first use, opened
        again after an error); True if one came. A broken connection waits ``timeout``."""
        try:
            connection = self._listening()
            woken = any(True for _ in connection.notifies(timeout=timeout, stop_after=1))
            if woken:  # several launches at once make one cycle
                for _ in connection.notifies(timeout=0):
                    pass
            return woken
        except Exception as exc:
            log.warning("waiting for NOTIFY failed, retrying: %s", exc)
            self.close()
            time.sleep(timeout)
            return False

    def close(self) -> None:
        """Close the pipe or the LISTEN connection, if open. Raises nothing."""
        if self._pipe is not None:
            with contextlib.suppress(OSError):
                os.close(self._pipe)
            self._pipe = None
        if self._listener is not None:
            with contextlib.suppress(Exception):  # already broken
                self._listener.invalidate()
            self._listener = None


def _open_pipe(path: str) -> int:
    """Return the named pipe at ``path`` (made if missing) open for reading and writing,
    without blocking. Raises OSError."""
    try:
        os.mkfifo(path, 0o600)
    except FileExistsError:
        if not stat.S_ISFIFO(os.stat(path).st_mode):  # not ours: leave it, raise
            raise OSError(f"{path} exists and is not a named pipe") from None
    return os.open(path, os.O_RDWR | os.O_NONBLOCK)
