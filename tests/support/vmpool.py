"""A cloud double for warm pools on cloud machines (issue 20): its machines are files.

A real Provider subclass that uses cloud-init and keeps warm pools, as QEMU and OpenStack do:
each machine is ``<var_dir>/pool-cloud/<id>.json`` holding the user-data it was launched with
(as a cloud keeps a server's user-data), so a test reads what a VM would boot with, and a real
``daaas worker`` process killed mid-way leaves the cloud as it was for the next one. Machines
stay RUNNING: only their agent's report makes them ready. ``personalise`` records each
hand-over in ``<id>.handed`` (one user name a line) and sends nothing to the machine, as the
real providers do; the agent learns of its claim from the portal.

:func:`boot` runs the real agent as a host process in a folder standing for the machine's file
system; :func:`serve_portal` serves the portal over HTTP for it.

Named in settings as ``tests.support.vmpool:PoolCloud`` (or ``:PausedCloud``): a machine's
provider column holds 32 characters.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Collection, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from flask import Flask
from werkzeug.serving import make_server

from daaas.contextualisation import AGENT_SOURCE
from daaas.portal import create_app
from daaas.portal.providers.base import (
    Capacity,
    ConnectionTarget,
    LaunchSpec,
    Provider,
    ProviderState,
    ProviderStatus,
)
from daaas.portal.providers.errors import MachineGone
from tests.integration.context_support import bootstrap_document, cloud_config

if TYPE_CHECKING:
    from daaas.portal.config import Settings

#: The commands a machine's agent runs that need root or change the host's accounts: scripts
#: recording their arguments in ``<log>/<command>.args``
STUBS = ("chpasswd", "systemctl", "mount", "useradd", "groupadd")


class PoolCloud(Provider):
    """Machines are files under ``folder``; at most ``max_machines`` at once."""

    name = "pool-cloud"
    uses_cloud_init = True

    def __init__(self, folder: Path, max_machines: int = 10) -> None:
        self.folder = folder
        self.folder.mkdir(parents=True, exist_ok=True)
        self.max_machines = max_machines

    @classmethod
    def from_settings(cls, settings: Settings) -> PoolCloud:
        """Return the double keeping its machines under ``<var_dir>/pool-cloud``."""
        return cls(settings.var_path / "pool-cloud")

    @property
    def supports_pools(self) -> bool:
        """True, as the cloud providers."""
        return True

    def record(self, machine_id: str) -> Path:
        return self.folder / f"{machine_id}.json"

    def user_data(self, machine_id: str) -> bytes:
        """Return the user-data the machine was launched with."""
        data = json.loads(self.record(machine_id).read_text())
        return base64.b64decode(data["user_data"])

    def handed(self, machine_id: str) -> list[str]:
        """Return the users the machine was handed to, in order (a repeat after a crash too)."""
        path = self.folder / f"{machine_id}.handed"
        return path.read_text().split() if path.exists() else []

    def launch(self, spec: LaunchSpec) -> None:
        """Keep the machine's user-data (once: a repeated launch changes nothing)."""
        if not self.record(spec.machine_id).exists():
            self.record(spec.machine_id).write_text(json.dumps({
                "user_data": base64.b64encode(spec.user_data or b"").decode(),
                "username": spec.username, "pooled": spec.pooled}))

    def personalise(self, spec: LaunchSpec) -> None:
        """Record the hand-over; MachineGone for a machine the cloud does not have."""
        if not self.record(spec.machine_id).exists():
            raise MachineGone("This machine no longer exists.", f"no {spec.machine_id}")
        with (self.folder / f"{spec.machine_id}.handed").open("a") as handed:
            handed.write(spec.username + "\n")

    def poll(self, machine_ids: Collection[str]) -> dict[str, ProviderStatus]:
        return {mid: ProviderStatus(ProviderState.RUNNING if self.record(mid).exists()
                                    else ProviderState.GONE) for mid in machine_ids}

    def delete(self, machine_id: str) -> None:
        self.record(machine_id).unlink(missing_ok=True)

    def list_machine_ids(self) -> set[str]:
        return {path.stem for path in self.folder.glob("*.json")}

    def capacity(self) -> Capacity:
        used = len(self.list_machine_ids())
        return Capacity(gpus_free=0, sessions_free=max(0, self.max_machines - used),
                        sessions_total=self.max_machines, gpus_total=0)

    def connection_target(self, machine_id: str) -> ConnectionTarget:
        if not self.record(machine_id).exists():
            raise MachineGone("This machine no longer exists.", f"no {machine_id}")
        return ConnectionTarget(host="127.0.0.1", vnc_port=5901)


