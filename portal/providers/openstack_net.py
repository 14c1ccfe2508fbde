"""Which address of a Nova server the access proxies connect to, per the site's access mode.

- direct: the server's access IPv4 if set, else its first fixed IPv4 (the proxies share the
  VMs' network);
- proxy: the fixed IPv4 on the configured network (the proxy host sits on that network and is
  the only thing reaching the VM: its security group lets VNC in only from there);
- floating: the server's floating IPv4, allocated from ``floating_network`` on first use and
  marked with the machine id in its description so ``delete`` releases it.
"""

from __future__ import annotations

from typing import Any

from daaas.portal.providers.errors import ProviderError
from daaas.portal.providers.openstack_state import machine_id_of


def address_for(conn: Any, server: Any, mode: str, network: str, floating_network: str) -> str:
    """Return the IPv4 address to reach ``server`` by. Raises ProviderError if it has none yet."""
    fixed = _addresses(server, "fixed", network if mode == "proxy" else "")
    if mode == "direct" and getattr(server, "access_ipv4", None):
        return str(server.access_ipv4)
    if mode == "floating":
        floating = _addresses(server, "floating", "")
        if floating:
            return floating[0]
        if fixed and floating_network:
            return _allocate_floating(conn, server, floating_network)
    elif fixed:
        return fixed[0]
    raise ProviderError("The machine has no network address yet; try again in a minute.",
                        f"openstack: server {server.id} has no {mode} IPv4 address "
                        f"(addresses: {server.addresses})")


def _addresses(server: Any, kind: str, network: str) -> list[str]:
    found = []
    for net_name, entries in (server.addresses or {}).items():
        if network and net_name != network:
            continue
        for entry in entries:
            if entry.get("version") == 4 and entry.get("OS-EXT-IPS:type", "fixed") == kind:
                found.append(str(entry["addr"]))
    return found


def _allocate_floating(conn: Any, server: Any, floating_network: str) -> str:
    net = conn.network.find_network(floating_network, ignore_missing=False)
    port = next(iter(conn.network.ports(device_id=server.id)), None)
    if port is None:
        raise ProviderError("The machine has no network port yet; try again in a minute.",
                            f"openstack: server {server.id} has no port for a floating IP")
    ip = conn.network.create_ip(floating_network_id=net.id, port_id=port.id,
                                description=f"daaas machine {machine_id_of(server)}")
    return str(ip.floating_ip_address)
