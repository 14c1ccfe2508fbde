"""Which ways in a machine page offers, from the environment's ``protocols`` and the provider.

``novnc`` gives the browser desktop, ``rdp`` the RDP sign-in and .rdp download, ``ssh`` the ssh
command (through the facility's jump host, setting ``ssh_bastion``, when there is one). A way
the environment offers but the provider cannot give is shown with the reason.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass

from daaas.portal.access.rdp import PROTOCOL_NAMES, PROVIDER_PHRASES, rdp_unavailable_reason
from daaas.portal.config import Settings
from daaas.portal.machines.address import NOT_OBSERVED, recorded_target
from daaas.portal.machines.models import Machine
from daaas.portal.machines.states import State
from daaas.portal.providers import ConnectionTarget

SSH_PORT = 22


@dataclass(frozen=True)
class AccessOffer:
    """What a machine page shows: the buttons, the ssh command, and why a way is missing."""

    desktop: bool
    rdp: bool
    rdp_reason: str | None
    ssh_command: str | None
    ssh_reason: str | None


def ssh_command(username: str, host: str, port: int = SSH_PORT, bastion: str = "") -> str:
    """Return the ssh command line for ``username`` at ``host`` (``-J`` through ``bastion``).

    Raises nothing.
    """
    words = ["ssh"] + (["-J", bastion] if bastion else []) + \
        (["-p", str(port)] if port != SSH_PORT else []) + [f"{username}@{host}"]
    return shlex.join(words)


def ssh_unavailable_reason(machine: Machine, target: ConnectionTarget | None) -> str | None:
    """Return why SSH is not offered for ``machine``, or None when it is. Raises nothing."""
    title = machine.environment.title
    if "ssh" not in machine.environment.protocols:
        offered = " and ".join(PROTOCOL_NAMES.get(p, p) for p in machine.environment.protocols)
        return f"SSH is not offered for {title}: this environment offers only " \
               f"{offered or 'no remote access'}."
    if target is not None and target.ssh_port is None:
        provider = PROVIDER_PHRASES.get(machine.provider, f"the {machine.provider} provider")
        return f"SSH is not offered for {title}: {provider} runs no SSH server for it."
    return None


def access_offer(settings: Settings, machine: Machine) -> AccessOffer:
    """Return the ways into ``machine`` its page offers now, from the address the worker
    recorded when it saw the machine ready (:mod:`daaas.portal.machines.address`): the page
    asks no provider. A ready machine without one yet offers no RDP or SSH, saying why.
    Raises nothing."""
    protocols = machine.environment.protocols
    ready = machine.state == State.READY.value
    target = recorded_target(machine) if ready else None
    rdp_reason = rdp_unavailable_reason(machine, target)
    ssh_reason = ssh_unavailable_reason(machine, target)
    if ready and target is None:
        rdp_reason = rdp_reason or NOT_OBSERVED
        ssh_reason = ssh_reason or NOT_OBSERVED
    command = None
    if target is not None and target.ssh_port is not None and ssh_reason is None:
        command = ssh_command(machine.user.username, target.host, target.ssh_port,
                              settings.ssh_bastion)
    return AccessOffer(desktop="novnc" in protocols, rdp=target is not None and not rdp_reason,
                       rdp_reason=rdp_reason, ssh_command=command, ssh_reason=ssh_reason)
