"""A ready machine's address as the worker last observed it (issue 19: no cloud call per page).

The reconciler asks the provider for a machine's :class:`ConnectionTarget` once, when it sees
the machine ready without one, and records it on the machine (``Machine.address``); it is
cleared when the poll sees the machine leave ready (a started machine may come back elsewhere).
The machine page (SSH command, RDP offer) and the .rdp download read it from here.
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from daaas.portal.machines.models import Machine
from daaas.portal.providers import ConnectionTarget

#: Why a ready machine's RDP or SSH is not offered yet: the worker has not recorded where it is.
NOT_OBSERVED = ("The machine's network address is not known yet (the portal records it "
                "shortly after the machine is ready); try again in a minute.")


def address_json(target: ConnectionTarget) -> dict[str, Any]:
    """Return ``target`` as the JSON stored in ``Machine.address``. Raises nothing."""
    return asdict(target)


def recorded_target(machine: Machine) -> ConnectionTarget | None:
    """Return where the worker last observed ``machine`` reachable, or None when it has not
    recorded it (not ready yet, or just became ready). Raises nothing for a malformed value
    (None)."""
    stored = machine.address
    if not isinstance(stored, dict):
        return None
    try:
        return ConnectionTarget(**stored)
    except TypeError:
        return None
