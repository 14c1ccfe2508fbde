"""Local-provider test helpers: a launch spec, a scan of a session's processes, waits."""

from __future__ import annotations

import json
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


def vnc_socket(provider: LocalProvider, machine_id: str) -> str:
    """The Unix socket on which the session's Xvnc serves VNC (its ConnectionTarget)."""
    path = provider.connection_target(machine_id).vnc_socket
    assert path, "a local desktop is reached through a Unix socket"
    return path


def socket_open(path: str) -> bool:
    """True if something accepts connections on the Unix socket ``path``."""
    with socket.socket(socket.AF_UNIX) as probe:
        probe.settimeout(1)
        return probe.connect_ex(path) == 0


def rfb_greeting(path: str) -> bytes:
    """The first 12 bytes a VNC server on the Unix socket ``path`` sends (its RFB version)."""
    with socket.socket(socket.AF_UNIX) as vnc:
        vnc.settimeout(5)
        vnc.connect(path)
        return vnc.recv(12)


def display_of(provider: LocalProvider, machine_id: str) -> int:
    """The X display number of a running session (from its state file)."""
    state = json.loads((provider.sessions_dir / machine_id / "state.json").read_text())
    return int(state["display"])


def xauthority_of(provider: LocalProvider, machine_id: str) -> Path:
    """The session's X cookie file (XAUTHORITY of its programs)."""
    return Path(vnc_socket(provider, machine_id)).parent / "Xauthority"
