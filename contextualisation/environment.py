"""Read what contextualisation needs from a catalogue :class:`~daaas.catalogue.Environment`.

The environment arrives typed and validated (the catalogue's model, or a machine's stored
snapshot of it), so nothing here guesses at spellings or missing keys. Launchers are checked once
more, as what ends up in a desktop entry: a malformed one fails naming the application.
"""

from __future__ import annotations

import shlex
from collections.abc import Sequence

from pydantic import ValidationError

from daaas.catalogue import Application, Environment
from daaas.contextualisation.context import AccessServices
from daaas.contextualisation.launchers import Launcher
from daaas.contextualisation.validation import describe


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
