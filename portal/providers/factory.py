"""Build the configured provider from the portal's settings."""

from __future__ import annotations

import importlib
from typing import Any
from urllib.parse import urlsplit

from daaas.portal.config import Settings
from daaas.portal.providers import PROVIDERS, LocalProvider, Provider, ProviderUnavailable
from daaas.portal.providers.openstack import OpenStackProvider
from daaas.portal.providers.qemu import QemuProvider


def provider_class(name: str) -> type[Provider]:
    """Return the provider class for a registered name or a ``module:Class`` path.

    Raises ProviderUnavailable for an unknown name, a path that does not import, or a class
    that is not a Provider.
    """
    if ":" not in name:
        if name not in PROVIDERS:
            raise ProviderUnavailable(f"Unknown compute provider {name!r}; choose one of: "
                                      f"{', '.join(sorted(PROVIDERS))}, or module:Class.")
        return PROVIDERS[name]
    module_name, _, class_name = name.partition(":")
    try:
        cls = getattr(importlib.import_module(module_name), class_name)
    except (ImportError, AttributeError) as exc:
        raise ProviderUnavailable(f"The provider {name!r} cannot be imported: {exc}.") from exc
    if not (isinstance(cls, type) and issubclass(cls, Provider)):
        raise ProviderUnavailable(f"{name!r} is not a subclass of portal.providers.Provider.")
    return cls


def provider_options(settings: Settings, cls: type[Provider]) -> dict[str, Any]:
    """Return the constructor options the provider class takes from the settings."""
    if issubclass(cls, LocalProvider):
        return {"var_dir": settings.var_dir, "max_sessions": settings.local_max_sessions}
    if issubclass(cls, OpenStackProvider):
        return {"cloud": settings.openstack_cloud, "network": settings.openstack_network,
                "security_groups": [g.strip() for g in
                                    settings.openstack_security_groups.split(",") if g.strip()],
                "access_mode": settings.openstack_access_mode,
                "floating_network": settings.openstack_floating_network,
                "key_name": settings.openstack_key_name,
                "gpu_resource_class": settings.openstack_gpu_resource_class,
                "gpu_static_free": settings.openstack_gpu_static_free,
                "server_tag": settings.openstack_server_tag}
    if issubclass(cls, QemuProvider):
        return qemu_options(settings)
    return {}


def qemu_options(settings: Settings) -> dict[str, Any]:
    """Return the QEMU provider's options: its qemu_* settings and where guests reach us.

    Guests reach the portal at ``public_url`` (e.g. http://10.0.2.100), which QEMU forwards to
    the portal's own host and port. Raises ValueError when public_url is empty.
    """
    public = urlsplit(settings.public_url)
    if not public.hostname:
        raise ValueError("public_url must be the address QEMU guests reach the portal at, "
                         "e.g. http://10.0.2.100 (forwarded to the portal's host and port)")
    host = "127.0.0.1" if settings.host in ("", "0.0.0.0", "::") else settings.host
    return {"var_dir": settings.var_dir, "image": settings.qemu_image,
            "kernel": settings.qemu_kernel, "initrd": settings.qemu_initrd,
            "memory_mb": settings.qemu_memory_mb, "cpus": settings.qemu_cpus,
            "accel": settings.qemu_accel, "max_machines": settings.qemu_max_machines,
            "portal": (host, settings.port),
            "guest_portal": (public.hostname, public.port or 80)}


def provider_from_settings(settings: Settings) -> Provider:
    """Return the provider named by ``settings.provider``; raises ProviderUnavailable."""
    cls = provider_class(settings.provider)
    try:
        return cls(**provider_options(settings, cls))
    except (TypeError, ValueError) as exc:
        raise ProviderUnavailable(f"The {settings.provider!r} provider cannot be configured: "
                                  f"{exc}") from exc
