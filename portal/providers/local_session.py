"""One local desktop session on disk: its folder, state file, VNC password and Xvnc server.

Layout of ``<var_dir>/sessions/<machine_id>/``: ``home/`` (the session's HOME, with Desktop
launchers), ``vncpasswd`` (obfuscated by ``vncpasswd -f``, mode 600), ``state.json`` (display,
port, processes), ``logs/`` (one log per program), ``run/`` (XDG_RUNTIME_DIR, mode 700).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import subprocess
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from daaas.portal.providers.errors import LaunchFailed
from daaas.portal.providers.local_procs import ProcRef, is_alive

VALID_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")
X11_DIR = Path("/tmp/.X11-unix")


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
        """The obfuscated VNC password file."""
        return self.root / "vncpasswd"

    @property
    def logs(self) -> Path:
        """The folder of per-program logs."""
        return self.root / "logs"

    @property
    def run(self) -> Path:
        """The session's XDG_RUNTIME_DIR."""
        return self.root / "run"

    def prepare(self) -> None:
        """Create the folders (private to the portal's user). Raises OSError."""
        for folder in (self.root, self.home, self.logs, self.run):
            folder.mkdir(mode=0o700, parents=True, exist_ok=True)

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
    port: int
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
        temporary.write_text(json.dumps(asdict(self), indent=1))
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


def write_password(paths: SessionPaths, password: str, vncpasswd: str) -> None:
    """Store the VNC password obfuscated by ``vncpasswd -f``, mode 600, atomically.

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
    os.replace(temporary, paths.password)


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
