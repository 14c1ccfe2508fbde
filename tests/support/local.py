"""Local-provider test helpers: a launch spec, a scan of a session's processes, waits."""

from __future__ import annotations

import os
import shutil
import socket
import time
from pathlib import Path

from daaas.portal.providers import (
    LaunchSpec,
    ProviderState,
)
from daaas.portal.providers.local import LocalProvider
from tests.support.environments import make_environment

PASSWORD = "Pw4-vnc!"


APPS = [{"name": "coot", "command": "/cvmfs/ccp4.example.org/bin/coot",
         "icon": "coot", "category": "Science", "terminal": False},
        {"name": "ccp4-shell", "command": "/cvmfs/ccp4.example.org/bin/ccp4.sh",
         "icon": "utilities-terminal", "category": "Science", "terminal": True}]


DESKTOP = "pcmanfm" if shutil.which("pcmanfm") or os.environ.get("CI") else "none"


def spec(machine_id: str, geometry: str = "1024x768") -> LaunchSpec:
    environment = make_environment(name="ccp4", title="CCP4 desktop", applications=APPS,
                                   gpu="none", protocols=["novnc"])
    return LaunchSpec(machine_id, "alice", 20000, 20000, environment, PASSWORD, geometry)


def session_processes(sessions_dir: Path, machine_id: str | None = None) -> dict[int, str]:
    """{pid: command name} of live processes marked for this sessions folder (independent scan)."""
    wanted = {f"DAAAS_SESSIONS_DIR={sessions_dir}".encode()}
    if machine_id is not None:
        wanted.add(f"DAAAS_MACHINE_ID={machine_id}".encode())
    found = {}
    for entry in Path("/proc").iterdir():
        try:
            environ = set((entry / "environ").read_bytes().split(b"\0"))
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
            name = (entry / "comm").read_text().strip()
        except (OSError, IndexError):
            continue
        if wanted <= environ and state != "Z":
            found[int(entry.name)] = name
    return found


def wait_state(provider: LocalProvider, machine_id: str, state: ProviderState,
               timeout: float = 20.0) -> float:
    """Poll until ``machine_id`` is in ``state``; return the seconds it took."""
    started = time.monotonic()
    while (status := provider.poll([machine_id])[machine_id]).state is not state:
        assert status.state is not ProviderState.ERROR, status
        assert time.monotonic() - started < timeout, f"still {status} after {timeout}s"
        time.sleep(0.05)
    return time.monotonic() - started


def port_open(port: int) -> bool:
    with socket.socket() as probe:
        probe.settimeout(1)
        return probe.connect_ex(("127.0.0.1", port)) == 0
