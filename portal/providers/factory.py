"""Build the configured provider from the portal's settings."""

from __future__ import annotations

import importlib
from typing import Any

from portal.config import Settings
from portal.providers import PROVIDERS, LocalProvider, Provider, ProviderUnavailable
from portal.providers.openstack import OpenStackProvider


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
    return {}


def provider_from_settings(settings: Settings) -> Provider:
    """Return the provider named by ``settings.provider``; raises ProviderUnavailable."""
    cls = provider_class(settings.provider)
    try:
        return cls(**provider_options(settings, cls))
    except (TypeError, ValueError) as exc:
        raise ProviderUnavailable(f"The {settings.provider!r} provider cannot be configured: "
                                  f"{exc}") from exc
