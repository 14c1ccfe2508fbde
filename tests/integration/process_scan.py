"""Find the processes of a desktop session by the DAAAS_MACHINE_ID in their environment."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class SessionProcess:
    """One live process of a session."""

    pid: int
    name: str


def session_processes(machine_id: str) -> list[SessionProcess]:
    """Return the live processes whose environment carries DAAAS_MACHINE_ID=<machine_id>."""
    marker = f"DAAAS_MACHINE_ID={machine_id}".encode()
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            environ = (proc / "environ").read_bytes()
            name = (proc / "comm").read_text().strip()
            state = next(line for line in (proc / "status").read_text().splitlines()
                         if line.startswith("State:"))
        except (OSError, StopIteration):
            continue
        if marker in environ.split(b"\0") and " Z " not in state + " ":
            found.append(SessionProcess(int(proc.name), name))
    return found
