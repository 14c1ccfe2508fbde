"""Process helpers shared by the local and QEMU providers: start, recognise and stop the
processes this host runs for machines, and find free ports for them.

A machine's processes are recognised two ways, so a restarted portal cannot mistake a reused
pid for its own: by (pid, start time) recorded in the machine's state file, and (local
sessions) by marker variables in their environment (``DAAAS_MACHINE_ID`` and
``DAAAS_SESSIONS_DIR``), which every child inherits.
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

PROC = Path("/proc")


@dataclass(frozen=True)
class ProcRef:
    """A process identified by pid and kernel start time (immune to pid reuse)."""

    pid: int
    start: int


def _stat_fields(pid: int) -> list[str] | None:
    try:
        text = (PROC / str(pid) / "stat").read_text()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    return text[text.rindex(")") + 2:].split()  # fields after "pid (comm) "


def proc_ref(pid: int) -> ProcRef:
    """Return the ProcRef of a running pid. Raises ProcessLookupError if it has gone."""
    fields = _stat_fields(pid)
    if fields is None:
        raise ProcessLookupError(pid)
    return ProcRef(pid, int(fields[19]))


def is_alive(ref: ProcRef) -> bool:
    """Return True if the very process ``ref`` names still runs (zombies count as dead)."""
    fields = _stat_fields(ref.pid)
    return fields is not None and fields[0] not in ("Z", "X") and int(fields[19]) == ref.start


def _environs() -> Iterator[tuple[int, set[bytes]]]:
    for entry in PROC.iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            yield int(entry.name), set((entry / "environ").read_bytes().split(b"\0"))
        except OSError:
            continue


def _entries(marker: Mapping[str, str]) -> set[bytes]:
    return {f"{key}={value}".encode() for key, value in marker.items()}


def marked_pids(marker: Mapping[str, str]) -> set[int]:
    """Return the live pids whose environment holds every ``marker`` entry (none if empty)."""
    wanted = _entries(marker)
    if not wanted:
        return set()
    return {pid for pid, environ in _environs() if wanted <= environ}


def marked_values(marker: Mapping[str, str], key: str) -> set[str]:
    """Return the values of variable ``key`` in every live process that carries ``marker``."""
    wanted, prefix = _entries(marker), f"{key}=".encode()
    if not wanted:
        return set()
    return {entry[len(prefix):].decode(errors="replace")
            for _, environ in _environs() if wanted <= environ
            for entry in environ if entry.startswith(prefix)}


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


def port_listening(port: int) -> bool:
    """Return True if some socket listens on TCP ``port`` (read from /proc/net/tcp{,6})."""
    wanted = f":{port:04X}"
    for table in ("tcp", "tcp6"):
        with contextlib.suppress(OSError):
            for line in (PROC / "net" / table).read_text().splitlines()[1:]:
                fields = line.split()
                if fields[1].endswith(wanted) and fields[3] == "0A":  # 0A: LISTEN
                    return True
    return False


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
