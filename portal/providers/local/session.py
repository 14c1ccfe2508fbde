"""One local desktop session on disk: its folder, state file, VNC password, X display files,
and what they say about the session's state (including its "stopped" mark).

Layout of ``<var_dir>/sessions/<machine_id>/`` (mode 0711, the portal's): ``home/`` (the
session's HOME with Desktop launchers, owned by the session's account, 0700), ``state.json``
(display, socket, processes; 0600) and ``logs/`` (one log per program; 0700). The session's
XDG_RUNTIME_DIR (:attr:`SessionPaths.run`) is kept apart, under a short folder in /tmp, and
owned by the session's account: programs put UNIX sockets there (pcmanfm's single-instance
socket, Xvnc's VNC socket ``vnc.sock``), and a socket's path holds at most 107 bytes however
deep var_dir is. It also holds the session's obfuscated VNC password (``vncpasswd``) and X
cookie (``Xauthority``), which Xvnc, running as the session's account, reads.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import secrets
import stat
import subprocess
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from daaas.portal.providers.base import ProviderState, ProviderStatus
from daaas.portal.providers.errors import LaunchFailed
from daaas.portal.providers.local.desktop import DESKTOPS
from daaas.portal.providers.processes import ProcRef, is_alive, marked_values

VALID_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")
X11_DIR = Path("/tmp/.X11-unix")
STOPPED_MARK = "stopped"
RUNTIME_ROOT = Path(tempfile.gettempdir()) / f"daaas-run-{os.getuid()}"


def x_socket(display: int) -> Path:
    """Return the path of display ``:display``'s X socket."""
    return X11_DIR / f"X{display}"


def x_lock(display: int) -> Path:
    """Return the path of display ``:display``'s X lock file."""
    return Path(f"/tmp/.X{display}-lock")


@dataclass(frozen=True)
class SessionPaths:
    """The files of one session. Build with :meth:`of`, which refuses unsafe ids."""

    root: Path

    @classmethod
    def of(cls, sessions_dir: Path, machine_id: str) -> SessionPaths:
        """Return the paths for ``machine_id``. Raises ValueError for an id unfit as a name."""
        if not VALID_ID.match(machine_id):
            raise ValueError(f"machine id {machine_id!r} is not a safe folder name")
        return cls(sessions_dir / machine_id)

    @classmethod
    def of_or_none(cls, sessions_dir: Path, machine_id: str) -> SessionPaths | None:
        """Return the paths for ``machine_id``, or None for an id no session can have."""
        try:
            return cls.of(sessions_dir, machine_id)
        except ValueError:
            return None

    @property
    def home(self) -> Path:
        """The session's HOME."""
        return self.root / "home"

    @property
    def state(self) -> Path:
        """The state file (json)."""
        return self.root / "state.json"

    @property
    def password(self) -> Path:
        """The obfuscated VNC password file (in the runtime folder)."""
        return self.run / "vncpasswd"

    @property
    def vnc_socket(self) -> Path:
        """The Unix socket on which the session's Xvnc serves VNC (no TCP port)."""
        return self.run / "vnc.sock"

    @property
    def xauthority(self) -> Path:
        """The X cookie file of the session's display (Xvnc's ``-auth``, its programs'
        XAUTHORITY)."""
        return self.run / "Xauthority"

    @property
    def logs(self) -> Path:
        """The folder of per-program logs."""
        return self.root / "logs"

    @property
    def run(self) -> Path:
        """The session's XDG_RUNTIME_DIR: ``RUNTIME_ROOT/<16 hex digits of the session folder's
        SHA-256>``, short whatever the session folder's path (see the module's docstring)."""
        return RUNTIME_ROOT / hashlib.sha256(str(self.root).encode()).hexdigest()[:16]

    def prepare(self, uid: int, gid: int) -> None:
        """Create the folders: the session folder and ``logs/`` the portal's, ``home/`` and
        the runtime folder owned by ``uid``/``gid`` (the session's account), 0700.

        Raises OSError, also when RUNTIME_ROOT exists but is not a folder of this process's
        user closed to writes by others (a link, another owner, group- or world-writable).
        """
        for folder, mode in ((self.root.parent, 0o711), (self.root, 0o711), (self.logs, 0o700)):
            folder.mkdir(parents=True, exist_ok=True)
            os.chmod(folder, mode)  # exactly: mkdir's mode is cut by the umask (077 in serve)
        RUNTIME_ROOT.mkdir(mode=0o711, exist_ok=True)
        found = os.lstat(RUNTIME_ROOT)
        if not stat.S_ISDIR(found.st_mode) or found.st_uid != os.getuid() \
                or found.st_mode & 0o066:
            raise OSError(f"{RUNTIME_ROOT} is not a folder of this user closed to others")
        if stat.S_IMODE(found.st_mode) != 0o711:
            os.chmod(RUNTIME_ROOT, 0o711)  # the sessions' accounts pass through to their own
        for folder in (self.home, self.run):
            folder.mkdir(mode=0o700, exist_ok=True)
            os.chmod(folder, 0o700)
            if (uid, gid) != (os.getuid(), os.getgid()):
                os.chown(folder, uid, gid)

    def log_tail(self, program: str, lines: int = 15) -> str:
        """Return the last lines of ``logs/<program>.log`` (empty if there is none)."""
        try:
            text = (self.logs / f"{program}.log").read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])


