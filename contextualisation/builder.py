"""Build a :class:`Context` from the data the portal holds: the one place a Context is made.

``context_from_parts`` is the entry point. The environment is the catalogue's typed
:class:`~daaas.catalogue.Environment` (or a machine's snapshot of it); the account and site
parts are plain data. Any value that cannot be used becomes an :class:`InvalidContext` naming
the thing and what to do. :func:`launchers` and :func:`access_services` read an environment the
same way for the local provider's desktop and the bootstrap exchange.
"""

from __future__ import annotations

import shlex
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from daaas.catalogue import Application, Environment
from daaas.contextualisation.account import UserAccount
from daaas.contextualisation.context import AccessServices, Context, HpcSettings, Mount
from daaas.contextualisation.errors import InvalidContext
from daaas.contextualisation.launchers import Launcher
from daaas.contextualisation.validation import describe
from daaas.cvmfs.settings import CvmfsClientSettings

USER_KEYS = ("username", "uid", "gid", "full_name", "ssh_public_keys", "group", "home",
             "groups", "sudo")
SITE_KEYS = ("callback_url", "cvmfs", "hpc", "icon_dir", "vnc_geometry")
_SUPPORT = "Please report this to the facility's support team."
M = TypeVar("M", bound=BaseModel)
T = TypeVar("T")


def context_from_parts(
    user: Mapping[str, Any],
    machine_id: str,
    environment: Environment,
    site: Mapping[str, Any],
    *,
    bootstrap_token: str,
    mounts: Iterable[Mount | Mapping[str, Any]] = (),
) -> Context:
    """Return the Context for one session.

    ``user`` holds the account fields (USER_KEYS; others are ignored), ``environment`` is the
    catalogue entry (or a machine's snapshot of it), ``site`` holds SITE_KEYS (``callback_url``
    required, ``cvmfs`` and ``hpc`` as dictionaries or models) and ``mounts`` the storage and
    experiment mounts.
    Raises InvalidContext with a message for the user when any part cannot be used.
    """
    unknown = sorted(set(site) - set(SITE_KEYS))
    if unknown:
        raise InvalidContext(f"The portal's site settings are wrong. {_SUPPORT}",
                             f"unknown site setting(s) {unknown}; known: {list(SITE_KEYS)}")
    where = f"The environment '{environment.name}' cannot be started"
    account = _model(UserAccount, {k: user[k] for k in USER_KEYS if user.get(k) is not None},
                     "Your account cannot be set up on a machine")
    apps = _guard(lambda: launchers(environment), where)
    fields: dict[str, Any] = {
        "environment_name": environment.name,
        "environment_title": environment.title,
        "user": account,
        "machine_id": machine_id,
        "bootstrap_token": bootstrap_token,
        "mounts": tuple(_model(Mount, m, "The storage for this session is misconfigured")
                        for m in mounts),
        "cvmfs_repositories": repositories(environment, apps),
        "launchers": apps,
        "access": access_services(environment),
        "cvmfs": _model(CvmfsClientSettings, site.get("cvmfs") or {}, where),
        "hpc": _model(HpcSettings, site.get("hpc") or {}, where),
        **{key: site[key] for key in ("callback_url", "icon_dir", "vnc_geometry") if key in site},
    }
    return _model(Context, fields, where)


def _model(model: type[M], data: Any, where: str) -> M:
    if isinstance(data, model):
        return data
    if not isinstance(data, Mapping):
        raise InvalidContext(f"{where}: a {model.__name__} is not a mapping. {_SUPPORT}")
    try:
        return model.model_validate(dict(data))
    except ValidationError as exc:
        raise InvalidContext(f"{where}: {describe(exc)}. {_SUPPORT}", str(exc)) from None


def _guard(build: Callable[[], T], where: str) -> T:
    try:
        return build()
    except ValidationError as exc:
        raise InvalidContext(f"{where}: {describe(exc)}. {_SUPPORT}", str(exc)) from None
    except (TypeError, ValueError) as exc:
        raise InvalidContext(f"{where}: {exc}. {_SUPPORT}") from None


# -- reading the environment ---------------------------------------------------------------

def launchers(environment: Environment) -> tuple[Launcher, ...]:
    """Return a Launcher per application of ``environment``, in catalogue order.

    Raises ValueError naming the application whose launcher is not safe to write.
    """
    result = []
    for app in environment.applications:
        try:
            result.append(launcher(app))
        except ValidationError as exc:
            raise ValueError(f"application '{app.name}': {describe(exc)}") from None
    return tuple(result)


def launcher(app: Application) -> Launcher:
    """Return the desktop launcher of one catalogue application.

    The catalogue keeps the program and its arguments apart; the launcher holds one exactly
    quoted command line. Raises pydantic.ValidationError for a value a desktop entry cannot take.
    """
    command = shlex.join([app.command, *app.arguments]) if app.arguments else app.command
    return Launcher(name=app.name, command=command, icon=app.icon, category=app.category,
                    terminal=app.terminal, description=app.description)


def repositories(environment: Environment, apps: Sequence[Launcher] = ()) -> tuple[str, ...]:
    """Return the CVMFS repositories: those listed, then any an application's command needs.

    Raises nothing.
    """
    return tuple(dict.fromkeys([*environment.cvmfs_repositories,
                                *(app.repository for app in apps)]))


def access_services(environment: Environment) -> AccessServices:
    """Return the services to switch on for the environment's ``protocols``.

    ``novnc`` needs the VNC server, ``rdp`` xrdp and ``ssh`` the SSH daemon. Raises nothing.
    """
    protocols = set(environment.protocols)
    return AccessServices(vnc="novnc" in protocols, xrdp="rdp" in protocols,
                          ssh="ssh" in protocols)
