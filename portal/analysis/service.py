"""Which analysis environments a user may see and launch."""

from __future__ import annotations

from pathlib import Path

from daaas.catalogue import Catalogue, Environment, load_catalogue
from daaas.cvmfs.registry import RegistryError, load_registry
from daaas.portal.auth.models import User
from daaas.portal.config import ConfigError, Settings
from daaas.portal.errors import NotFound


def load_site_catalogue(settings: Settings) -> Catalogue:
    """Return the site's catalogue, entries checked against the site's CVMFS registry.

    A broken entry is in the result's problems, never raised. Raises ConfigError naming the
    setting when the CVMFS registry itself cannot be read.
    """
    try:
        registry = load_registry(Path(settings.cvmfs_registry) if settings.cvmfs_registry
                                 else None)
    except RegistryError as exc:
        raise ConfigError(f"Configuration key 'cvmfs_registry': {exc}") from None
    return load_catalogue(Path(settings.catalogue_dir), repositories=registry.repositories)


def visible_environments(catalogue: Catalogue, user: User) -> list[Environment]:
    """Return the valid environments ``user`` may use, in catalogue order (admins: all)."""
    return [env for env in catalogue.environments.values()
            if user.is_admin or env.visible_to(user.groups, user.instruments)]


def get_environment(catalogue: Catalogue, user: User, name: str) -> Environment:
    """Return the environment called ``name`` if ``user`` may use it.

    Raises NotFound both when it does not exist and when the user may not use it, so the
    catalogue does not reveal environments restricted to others.
    """
    env = catalogue.environments.get(name)
    if env is None or not (user.is_admin or env.visible_to(user.groups, user.instruments)):
        raise NotFound(f"There is no analysis environment called '{name}' that you may use. "
                       "Pick one from the Analysis page.")
    return env
