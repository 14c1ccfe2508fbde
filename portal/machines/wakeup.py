"""Waking the worker when the portal records something for it to do.

A launch (or a stop, start or delete) is recorded by the portal and carried out by the
reconciler. Without a signal it would wait for the worker's next cycle
(``reconcile_interval_seconds``); with one, the worker starts a cycle as soon as the portal's
transaction commits. The signal is a hint, never the work list: a lost one costs at most one
interval, and the cycle still reads the machines from the database.

- **PostgreSQL**: ``NOTIFY daaas_reconcile`` inside the portal's transaction, which PostgreSQL
  delivers only if it commits, to every worker that LISTENs, on any host. A notification that
  arrives while a worker is busy waits on its connection for the next wait.
- **SQLite** (portal and workers on one host): the portal touches ``<database file>-wake`` after
  it commits; a waiting worker looks at that file's modification time every 20 ms (one
  ``stat``, no database access). A change made while the worker was busy is seen at its next
  wait. An in-memory database has no file: its worker waits the interval.

The portal's sessions send the signal (:func:`wake_on_intent`, installed on the web app's
session factory); a worker's :class:`Waker` waits for it.
"""

from __future__ import annotations

import contextlib
import logging
import os
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
#: How often a waiting worker on SQLite looks at the wake file.
POLL_SECONDS = 0.02
#: States a web request records for the worker to act on (a start is stopped -> provisioning).
INTENTS = frozenset({State.REQUESTED.value, State.DELETING.value, State.STOPPING.value,
                     State.PROVISIONING.value})
_WAKE = "daaas_wake_worker"


def wake_path(engine: Engine) -> str | None:
    """Return the SQLite wake file of ``engine``'s database, or None (PostgreSQL, or an
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


def _asks_the_worker(obj: object) -> bool:
    if getattr(obj, "__tablename__", None) != "machines" or getattr(obj, "state", None) \
            not in INTENTS:
        return False
    state = inspect(obj)
    return bool(state.pending or state.attrs.state.history.has_changes())


def _after_flush(session: Session, _context: Any) -> None:
    if _WAKE in session.info or not any(
            _asks_the_worker(obj) for obj in chain(session.new, session.dirty)):
        return
    connection = session.connection()
    if connection.dialect.name == "postgresql":
        connection.exec_driver_sql(f"NOTIFY {CHANNEL}")  # delivered on commit only
        session.info[_WAKE] = None
    else:
        session.info[_WAKE] = wake_path(connection.engine)


def _after_commit(session: Session) -> None:
    path = session.info.pop(_WAKE, None)
    if path is None:
        return
    try:
        with open(path, "ab"):
            os.utime(path)
    except OSError as exc:  # the worker then waits its interval
        log.debug("worker not woken: %s", exc)


def _after_rollback(session: Session) -> None:
    session.info.pop(_WAKE, None)


class Waker:
    """What a worker waits on between cycles (see the module's docstring)."""

    def __init__(self, engine: Engine) -> None:
        """Wait for ``engine``'s database: NOTIFY on PostgreSQL, the wake file on SQLite."""
        self.engine = engine
        self.path = wake_path(engine)
        self._seen = self._mtime()
        self._listener: Any = None  # the psycopg connection that LISTENs (PostgreSQL)

    def wait(self, timeout: float, stop: threading.Event) -> bool:
        """Wait up to ``timeout`` seconds; return True as soon as the portal asks for a cycle
        (or ``stop`` is set), False when the time is up. Never raises."""
        deadline = time.monotonic() + timeout
        while not stop.is_set():
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            if self.engine.dialect.name == "postgresql":
                if self._notified(min(left, 0.5)):
                    return True
            elif self.path is not None:
                if self._mtime() != self._seen:
                    self._seen = self._mtime()
                    return True
                stop.wait(min(left, POLL_SECONDS))
            else:
                stop.wait(left)
        return True

    def _mtime(self) -> int | None:
        if self.path is None:
            return None
        try:
            return os.stat(self.path).st_mtime_ns
        except OSError:
            return None

    def _notified(self, timeout: float) -> bool:
        """Wait for a notification on the LISTEN connection (opened on first use, opened
        again after an error); True if one came. A broken connection waits ``timeout``."""
        try:
            if self._listener is None:
                raw = self.engine.raw_connection()
                raw.driver_connection.autocommit = True  # type: ignore[union-attr]
                raw.driver_connection.execute(f"LISTEN {CHANNEL}")  # type: ignore[union-attr]
                self._listener = raw
            connection = self._listener.driver_connection
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
        """Close the LISTEN connection, if any. Raises nothing."""
        if self._listener is not None:
            with contextlib.suppress(Exception):  # already broken
                self._listener.invalidate()
            self._listener = None
