"""RDP for native clients: a .rdp file pointing at the machine's xrdp, where RDP is offered.

Only the OpenStack provider gives a machine an RDP port; local desktops and QEMU machines serve
the browser desktop only. The file carries the address, the user name, the optional RD Gateway
and ``prompt for credentials:i:1``, so the client asks for a password: the user types the
one-time sign-in secret the machine page gives with the download (:mod:`.signin`), which the
VM's PAM module checks. No password the user knows is the VM's.

On request the file also carries that one-time secret, for the clients that read a password
from a file: FreeRDP (``xfreerdp``, ``sdl-freerdp``, ``wlfreerdp``) takes a line starting with
``/`` as one of its command-line options, so ``/p:<secret>`` is its password. The .rdp format
has no portable password field: Windows' ``password 51:b:`` is a DPAPI blob only the Windows
account that made it can decrypt, so Remote Desktop Connection, Microsoft's other clients and
Remmina ignore the line and prompt as before.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass

from sqlalchemy.orm import Session

from daaas.portal.access.service import not_ready_message
from daaas.portal.audit.service import record
from daaas.portal.auth.models import User
from daaas.portal.config import Settings
from daaas.portal.errors import Conflict
from daaas.portal.machines.address import NOT_OBSERVED, recorded_target
from daaas.portal.machines.models import Machine
from daaas.portal.machines.service import get_machine
from daaas.portal.providers.base import ConnectionTarget

PROVIDER_PHRASES = {"local": "the local desktop provider"}
PROTOCOL_NAMES = {"novnc": "the browser desktop", "rdp": "RDP", "ssh": "SSH"}


@dataclass(frozen=True)
class RdpDownload:
    """A .rdp file ready to send: its file name and its text (CRLF lines)."""

    filename: str
    content: str

    @property
    def data_url(self) -> str:
        """Return the file as a ``data:`` URL, for a page's download link that must not ask
        the portal again (a file holding a one-time secret). Raises nothing."""
        return "data:application/x-rdp;base64," + base64.b64encode(self.content.encode()).decode()


def rdp_file(host: str, port: int, username: str, gateway: str = "",
             password: str = "") -> str:
    """Return the text of a .rdp file for ``host:port`` and ``username`` (CRLF line ends).

    Without ``password`` the client prompts for one, and the user types the one-time sign-in
    secret (:mod:`daaas.portal.access.signin`); with it (that secret, never anything lasting)
    the file ends with FreeRDP's ``/p:<password>`` line, which other clients ignore. With
    ``gateway`` the client connects through that RD Gateway and asks for the gateway's
    password too (``gatewaycredentialssource:i:0``). Raises nothing.
    """
    address = f"[{host}]" if ":" in host else host
    lines = [f"full address:s:{address}:{port}", f"username:s:{username}",
             "prompt for credentials:i:1", "screen mode id:i:2", "session bpp:i:32",
             "dynamic resolution:i:1"]
    if gateway:
        lines += [f"gatewayhostname:s:{gateway}", "gatewayusagemethod:i:1",
                  "gatewaycredentialssource:i:0", "gatewayprofileusagemethod:i:1"]
    if password:
        lines.append(f"/p:{password}")
    return "\r\n".join(lines) + "\r\n"


def rdp_unavailable_reason(machine: Machine, target: ConnectionTarget | None) -> str | None:
    """Return why RDP is not offered for ``machine``, or None when it is.

    Checks the environment's ``protocols`` and, when ``target`` is given, whether the provider
    gives the machine an RDP port. Raises nothing.
    """
    title = machine.environment.title
    protocols = machine.environment.protocols
    if "rdp" not in protocols:
        offered = " and ".join(PROTOCOL_NAMES.get(p, p) for p in protocols) or "no remote access"
        return f"RDP is not offered for {title}: this environment offers only {offered}."
    if target is not None and target.rdp_port is None:
        provider = PROVIDER_PHRASES.get(machine.provider, f"the {machine.provider} provider")
        return f"RDP is not offered for {title}: {provider} serves the browser desktop only."
    return None


def rdp_download(db: Session, settings: Settings, user: User, machine_id: str,
                 password: str = "") -> RdpDownload:
    """Return the .rdp file for the user's ready machine (address and user name; ``password``,
    a one-time sign-in secret just issued, only when given: see :func:`rdp_file`), from the
    address the worker recorded when it saw the machine ready: no provider is asked.

    Raises NotFound (not the user's machine) or Conflict (not ready, its address not recorded
    yet, or RDP not offered, saying why).
    """
    machine = get_machine(db, user, machine_id)
    reason = rdp_unavailable_reason(machine, None) or not_ready_message(machine)
    if reason:
        raise _refusal(machine, reason)
    target = recorded_target(machine)
    if target is None:
        raise _refusal(machine, NOT_OBSERVED)
    if target.rdp_port is None:
        raise _refusal(machine, rdp_unavailable_reason(machine, target))
    text = rdp_file(target.host, target.rdp_port, machine.user.username, settings.rdp_gateway,
                    password)
    record(db, "desktop.rdp_file", actor=user.username, target=f"machine {machine.id}",
           detail=f"{machine.name}, with its one-time password" if password else machine.name,
           admin=machine.user_id != user.id)
    return RdpDownload(f"{machine.environment_name}-{machine.id[:8]}.rdp", text)


def _refusal(machine: Machine, reason: str | None) -> Conflict:
    message = reason or "RDP is not offered for this machine."
    return Conflict(message, f"rdp file for {machine.id} refused: {message}")
