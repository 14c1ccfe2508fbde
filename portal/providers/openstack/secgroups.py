"""Per-machine Neutron security groups letting the VM's VNC port in from the desktop proxy only.

Every machine of a provider with proxy addresses configured (``openstack_vnc_proxy_cidr``) gets
its own group ``daaas-vnc-<machine id>``, described ``daaas <server tag>: VNC from the desktop
proxy`` (the same description on every group of one portal, so a sweep finds them all with one
list call), with one ingress rule per proxy address: TCP to the VM's VNC port from that prefix.
Neutron adds its default egress rules to a new group. The group is made before the server,
attached at create, and deleted once the server is gone.

Lists filter by name and description at Neutron and again here (a cloud ignoring a filter
returns more, never a wrong group). Every function raises openstacksdk exceptions for the
caller to translate (:func:`daaas.portal.providers.openstack.cloud.translated`).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Iterator
from contextlib import suppress
from typing import Any

from keystoneauth1 import exceptions as ksa_exc
from openstack import exceptions as os_exc

GROUP_PREFIX = "daaas-vnc-"
NONE = "none"


def parse_cidrs(value: str, network: str) -> list[str]:
    """Return the normalised prefixes of ``openstack_vnc_proxy_cidr`` (comma-separated).

    ``none``, or any value with ``network`` "none" (servers without a network interface have
    nothing to protect), gives no prefixes: the portal then makes no VNC groups. A bare
    address is one host (``/32``, ``/128``). Raises ValueError when the value is empty on a
    networked cloud or a prefix does not parse.
    """
    text = value.strip()
    if network == "none" or text.lower() == NONE:
        return []
    if not text:
        raise ValueError("openstack_vnc_proxy_cidr must be the address the desktop proxy reaches "
                         "the VMs from, as the cloud sees it (e.g. 192.0.2.10/32), or none")
    return [str(ipaddress.ip_network(part.strip(), strict=False))
            for part in text.split(",") if part.strip()]


def group_name(machine_id: str) -> str:
    """Return the name of the machine's VNC security group."""
    return f"{GROUP_PREFIX}{machine_id}"


def description(server_tag: str) -> str:
    """Return the description every VNC group of the portal with ``server_tag`` carries."""
    return f"daaas {server_tag}: VNC from the desktop proxy"


def find(network: Any, server_tag: str, machine_id: str) -> list[Any]:
    """Return the machine's VNC groups (normally one or none): one list call."""
    name, text = group_name(machine_id), description(server_tag)
    return [g for g in network.security_groups(name=name, description=text)
            if g.name == name and g.description == text]


def portal_groups(network: Any, server_tag: str) -> Iterator[tuple[str, Any]]:
    """Yield (machine id, group) for every VNC group of the portal: one list call."""
    text = description(server_tag)
    for group in network.security_groups(description=text):
        name = str(group.name or "")
        if group.description == text and name.startswith(GROUP_PREFIX):
            yield name.removeprefix(GROUP_PREFIX), group


def ensure(network: Any, server_tag: str, machine_id: str, cidrs: Iterable[str],
           port: int) -> Any:
    """Return the machine's VNC group, made (with its rules) unless it exists.

    An existing group (a launch retried after a crash) gets any rule it lacks. A group this
    call made is deleted again when adding a rule fails. Raises openstacksdk exceptions.
    """
    found = find(network, server_tag, machine_id)
    group = found[0] if found else network.create_security_group(
        name=group_name(machine_id), description=description(server_tag))
    try:
        present = {rule.get("remote_ip_prefix") for rule in group.security_group_rules or []
                   if _is_vnc_rule(rule, port)}
        for cidr in cidrs:
            if cidr in present:
                continue
            version = ipaddress.ip_network(cidr).version
            network.create_security_group_rule(
                security_group_id=group.id, direction="ingress", protocol="tcp",
                ethertype=f"IPv{version}", port_range_min=port, port_range_max=port,
                remote_ip_prefix=cidr, description="VNC from the desktop proxy")
    except (os_exc.SDKException, ksa_exc.ClientException):
        if not found:
            discard(network, group)
        raise
    return group


def delete(network: Any, server_tag: str, machine_id: str) -> None:
    """Delete the machine's VNC groups; none is success. Raises openstacksdk exceptions
    (ConflictException while a port still uses a group)."""
    for group in find(network, server_tag, machine_id):
        network.delete_security_group(group, ignore_missing=True)


def discard(network: Any, group: Any) -> None:
    """Delete ``group`` on a failure path, never raising (a leftover is swept later)."""
    with suppress(os_exc.SDKException, ksa_exc.ClientException):
        network.delete_security_group(group, ignore_missing=True)


def _is_vnc_rule(rule: dict[str, Any], port: int) -> bool:
    return (rule.get("direction") == "ingress" and rule.get("protocol") == "tcp"
            and rule.get("port_range_min") == port and rule.get("port_range_max") == port)
