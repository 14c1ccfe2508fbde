"""A worker starts listening for wake-ups before its first cycle, so that a launch or a VM's
report committed during that cycle wakes its first wait instead of waiting a whole interval
(`Waker.listen`, called by the reconciler's loop). On SQLite the signal is one byte written to a
named pipe only when a reader has it open; on PostgreSQL a NOTIFY reaches only connections that
already LISTEN."""

from __future__ import annotations

import threading
import time

from daaas.portal.db import make_engine, make_session_factory
from daaas.portal.machines.wakeup import Waker, ask_the_worker, wake_on_intent


def send_wake_up(url: str) -> None:
    """Commit a transaction that asks the worker for a cycle, as the portal's sessions do."""
    engine = make_engine(url)
    factory = make_session_factory(engine)
    wake_on_intent(factory)
    with factory() as session:
        ask_the_worker(session)
        session.commit()
    engine.dispose()


def waited(waker: Waker, seconds: float) -> tuple[bool, float]:
    """Return what ``waker.wait`` answered and how long it took."""
    start = time.monotonic()
    woken = waker.wait(seconds, threading.Event())
    return woken, time.monotonic() - start


def test_a_wake_up_sent_after_listen_and_before_the_wait_is_kept(database_url: str) -> None:
    engine = make_engine(database_url)
    waker = Waker(engine)
    try:
        waker.listen()
        send_wake_up(database_url)  # while the worker would be in its first cycle
        woken, took = waited(waker, 5)
        assert woken and took < 1, (woken, took)
    finally:
        waker.close()
        engine.dispose()


def test_without_listening_first_the_same_wake_up_is_lost(database_url: str) -> None:
    engine = make_engine(database_url)
    waker = Waker(engine)
    try:
        if engine.dialect.name == "sqlite":  # the pipe exists (an earlier worker made it)
            waker.listen()
            waker.close()
        send_wake_up(database_url)  # nobody listens: nothing keeps it
        woken, took = waited(waker, 1.5)
        assert not woken and took >= 1.4, (woken, took)
    finally:
        waker.close()
        engine.dispose()
