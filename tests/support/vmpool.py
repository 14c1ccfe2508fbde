"""A cloud double for warm pools on cloud machines (issue 20): its machines are files.

A real Provider subclass that uses cloud-init and keeps warm pools, as QEMU and OpenStack do:
each machine is ``<var_dir>/pool-cloud/<id>.json`` holding the user-data it was launched with
(as a cloud keeps a server's user-data), so a test reads what a VM would boot with, and a real
``daaas worker`` process killed mid-way leaves the cloud as it was for the next one. Machines
stay RUNNING: only their agent's report makes them ready. ``personalise`` records each
hand-over in ``<id>.handed`` (one user name a line) and sends nothing to the machine, as the
real providers do; the agent learns of its claim from the portal.

Named in settings as ``tests.support.vmpool:PoolCloud`` (or ``:PausedCloud``): a machine's
provider column holds 32 characters.
"""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Collection
from pathlib import Path
from typing import TYPE_CHECKING

from daaas.portal.providers.base import (
    Capacity,
    ConnectionTarget,
    LaunchSpec,
    Provider,
    ProviderState,
    ProviderStatus,
)
from daaas.portal.providers.errors import MachineGone

if TYPE_CHECKING:
    from daaas.portal.config import Settings


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
