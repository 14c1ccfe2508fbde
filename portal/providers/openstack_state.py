"""Nova server status → ProviderStatus, and the tags/metadata that mark the portal's servers."""

from __future__ import annotations

from typing import Any

from portal.providers.base import ProviderState, ProviderStatus
from portal.providers.openstack_errors import fault_message

MACHINE_KEY = "daaas_machine_id"
OWNER_KEY = "daaas_owner"
GPU_KEY = "daaas_gpu"
MACHINE_TAG_PREFIX = "daaas-machine-"

BUILDING = {"BUILD", "REBUILD"}
RUNNING = {"ACTIVE", "REBOOT", "HARD_REBOOT", "PASSWORD", "MIGRATING", "RESIZE",
           "VERIFY_RESIZE", "REVERT_RESIZE"}
STOPPED = {"SHUTOFF", "SUSPENDED", "PAUSED", "SHELVED", "SHELVED_OFFLOADED", "RESCUE"}
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
    """Return the ProviderStatus for a Nova server (ACTIVE is RUNNING: cloud-init decides READY)."""
    status = str(server.status or "UNKNOWN").upper()
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
    if status in STOPPED:
        return ProviderStatus(
            ProviderState.ERROR,
            f"The machine was stopped at the cloud ({status.lower()}); delete it and launch "
            "a new one, or ask the cloud administrators to start it again.",
            f"server {server.id} is {status}")
    return ProviderStatus(ProviderState.ERROR, "The cloud reports this machine in an unknown "
                          "state; try again later or delete it.",
                          f"server {server.id} has status {status}")
