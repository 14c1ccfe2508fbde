"""Which analysis environments a user may see and launch."""

from __future__ import annotations

from catalogue import Catalogue, Environment
from portal.auth.models import User
from portal.errors import NotFound


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
