"""Free GPU units from Placement, and whether a flavor asks for a GPU.

free = (total - reserved) * allocation_ratio - used, summed over the resource providers that
have the GPU resource class (VGPU by default; a PCI passthrough cloud may use a custom class).
Reading Placement needs an admin-ish role on most clouds; without it the caller falls back to
the configured static figure.
"""

from __future__ import annotations

import math
from typing import Any

from openstack import exceptions as os_exc

GPU_EXTRA_SPECS = ("pci_passthrough:alias",)


def flavor_wants_gpu(extra_specs: dict[str, Any] | None, resource_class: str) -> bool:
    """Return True if the flavor's extra specs ask for a GPU (vGPU resource or PCI alias)."""
    specs = extra_specs or {}
    if any(key in specs for key in GPU_EXTRA_SPECS):
        return True
    wanted = specs.get(f"resources:{resource_class}")
    return bool(wanted) and str(wanted) != "0"


def free_units(conn: Any, resource_class: str) -> int | None:
    """Return the free units of ``resource_class`` over all providers, or None if unreadable.

    None means Placement refused (403) or has no endpoint for this credential; other errors
    propagate as openstacksdk exceptions for the caller to translate.
    """
    placement = conn.placement
    try:
        providers = placement.get("/resource_providers",
                                  params={"resources": f"{resource_class}:1"},
                                  microversion="1.4")
    except os_exc.EndpointNotFound:
        return None
    if providers.status_code in (401, 403):
        return None
    os_exc.raise_from_response(providers)
    free = 0
    for rp in providers.json()["resource_providers"]:
        free += _free_on(placement, rp["uuid"], resource_class)
    return free


def _free_on(placement: Any, uuid: str, resource_class: str) -> int:
    inventory = placement.get(f"/resource_providers/{uuid}/inventories/{resource_class}")
    if inventory.status_code == 404:
        return 0
    os_exc.raise_from_response(inventory)
    usages = placement.get(f"/resource_providers/{uuid}/usages")
    os_exc.raise_from_response(usages)
    inv = inventory.json()
    used = int(usages.json()["usages"].get(resource_class, 0))
    total = (int(inv["total"]) - int(inv.get("reserved", 0))) * float(
        inv.get("allocation_ratio", 1.0))
    return max(0, math.floor(total) - used)
