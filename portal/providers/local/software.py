"""Whether an environment's software is on this host: every launcher's program must exist.

A local desktop runs its launchers' commands (``/cvmfs/<repository>/…``) on this host, as the
user's own account. An environment one of whose commands is missing, or not executable by
other accounts, would start as a desktop whose icons do nothing: :func:`unavailable_reason`
says so, for a person, naming what is missing. It only looks at each command's file (one
``stat`` each, no walk of any tree); :class:`AvailabilityCache` keeps the answer for a short
time, as the Analysis page asks on every view.
"""

from __future__ import annotations

import os
import shutil
import stat
import threading
import time
from collections.abc import Sequence
from pathlib import Path

from daaas.catalogue import Environment
from daaas.portal.providers.local.roots import repository_of, repository_present, resolve
from daaas.portal.providers.local.start import DEFAULT_PATH

CACHE_SECONDS = 30.0


def runnable(command: str, any_account: bool) -> bool:
    """Return True when ``command`` is a file that can be executed (by every account when
    ``any_account``: desktops run as their users, not as the portal). Raises nothing."""
    path = command if "/" in command else shutil.which(command, path=DEFAULT_PATH)
    if path is None:
        return False
    try:
        mode = os.stat(path).st_mode
    except OSError:
        return False
    if not stat.S_ISREG(mode):
        return False
    if any_account:
        return bool(mode & stat.S_IXOTH)
    return os.access(path, os.X_OK)


def missing_applications(environment: Environment, any_account: bool | None = None,
                         roots: Sequence[Path] = ()) -> list[tuple[str, str]]:
    """Return (application name, command) for each application whose program cannot run here.

    A ``/cvmfs/<repository>/…`` program is looked for through the software ``roots`` when no
    ``/cvmfs/<repository>`` is here (:mod:`daaas.portal.providers.local.roots`). Terminal
    applications also need xterm (the desktop's terminal). ``any_account`` defaults to whether
    the portal runs as root (then desktops run as other accounts). Raises nothing.
    """
    if any_account is None:
        any_account = os.geteuid() == 0
    missing = [(app.name, app.command) for app in environment.applications
               if not runnable(resolve(app.command, roots), any_account)]
    if any(app.terminal for app in environment.applications) and not runnable("xterm", False):
        missing.append(("a terminal (xterm)", "xterm"))
    return missing


def unavailable_reason(environment: Environment, any_account: bool | None = None,
                       roots: Sequence[Path] = ()) -> str | None:
    """Return why ``environment`` cannot run on this host, for a person, or None when it can.

    E.g. "DAWN and silx view are not installed on this server (the software repository
    dawn.diamond.ac.uk is not available here)." ``roots``: the site's software roots, as in
    :func:`missing_applications`. Raises nothing.
    """
    missing = missing_applications(environment, any_account, roots)
    if not missing:
        return None
    names = [name for name, _ in missing]
    listed = names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]
    verb = "is" if len(names) == 1 else "are"
    absent = sorted({repository for _, command in missing
                     if (repository := repository_of(command))
                     and not repository_present(repository, roots)})
    if absent:
        where = (f"the software repository {absent[0]} is" if len(absent) == 1 else
                 f"the software repositories {', '.join(absent)} are")
        detail = f" ({where} not available here)"
    else:
        detail = f" ({missing[0][1]} is missing)"
    return f"{listed} {verb} not installed on this server{detail}."


class AvailabilityCache:
    """:func:`unavailable_reason` per environment (through the software ``roots``), kept
    ``seconds`` (thread-safe)."""

    def __init__(self, seconds: float = CACHE_SECONDS, roots: Sequence[Path] = ()) -> None:
        self.seconds = seconds
        self.roots = tuple(roots)
        self._answers: dict[tuple[str, tuple[str, ...]], tuple[float, str | None]] = {}
        self._lock = threading.Lock()

    def reason(self, environment: Environment) -> str | None:
        """Return the (possibly cached) reason ``environment`` cannot run here, or None."""
        key = (environment.name, tuple(app.command for app in environment.applications))
        now = time.monotonic()
        with self._lock:
            known = self._answers.get(key)
            if known is not None and now - known[0] < self.seconds:
                return known[1]
        answer = unavailable_reason(environment, roots=self.roots)
        with self._lock:
            self._answers[key] = (now, answer)
        return answer
