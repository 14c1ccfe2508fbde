"""Starting a local session's programs: Xvnc on a free display, then openbox and the desktop.

Every program runs as the session's account (:mod:`daaas.portal.providers.local.accounts`), in
its own session/process group, with HOME set to the session's home and a clean environment
(nothing of the portal's, which may hold secrets) plus the marker variables
``DAAAS_MACHINE_ID`` and ``DAAAS_SESSIONS_DIR`` by which the provider finds every process.
Xvnc listens on no TCP port: VNC on a Unix socket in the session's runtime folder (0600, the
session's account), X only for clients that show the session's cookie.

Started together with openbox, pcmanfm's desktop window is left unmapped (a black screen) in
most tries; started after openbox has set ``_NET_SUPPORTING_WM_CHECK`` (EWMH), still in about
one try in sixteen, when openbox never manages it. So the desktop is started after that, and
restarted if the window manager's ``_NET_CLIENT_LIST`` stays empty. Both root-window
properties are read with python-xlib over the session's local X socket.
"""

from __future__ import annotations

import os
import re
import threading
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from Xlib import X
from Xlib import error as xerror
from Xlib.display import Display

from daaas.portal.providers.base import LaunchSpec
from daaas.portal.providers.errors import CapacityExhausted, LaunchFailed
from daaas.portal.providers.local.accounts import SESSION_SHELL, SessionAccount
from daaas.portal.providers.local.desktop import (
    attach,
    mountpoints_below,
    write_desktop_config,
    write_folder_links,
    write_launchers,
    write_storage_view,
)
from daaas.portal.providers.local.session import (
    SessionPaths,
    display_free,
    give,
    lock_owner,
    write_password,
    write_xauthority,
    x_socket,
)
from daaas.portal.providers.processes import (
    ProcRef,
    is_alive,
    spawn,
    stop,
    wait_for,
)

DEFAULT_PATH = "/usr/local/bin:/usr/bin:/bin"
GEOMETRY = re.compile(r"^[1-9][0-9]{2,4}x[1-9][0-9]{2,4}$")
# Xvnc's words when another server took the display or port between our check and its start
TAKEN = ("already active", "in use", "Cannot establish any listening sockets")
DESKTOP_SECONDS = 5.0  # a desktop window is managed ~0.3 s after the start when all goes well
#: What python-xlib raises when the X server cannot be reached or answers with an error
X_ERRORS = (OSError, xerror.DisplayError, xerror.ConnectionClosedError, xerror.XError)


def marker(sessions_dir: Path, machine_id: str) -> dict[str, str]:
    """Return the environment entries that mark every process of one session."""
    return {"DAAAS_MACHINE_ID": machine_id, "DAAAS_SESSIONS_DIR": str(sessions_dir)}


def session_env(paths: SessionPaths, sessions_dir: Path, machine_id: str, display: int,
                account: SessionAccount) -> dict[str, str]:
    """Return the environment of a session's programs, which run as ``account``."""
    return {
        "PATH": DEFAULT_PATH,
        "LANG": os.environ.get("LANG", "C.UTF-8"),
        "HOME": str(paths.home),
        "USER": account.name,
        "LOGNAME": account.name,
        "SHELL": SESSION_SHELL,
        "DISPLAY": f":{display}",
        "XAUTHORITY": str(paths.xauthority),
        "XDG_RUNTIME_DIR": str(paths.run),
        "XDG_CONFIG_HOME": str(paths.home / ".config"),
        **marker(sessions_dir, machine_id),
    }


def xvnc_argv(xvnc: str, display: int, geometry: str, paths: SessionPaths,
              title: str) -> list[str]:
    """Return the Xvnc command line: VNC auth on a 0600 Unix socket and no TCP port, X only
    for clients with the session's cookie and never over TCP."""
    return [xvnc, f":{display}", "-geometry", geometry, "-depth", "24",
            "-rfbport", "-1", "-rfbunixpath", str(paths.vnc_socket), "-rfbunixmode", "0600",
            "-SecurityTypes", "VncAuth", "-PasswordFile", str(paths.password),
            "-auth", str(paths.xauthority), "-nolisten", "tcp", "-desktop", title]


