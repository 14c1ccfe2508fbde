"""Compute providers: where machines run. The setting ``provider`` picks one from PROVIDERS.

- ``base``: the Provider interface and the values it speaks (LaunchSpec, ProviderStatus, …);
- ``errors``: the typed errors every provider raises;
- ``processes``: process helpers shared by the local and QEMU providers;
- ``local/``: real desktop sessions on this host (the embedded default);
- ``qemu/``: real QEMU virtual machines on this host, set up by cloud-init;
- ``openstack/``: Nova servers of an OpenStack cloud (production).

A provider is imported only when chosen, so ``import daaas.portal.providers`` loads neither
openstacksdk nor python-xlib. Test doubles are registered by the tests, never here.
"""

from __future__ import annotations

from daaas.portal.backends import Registry
from daaas.portal.providers.base import (
    Capacity,
    ConnectionTarget,
    LaunchSpec,
    Provider,
    ProviderState,
    ProviderStatus,
    SessionMount,
)
from daaas.portal.providers.errors import (
    CapacityExhausted,
    LaunchFailed,
    MachineGone,
    MissingSystemPackages,
    ProviderError,
    ProviderUnavailable,
    StopNotSupported,
)

#: The compute providers by the name the ``provider`` setting uses; builds the chosen one with
#: its class's ``from_settings``.
PROVIDERS: Registry[Provider] = Registry("compute provider", "provider", Provider, {
    "local": "daaas.portal.providers.local:LocalProvider",
    "openstack": "daaas.portal.providers.openstack:OpenStackProvider",
    "qemu": "daaas.portal.providers.qemu:QemuProvider",
})

__all__ = [
    "PROVIDERS",
    "Capacity",
    "CapacityExhausted",
    "ConnectionTarget",
    "LaunchFailed",
    "LaunchSpec",
    "MachineGone",
    "MissingSystemPackages",
    "Provider",
    "ProviderError",
    "ProviderState",
    "ProviderStatus",
    "ProviderUnavailable",
    "SessionMount",
    "StopNotSupported",
]