@dataclass
class SessionState:
    """What a launch started, saved in ``state.json`` so a restarted portal finds it."""

    machine_id: str
    display: int
    socket: str
    desktop: str
    procs: dict[str, ProcRef] = field(default_factory=dict)
    created_at: float = field(default_factory=time.time)

    def alive(self, role: str) -> bool:
        """Return True if the process started for ``role`` (xvnc, wm, desktop) still runs."""
        ref = self.procs.get(role)
        return ref is not None and is_alive(ref)

    def save(self, path: Path) -> None:
        """Write the state atomically (readers never see half a file). Raises OSError."""
        temporary = path.with_suffix(".tmp")
        descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(descriptor, "w", encoding="utf-8") as out:
            out.write(json.dumps(asdict(self), indent=1))
        os.replace(temporary, path)

    @classmethod
    def load(cls, path: Path) -> SessionState | None:
        """Return the saved state, or None if there is none or it cannot be read."""
        try:
            data = json.loads(path.read_text())
            data["procs"] = {role: ProcRef(**ref) for role, ref in data["procs"].items()}
            return cls(**data)
        except (OSError, ValueError, TypeError, KeyError):
            return None


def write_password(paths: SessionPaths, password: str, vncpasswd: str, uid: int,
                   gid: int) -> None:
    """Store the VNC password obfuscated by ``vncpasswd -f``, mode 600 and owned by the
    session's account (Xvnc reads it as that account), atomically.

    Raises LaunchFailed if vncpasswd fails. The password itself is never logged or raised.
    """
    temporary = paths.password.with_suffix(".tmp")
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "wb") as out:
        result = subprocess.run([vncpasswd, "-f"], input=f"{password}\n".encode(), stdout=out,
                                stderr=subprocess.PIPE, timeout=10, check=False)
    if result.returncode != 0:
        temporary.unlink(missing_ok=True)
        raise LaunchFailed("The desktop's password could not be set up.",
                           f"vncpasswd -f exited {result.returncode}: {result.stderr[-300:]!r}")
    give(temporary, uid, gid)
    os.replace(temporary, paths.password)