class PausedCloud(PoolCloud):
    """Hands a claimed machine over, writes ``personalised-<id>`` beside its folder, then
    hangs (a worker killed between the hand-over and its record)."""

    def personalise(self, spec: LaunchSpec) -> None:
        """Hand over, leave a marker, and never return (until killed)."""
        super().personalise(spec)
        (self.folder.parent / f"personalised-{spec.machine_id}").touch()
        time.sleep(3600)


@dataclass
class Vm:
    """One pooled machine's agent running as a host process; its file system is ``root``."""

    root: Path
    log: Path
    process: subprocess.Popen[str] | None = None

    def recorded(self, command: str) -> str:
        path = self.log / f"{command}.args"
        return path.read_text() if path.exists() else ""

    def finish(self, timeout: float = 60) -> tuple[int, str]:
        assert self.process is not None
        _, stderr = self.process.communicate(timeout=timeout)
        return self.process.returncode, stderr


def boot(tmp_path: Path, name: str, user_data: bytes) -> Vm:
    """Write the files cloud-init would write from ``user_data`` under the machine's root,
    point bootstrap.json's paths at it, and start the real agent."""
    root, bin_, log = (tmp_path / name / part for part in ("root", "bin", "log"))
    for folder in (root, bin_, log):
        folder.mkdir(parents=True)
    for command in STUBS:
        script = bin_ / command
        script.write_text(f'#!/bin/sh\necho "$*" >> "{log}/{command}.args"\n')
        script.chmod(0o755)
    (bin_ / "getent").write_text(f'#!/bin/sh\necho "$*" >> "{log}/getent.args"\nexit 2\n')
    (bin_ / "getent").chmod(0o755)
    if not shutil.which("vncpasswd"):
        (bin_ / "vncpasswd").write_text("#!/bin/sh\nhead -c 8 | od -An -tx1\n")
        (bin_ / "vncpasswd").chmod(0o755)
    for entry in cloud_config(user_data)["write_files"]:
        path = root / entry["path"].lstrip("/")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(entry["content"])
    document = bootstrap_document(user_data)
    for repository in document["cvmfs_repositories"]:
        (root / "cvmfs" / repository).mkdir(parents=True)
    document.update(root=str(root), cvmfs_root=str(root / "cvmfs"),
                    retry={"initial_delay": 0.05, "max_delay": 0.2, "attempts": 4,
                           "timeout": 10})
    config = root / "etc" / "daaas" / "bootstrap.json"
    config.write_text(json.dumps(document))
    command = [str(AGENT_SOURCE)] if os.path.exists("/usr/bin/python3") \
        else [sys.executable, str(AGENT_SOURCE)]
    env = {**os.environ, "PATH": f"{bin_}:{os.environ.get('PATH', '/usr/bin:/bin')}"}
    vm = Vm(root, log)
    vm.process = subprocess.Popen([*command, "--config", str(config)], env=env, text=True,
                                  stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    return vm


@contextmanager
def serve_portal(override: dict[str, Any]) -> Iterator[Flask]:
    """Serve a portal made from ``override`` on 127.0.0.1 with a threading server, its
    ``public_url`` that server (where the agents call); yield the app."""
    holder: dict[str, Flask] = {}

    def application(environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        return holder["app"](environ, start_response)  # type: ignore[no-any-return]

    server = make_server("127.0.0.1", 0, application, threaded=True)
    holder["app"] = create_app({**override,
                                "public_url": f"http://127.0.0.1:{server.server_port}"})
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield holder["app"]
    finally:
        server.shutdown()
        thread.join(timeout=10)
        holder["app"].extensions["daaas"].engine.dispose()
