"""What a local session's files and processes say about its state, and its "stopped" mark."""

from __future__ import annotations

from pathlib import Path

from daaas.portal.providers.base import ProviderState, ProviderStatus
from daaas.portal.providers.local_desktop import DESKTOPS
from daaas.portal.providers.local_procs import marked_values
from daaas.portal.providers.local_session import VALID_ID, SessionPaths, SessionState, x_socket

STOPPED_MARK = "stopped"


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