def write_xauthority(paths: SessionPaths, display: int, xauth: str, uid: int, gid: int) -> None:
    """Write a fresh MIT-MAGIC-COOKIE-1 for ``:display`` into the session's Xauthority file
    (mode 600, owned by the session's account). Xvnc (``-auth``) admits only X clients that
    show it, so no other account on this host can reach the session's display.

    Raises LaunchFailed if xauth fails. The cookie is never logged.
    """
    paths.xauthority.unlink(missing_ok=True)
    os.close(os.open(paths.xauthority, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    cookie = secrets.token_hex(16)
    result = subprocess.run([xauth, "-q", "-f", str(paths.xauthority), "add", f":{display}",
                             ".", cookie], capture_output=True, text=True, timeout=10,
                            check=False)
    if result.returncode != 0:
        raise LaunchFailed("The desktop's display could not be secured.",
                           f"xauth add :{display} exited {result.returncode}: "
                           f"{result.stderr.strip()[-300:]}")
    give(paths.xauthority, uid, gid)


def give(path: Path, uid: int, gid: int) -> None:
    """Make ``path`` (never a link it names) owned by ``uid``/``gid`` unless it already is.
    Raises OSError."""
    found = os.lstat(path)
    if (found.st_uid, found.st_gid) != (uid, gid):
        os.lchown(path, uid, gid)


def lock_owner(display: int) -> int | None:
    """Return the pid written in display ``:display``'s X lock file, or None."""
    try:
        return int(x_lock(display).read_text().strip())
    except (OSError, ValueError):
        return None


def display_free(display: int) -> bool:
    """Return True if no running X server holds display ``:display``.

    A lock file naming a dead process is stale: the X server replaces it when it starts.
    """
    if not x_lock(display).exists():
        return not x_socket(display).exists()
    owner = lock_owner(display)
    if owner is None:
        return False
    try:
        os.kill(owner, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


def remove_stale_x_files(display: int, xvnc: ProcRef) -> None:
    """Remove the X lock and socket a killed Xvnc left, if the lock names that dead Xvnc."""
    if lock_owner(display) == xvnc.pid and not is_alive(xvnc):
        for path in (x_lock(display), x_socket(display)):
            with contextlib.suppress(FileNotFoundError):
                path.unlink()


def mark_stopped(paths: SessionPaths) -> None:
    """Mark the session stopped on purpose (its home kept). Raises OSError."""
    (paths.root / STOPPED_MARK).touch()


def clear_stopped(paths: SessionPaths) -> None:
    """Remove the stopped mark (the session runs again). Raises nothing for a missing mark."""
    (paths.root / STOPPED_MARK).unlink(missing_ok=True)


def session_status(paths: SessionPaths | None) -> ProviderStatus:
    """Return the session's status: STOPPED when marked stopped and Xvnc is not running
    (RUNNING while it stops or starts again), GONE without paths or state file, ERROR if a
    program died (its log tail in ``log_message`` only), BUILDING until X is up, RUNNING until
    the window manager and desktop are started, then READY."""
    state = SessionState.load(paths.state) if paths else None
    if paths is not None and (paths.root / STOPPED_MARK).exists():
        if state is None or not state.alive("xvnc"):
            return ProviderStatus(ProviderState.STOPPED)
        return ProviderStatus(ProviderState.RUNNING, "Stopping or starting the desktop.")
    if paths is None or state is None:
        return ProviderStatus(ProviderState.GONE)
    if not state.alive("xvnc"):
        return ProviderStatus(
            ProviderState.ERROR, "The desktop server of this machine stopped unexpectedly.",
            f"Xvnc :{state.display} of {state.machine_id} is not running; log tail:\n"
            f"{paths.log_tail('xvnc')}")
    if not x_socket(state.display).exists():
        return ProviderStatus(ProviderState.BUILDING, "Starting the desktop server.")
    roles = ["wm", "desktop"] if DESKTOPS[state.desktop] else ["wm"]
    if any(role not in state.procs for role in roles):
        return ProviderStatus(ProviderState.RUNNING, "Starting the desktop.")
    for role in roles:
        if not state.alive(role):
            return ProviderStatus(
                ProviderState.ERROR, "The desktop of this machine stopped unexpectedly.",
                f"{role} of {state.machine_id} is not running; log tail:\n"
                f"{paths.log_tail(role)}")
    return ProviderStatus(ProviderState.READY)


def alive(sessions_dir: Path, machine_id: str) -> bool:
    """Return True if the session's Xvnc runs and its X socket exists."""
    state = SessionState.load(sessions_dir / machine_id / "state.json")
    return state is not None and state.alive("xvnc") and x_socket(state.display).exists()


def recorded_ids(sessions_dir: Path) -> set[str]:
    """Return the ids of every session folder holding a state file (running or not)."""
    if not sessions_dir.is_dir():
        return set()
    return {entry.parent.name for entry in sessions_dir.glob("*/state.json")}


def marked_ids(sessions_dir: Path) -> set[str]:
    """Return the ids named by live processes that carry this sessions folder's marker."""
    found = marked_values({"DAAAS_SESSIONS_DIR": str(sessions_dir)}, "DAAAS_MACHINE_ID")
    return {machine_id for machine_id in found if VALID_ID.match(machine_id)}