def start_xvnc(paths: SessionPaths, sessions_dir: Path, machine_id: str, *, xvnc: str,
               xauth: str, account: SessionAccount, displays: Iterable[int], geometry: str,
               title: str, timeout: float) -> tuple[int, ProcRef]:
    """Start Xvnc as ``account`` on the first free display; wait until it serves X and VNC.

    Returns (display, Xvnc's ProcRef). Raises LaunchFailed for a bad geometry or an Xvnc that
    dies or does not come up in ``timeout`` seconds (its log tail in the log message only),
    CapacityExhausted when no display in ``displays`` is free.
    """
    if not GEOMETRY.match(geometry):
        raise LaunchFailed(f"The screen size {geometry!r} is not valid (e.g. 1280x800).")
    for display in displays:
        if display_free(display):
            write_xauthority(paths, display, xauth, account.uid, account.gid)
            env = session_env(paths, sessions_dir, machine_id, display, account)
            argv = xvnc_argv(xvnc, display, geometry, paths, title)
            ref = _try_xvnc(paths, account, argv, env, display, timeout)
            if ref is not None:
                return display, ref
    raise CapacityExhausted("No free display is left on this server; try again later.",
                            f"{machine_id}: no free X display/VNC port in the configured range")


def _try_xvnc(paths: SessionPaths, account: SessionAccount, argv: list[str],
              env: dict[str, str], display: int, timeout: float) -> ProcRef | None:
    log = paths.logs / "xvnc.log"
    offset = log.stat().st_size if log.exists() else 0
    paths.vnc_socket.unlink(missing_ok=True)
    ref = start_program(paths, env, "xvnc", argv, account)

    def up() -> bool:  # the lock names OUR Xvnc: another server on this display does not count
        return (lock_owner(display) == ref.pid and x_socket(display).exists()
                and paths.vnc_socket.is_socket())

    wait_for(lambda: up() or not is_alive(ref), timeout)
    if is_alive(ref) and up():
        return ref
    outcome = "timed out" if is_alive(ref) else "exited"
    stop([ref], {}, grace=1.0)
    output = log.read_bytes()[offset:].decode(errors="replace")
    if any(word in output for word in TAKEN):
        return None  # lost a race for this display: the caller tries the next one
    raise LaunchFailed(
        "The desktop server could not be started on this host.",
        f"Xvnc :{display} {outcome}; "
        f"log tail:\n{paths.log_tail('xvnc')}",
    )


def prepare_files(paths: SessionPaths, spec: LaunchSpec, vncpasswd: str,
                  account: SessionAccount, roots: Sequence[Path] = ()) -> None:
    """Create the session folder, password file, desktop settings and launchers (programs
    resolved through the software ``roots``), the home and everything in it (but mounted data)
    owned by ``account``.

    Raises LaunchFailed (a broken application entry, vncpasswd failing, a disk error).
    """
    try:
        paths.prepare(account.uid, account.gid)
        write_password(paths, spec.vnc_password, vncpasswd, account.uid, account.gid)
        write_desktop_config(paths.home)
        write_launchers(paths.home, spec.environment, roots)
        attach(paths.home, spec.mounts, spec.machine_id)
        write_folder_links(paths.home, spec.mounts)
        write_storage_view(paths.home, spec.mounts)
        give_home(paths.home, account)
    except OSError as error:
        raise LaunchFailed("The desktop's files could not be written on this host.",
                           f"{spec.machine_id}: {error}") from error


def give_home(home: Path, account: SessionAccount) -> None:
    """Make ``home`` and what the portal wrote in it owned by ``account``; links are changed
    themselves (never what they name) and mounted folders (experiment data) are left alone.
    Raises OSError."""
    if not account.switch:
        return
    mounted = set(mountpoints_below(home))  # bind mounts: os.path.ismount misses same-disk ones
    give(home, account.uid, account.gid)
    for folder, folders, files in os.walk(home):
        folders[:] = [name for name in folders if Path(folder) / name not in mounted]
        for name in (*folders, *files):
            give(Path(folder) / name, account.uid, account.gid)


