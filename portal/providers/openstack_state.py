"""Nova server status → ProviderStatus, and the tags/metadata that mark the portal's servers."""

from __future__ import annotations

from typing import Any

from daaas.portal.providers.base import ProviderState, ProviderStatus
from daaas.portal.providers.openstack_errors import fault_message

MACHINE_KEY = "daaas_machine_id"
OWNER_KEY = "daaas_owner"
GPU_KEY = "daaas_gpu"
MACHINE_TAG_PREFIX = "daaas-machine-"

BUILDING = {"BUILD", "REBUILD"}
RUNNING = {"ACTIVE", "REBOOT", "HARD_REBOOT", "PASSWORD", "MIGRATING", "RESIZE",
           "VERIFY_RESIZE", "REVERT_RESIZE"}
#: Stopped with the disk kept: the portal's Stop shelves (Nova offloads: host CPU/RAM/GPU freed)
STOPPED = {"SHUTOFF", "SHELVED", "SHELVED_OFFLOADED"}
#: Held in a state the portal does not drive (an administrator's doing): reported as errors
HALTED = {"SUSPENDED", "PAUSED", "RESCUE"}
#: Task states of a stopped server on its way back up (unshelve, start)
WAKING = {"unshelving", "spawning", "powering-on", "scheduling", "block_device_mapping",
          "networking"}
GONE = {"DELETED", "SOFT_DELETED"}


def machine_tag(machine_id: str) -> str:
    """Return the Nova tag naming one machine (tags are at most 60 characters)."""
    return f"{MACHINE_TAG_PREFIX}{machine_id}"[:60]


def machine_id_of(server: Any) -> str | None:
    """Return the portal machine id a server carries in its metadata, or None."""
    metadata = getattr(server, "metadata", None) or {}
    value = metadata.get(MACHINE_KEY)
    return str(value) if value else None


def status_of(server: Any) -> ProviderStatus:
    """Return the ProviderStatus for a Nova server (ACTIVE is RUNNING: cloud-init decides READY).

    SHELVED, SHELVED_OFFLOADED and SHUTOFF are STOPPED (RUNNING while Nova still offloads it,
    BUILDING while Nova brings it back).
    """
    status = str(server.status or "UNKNOWN").upper()
    if status in STOPPED:
        task = str(getattr(server, "task_state", None) or "")
        if task in WAKING:
            return ProviderStatus(ProviderState.BUILDING)
        if task.startswith("shelving"):  # still offloading: the host's GPU is not free yet
            return ProviderStatus(ProviderState.RUNNING)
        return ProviderStatus(ProviderState.STOPPED, f"the cloud reports it {status.lower()}",
                              f"server {server.id} is {status}")
    if status in BUILDING:
        return ProviderStatus(ProviderState.BUILDING)
    if status in RUNNING:
        return ProviderStatus(ProviderState.RUNNING)
    if status in GONE:
        return ProviderStatus(ProviderState.GONE)
    if status == "ERROR":
        gpu = (getattr(server, "metadata", None) or {}).get(GPU_KEY) == "1"
        reason, log = fault_message(getattr(server, "fault", None), gpu)
        return ProviderStatus(ProviderState.ERROR, reason, f"server {server.id}: {log}")
    if status in HALTED:
        return ProviderStatus(
            ProviderState.ERROR,
            f"The machine was stopped at the cloud ({status.lower()}); delete it and launch "
            "a new one, or ask the cloud administrators to start it again.",
            f"server {server.id} is {status}")
    return ProviderStatus(ProviderState.ERROR, "The cloud reports this machine in an unknown "
                          "state; try again later or delete it.",
                          f"server {server.id} has status {status}")
