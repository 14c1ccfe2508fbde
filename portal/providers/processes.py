"""Process helpers shared by the local and QEMU providers: start, recognise and stop the
processes this host runs for machines, and find free ports for them.

A machine's processes are recognised two ways, so a restarted portal cannot mistake a reused
pid for its own: by (pid, start time) recorded in the machine's state file, and (local
sessions) by marker variables in their environment (``DAAAS_MACHINE_ID`` and
``DAAAS_SESSIONS_DIR``), which every child inherits. What the kernel knows of a process (its
start time, state, environment, listening sockets) is read through psutil.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import psutil

GONE = (psutil.STATUS_ZOMBIE, psutil.STATUS_DEAD)


@dataclass(frozen=True)
class ProcRef:
    """A process identified by pid and start time (psutil's ``create_time``, seconds since the
    epoch), immune to pid reuse."""

    pid: int
    start: float


def proc_ref(pid: int) -> ProcRef:
    """Return the ProcRef of a running pid. Raises ProcessLookupError if it has gone."""
    try:
        return ProcRef(pid, psutil.Process(pid).create_time())
    except psutil.NoSuchProcess:
        raise ProcessLookupError(pid) from None


def is_alive(ref: ProcRef) -> bool:
    """Return True if the very process ``ref`` names still runs (zombies count as dead)."""
    try:
        process = psutil.Process(ref.pid)
        return process.create_time() == ref.start and process.status() not in GONE
    except psutil.Error:
        return False


def _marked(marker: Mapping[str, str]) -> Iterator[tuple[int, dict[str, str]]]:
    """Yield (pid, environment) of every other live process whose environment holds every
    ``marker`` entry; nothing for an empty marker. Processes we may not read are skipped."""
    if not marker:
        return
    own = os.getpid()
    for process in psutil.process_iter(["environ"]):
        environ = process.info["environ"]
        if process.pid != own and environ and all(
                environ.get(key) == value for key, value in marker.items()):
            yield process.pid, environ


def marked_pids(marker: Mapping[str, str]) -> set[int]:
    """Return the live pids whose environment holds every ``marker`` entry (none if empty)."""
    return {pid for pid, _ in _marked(marker)}


def marked_values(marker: Mapping[str, str], key: str) -> set[str]:
    """Return the values of variable ``key`` in every live process that carries ``marker``."""
    return {environ[key] for _, environ in _marked(marker) if key in environ}


def spawn(argv: list[str], env: Mapping[str, str], cwd: Path, log: Path,
          stdin: int | None = subprocess.DEVNULL) -> ProcRef:
    """Start ``argv`` in its own session and process group, output appended to ``log``.

    A daemon thread reaps the child so it never lingers as a zombie. Returns its ProcRef.
    Raises OSError if the program cannot be executed.
    """
    with open(log, "ab") as out:
        child = subprocess.Popen(argv, env=dict(env), cwd=cwd, stdin=stdin, stdout=out,
                                 stderr=subprocess.STDOUT, start_new_session=True)
    ref = proc_ref(child.pid)  # before reaping: even a child that exited at once has an entry
    threading.Thread(target=child.wait, daemon=True, name=f"reap-{child.pid}").start()
    return ref


def wait_for(check: Callable[[], bool], timeout: float, interval: float = 0.02) -> bool:
    """Call ``check`` until it is true or ``timeout`` seconds pass; return its last value."""
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() >= deadline:
            return False
        time.sleep(interval)
    return True


def port_free(port: int, host: str = "127.0.0.1") -> bool:
    """Return True if nothing listens on ``host:port`` (TIME_WAIT leftovers do not count)."""
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError:
            return False
    return True


def free_port(host: str = "127.0.0.1") -> int:
    """Return a TCP port on ``host`` that the kernel says is free right now. Raises OSError."""
    with socket.socket() as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


def listens(ref: ProcRef, port: int) -> bool:
    """Return True if the process ``ref`` has a TCP socket listening on ``port``."""
    try:
        sockets = psutil.Process(ref.pid).net_connections(kind="tcp")
    except psutil.Error:
        return False
    return any(sock.status == psutil.CONN_LISTEN and sock.laddr and sock.laddr.port == port
               for sock in sockets)


def _signal(pids: Iterable[int], sig: signal.Signals) -> None:
    own_group = os.getpgrp()
    for pid in pids:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            group = os.getpgid(pid)
            if group != own_group:
                os.killpg(group, sig)
            os.kill(pid, sig)


def stop(refs: Iterable[ProcRef], marker: Mapping[str, str], grace: float = 3.0) -> set[int]:
    """Stop the processes in ``refs`` and every marked process, with their process groups.

    SIGTERM first, SIGKILL after ``grace`` seconds. Returns the pids still alive afterwards
    (empty on success); never raises for processes that are already gone.
    """
    refs = [ref for ref in refs if is_alive(ref)]

    def remaining() -> set[int]:
        return {ref.pid for ref in refs if is_alive(ref)} | marked_pids(marker)

    for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 2.0)):
        targets = remaining()
        if not targets:
            return set()
        _signal(targets, sig)
        wait_for(lambda: not remaining(), wait, interval=0.05)
    return remaining()