def start_program(paths: SessionPaths, env: dict[str, str], role: str, argv: list[str],
                  account: SessionAccount) -> ProcRef:
    """Start a session program as ``account``, its output in ``logs/<role>.log``.

    Returns its ProcRef. Raises LaunchFailed if it cannot be executed.
    """
    try:
        return spawn(account.command(argv), env, paths.home, paths.logs / f"{role}.log")
    except OSError as error:
        raise LaunchFailed("The desktop could not be started on this host.",
                           f"{role} {argv[0]}: {error}") from error


_XAUTHORITY_LOCK = threading.Lock()


@contextmanager
def x_display(display: int, xauthority: Path) -> Iterator[Display]:
    """Yield a python-xlib connection to ``:display`` that shows the cookie in ``xauthority``.

    python-xlib reads cookies only from the file named by $XAUTHORITY, so it is set for the
    moment of connecting, under a lock. Raises one of ``X_ERRORS``.
    """
    with _XAUTHORITY_LOCK:
        before = os.environ.get("XAUTHORITY")
        os.environ["XAUTHORITY"] = str(xauthority)
        try:
            connection = Display(f":{display}")
        finally:
            if before is None:
                del os.environ["XAUTHORITY"]
            else:
                os.environ["XAUTHORITY"] = before
    try:
        yield connection
    finally:
        connection.close()


def root_property_length(display: int, xauthority: Path, name: str) -> int:
    """Return how many items property ``name`` of the root window of ``:display`` holds.

    0 when the property (or even its atom) is not set. Raises one of ``X_ERRORS`` if the X
    server cannot be reached or answers with an error.
    """
    with x_display(display, xauthority) as connection:
        atom = connection.intern_atom(name, only_if_exists=True)
        if atom == X.NONE:
            return 0
        found = connection.screen().root.get_full_property(atom, X.AnyPropertyType)
        return 0 if found is None else len(found.value)


def window_manager_running(display: int, xauthority: Path) -> bool:
    """Return True once an EWMH window manager has finished starting on ``:display``."""
    try:
        return root_property_length(display, xauthority, "_NET_SUPPORTING_WM_CHECK") > 0
    except X_ERRORS:
        return False


def managed_windows(display: int, xauthority: Path) -> int:
    """Return how many windows the window manager of ``:display`` manages (0 if unknown)."""
    try:
        return root_property_length(display, xauthority, "_NET_CLIENT_LIST")
    except X_ERRORS:
        return 0


def wait_for_window_manager(paths: SessionPaths, display: int, wm: ProcRef,
                            timeout: float) -> None:
    """Wait until the window manager has finished starting (see the module's docstring).

    Raises LaunchFailed if it exits or is not managing after ``timeout`` seconds.
    """
    cookie = paths.xauthority
    wait_for(lambda: window_manager_running(display, cookie) or not is_alive(wm), timeout, 0.05)
    if not window_manager_running(display, cookie):
        raise LaunchFailed("The desktop could not be started on this host.",
                           f"window manager on :{display} is not running; log tail:\n"
                           f"{paths.log_tail('wm')}")


def start_desktop(paths: SessionPaths, env: dict[str, str], display: int, argv: list[str],
                  account: SessionAccount, attempts: int = 3,
                  timeout: float = DESKTOP_SECONDS) -> ProcRef:
    """Start the desktop program and wait until the window manager manages its window.

    A desktop whose window is not managed within ``timeout`` seconds is restarted, up to
    ``attempts`` times. Returns its ProcRef. Raises LaunchFailed (log tail in the log message).
    """
    for attempt in range(1, attempts + 1):
        ref = start_program(paths, env, "desktop", argv, account)
        if _wait_managed(display, paths.xauthority, ref, timeout):
            return ref
        stop([ref], {}, grace=1.0)
        with open(paths.logs / "desktop.log", "a") as log:
            log.write(f"daaas: no managed desktop window after {timeout} s (try {attempt})\n")
    raise LaunchFailed("The desktop could not be started on this host.",
                       f"{argv[0]} on :{display} showed no window after {attempts} tries; "
                       f"log tail:\n{paths.log_tail('desktop')}")


def _wait_managed(display: int, xauthority: Path, ref: ProcRef, timeout: float) -> bool:
    wait_for(lambda: managed_windows(display, xauthority) > 0 or not is_alive(ref), timeout,
             0.05)
    return is_alive(ref) and managed_windows(display, xauthority) > 0
