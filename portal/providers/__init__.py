"""Compute providers: where machines run. Pick one by name in configuration.

``make_provider("local", var_dir=...)`` is the embedded default (real desktops on this host);
the test doubles ("memory", "slow", "never-ready", "failing") drive the reconciler's tests.
"""

from __future__ import annotations

from typing import Any

from daaas.portal.providers.base import (
    Capacity,
    ConnectionTarget,
    LaunchSpec,
    Provider,
    ProviderState,
    ProviderStatus,
    SessionMount,
)
from daaas.portal.providers.doubles import (
    FailingProvider,
    InMemoryProvider,
    NeverReadyProvider,
    SlowProvider,
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
from daaas.portal.providers.local import LocalProvider
from daaas.portal.providers.openstack import OpenStackProvider
from daaas.portal.providers.qemu import QemuProvider

PROVIDERS: dict[str, type[Provider]] = {
    cls.name: cls
    for cls in (LocalProvider, OpenStackProvider, InMemoryProvider, SlowProvider,
                NeverReadyProvider, FailingProvider, QemuProvider)
}


def make_provider(name: str, **options: Any) -> Provider:
    """Return a new provider of the kind ``name`` built with ``options``.

    Raises ProviderUnavailable for an unknown name or options the provider does not take (the
    message lists the valid names, or repeats the provider's complaint).
    """
    cls = PROVIDERS.get(name)
    if cls is None:
        raise ProviderUnavailable(
            f"Unknown compute provider {name!r}; choose one of: {', '.join(sorted(PROVIDERS))}.")
    try:
        return cls(**options)
    except (TypeError, ValueError) as error:
        raise ProviderUnavailable(f"The {name!r} provider cannot be configured: {error}") from error


__all__ = [
    "PROVIDERS",
    "Capacity",
    "CapacityExhausted",
    "ConnectionTarget",
    "FailingProvider",
    "InMemoryProvider",
    "LaunchFailed",
    "LaunchSpec",
    "LocalProvider",
    "MachineGone",
    "MissingSystemPackages",
    "NeverReadyProvider",
    "OpenStackProvider",
    "Provider",
    "ProviderError",
    "ProviderState",
    "ProviderStatus",
    "ProviderUnavailable",
    "QemuProvider",
    "SessionMount",
    "SlowProvider",
    "StopNotSupported",
    "make_provider",
]
