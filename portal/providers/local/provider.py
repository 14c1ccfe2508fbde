"""LocalProvider: each machine is a real desktop session (Xvnc + openbox + pcmanfm) on this host.

The embedded default: no cloud, one host. A session's folder name is the machine id, so a
restarted portal (or worker) finds what it started. Every session runs as its user's own POSIX
account (``LaunchSpec.username``/``uid``/``gid``; see
:mod:`daaas.portal.providers.local.accounts`), or, in single-user mode only, as the portal's.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import threading
from collections.abc import Collection, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

from daaas.portal.providers.base import (
    Capacity,
    ConnectionTarget,
    LaunchSpec,
    Provider,
    ProviderState,
    ProviderStatus,
)
from daaas.portal.providers.errors import (
    CapacityExhausted,
    LaunchFailed,
    MachineGone,
    ProviderError,
)
from daaas.portal.providers.local import desktop as desk
from daaas.portal.providers.local import session, start
from daaas.portal.providers.local.accounts import (
    SessionAccount,
    check_reachable,
    isolation_notice,
    session_account,
)
from daaas.portal.providers.local.desktop import detach
from daaas.portal.providers.local.roots import site_roots
from daaas.portal.providers.local.session import (
    SessionPaths,
    SessionState,
    remove_stale_x_files,
)
from daaas.portal.providers.local.software import AvailabilityCache
from daaas.portal.providers.processes import stop as stop_processes

if TYPE_CHECKING:
    from daaas.catalogue import Environment
    from daaas.portal.config import Settings


#: In a session folder: a warm pool's reserved slot, no session started (issue 20)
POOLED_MARK = "pooled"

class LocalProvider(Provider):
    """Desktop sessions on this host under ``<var_dir>/sessions/<machine_id>/``."""

    name = "local"
    supports_stop = True  # processes ended, home kept
    keeps_homes = True  # delete_keeping_home moves the home aside

    def __init__(self, var_dir: str | Path = "var", max_sessions: int = 8,
                 desktop: str = "pcmanfm", first_display: int = 10, last_display: int = 99,
                 start_timeout: float = 15.0, stop_grace: float = 3.0,
                 single_user_mode: bool = False, software_roots: Sequence[Path] = ()) -> None:
        self.sessions_dir = Path(var_dir).resolve() / "sessions"
        self.software_roots = tuple(software_roots)
        self.single_user_mode = single_user_mode
        self.max_sessions = max_sessions
        self.desktop = desktop
        self.programs = desk.required_programs(desktop)
        self.displays = range(first_display, last_display + 1)
        self.start_timeout = start_timeout
        self.stop_grace = stop_grace
        self._availability = AvailabilityCache(roots=self.software_roots)
        self._lock = threading.RLock()

    @classmethod
    def from_settings(cls, settings: Settings) -> LocalProvider:
        """Return the provider of ``var_dir``, ``local_max_sessions``,
        ``local_single_user_mode`` and the software roots (``software_roots``, and
        ``local_software_dir`` when not root: see :func:`~.roots.site_roots`). Raises
        ValueError for a bad software root (the settings check it first)."""
        roots = site_roots(settings.software_roots, settings.local_software_dir,
                           as_root=os.geteuid() == 0)
        return cls(var_dir=settings.var_dir, max_sessions=settings.local_max_sessions,
                   single_user_mode=settings.local_single_user_mode, software_roots=roots)

    @property
    def supports_pools(self) -> bool:
        """Return True: a pooled local machine is a reserved slot whose programs were checked
        (:meth:`launch` with ``spec.pooled``); its desktop starts under the user's own
        account at :meth:`personalise`. An X server cannot change its uid, and one started
        under the pool account would leave a process of that account in the user's session,
        so nothing runs before the claim. Raises nothing."""
        return True

    def personalise(self, spec: LaunchSpec) -> None:
        """Start the pooled session ``spec.machine_id`` as ``spec``'s user (a launch under
        their account, with their folders); a session already started for them is kept.
        Raises MachineGone when the machine is neither pooled nor running, and what
        :meth:`launch` raises."""
        paths = self._paths_or_fail(spec.machine_id)
        with self._locked():  # not held during the launch, which takes it itself
            mark = paths.root / POOLED_MARK
            if not mark.exists() and not session.alive(self.sessions_dir, spec.machine_id):
                raise MachineGone("This desktop is no longer there; launch again.",
                                  f"local {spec.machine_id}: not pooled, not running")
            mark.unlink(missing_ok=True)
        self.launch(replace(spec, pooled=False))

    def launch(self, spec: LaunchSpec) -> None:
        """Start the session, or finish/keep the one already there under this id.

        Returns once Xvnc serves, the window manager runs and it manages the desktop's window.
        Every program runs as the user's own account (made now if missing). A failed launch
        leaves no process and no password file behind. Raises MissingSystemPackages,
        CapacityExhausted (slots, displays, or a GPU asked for), LaunchFailed (bad id or
        geometry, a program that cannot start, an account that cannot be used: see
        :func:`~daaas.portal.providers.local.accounts.session_account`).
        """
        paths = self._paths_or_fail(spec.machine_id)
        found = desk.check_programs(self.programs)
        if spec.pooled:
            self._reserve(spec, paths)
            return
        with self._locked():
            account = session_account(spec.username, spec.uid, spec.gid,
                                      single_user_mode=self.single_user_mode)
            if account.switch:
                check_reachable(self.sessions_dir)
            state = SessionState.load(paths.state)
            if state is None or not state.alive("xvnc"):
                self._cleanup(spec.machine_id, remove_home=False)
                state = self._start_server(spec, paths, found, account)
            try:
                self._start_desktop(state, paths, account)
            except BaseException:
                self._cleanup(spec.machine_id, remove_home=False)  # a failed launch leaves
                raise  # nothing running and no password behind

    def poll(self, machine_ids: Collection[str]) -> dict[str, ProviderStatus]:
        """Return each session's status from its state file and /proc; GONE if unknown;
        READY for a warm pool's reserved slot."""
        with self._lock:
            pooled = self._pooled_ids()
            return {mid: ProviderStatus(ProviderState.READY) if mid in pooled
                    else session.session_status(SessionPaths.of_or_none(self.sessions_dir, mid))
                    for mid in machine_ids}

    def delete(self, machine_id: str) -> None:
        """Stop every process of the session and remove its folder. Already gone is success.

        Raises ProviderError if some process survives SIGKILL.
        """
        if SessionPaths.of_or_none(self.sessions_dir, machine_id) is None:
            return
        with self._locked():
            self._cleanup(machine_id, remove_home=True)

    def delete_keeping_home(self, machine_id: str, keep_at: Path) -> bool:
        """End the session's processes, move its home to ``keep_at`` (without the links to
        the user's storage and experiments) and remove the rest. Returns False when the
        session has no home (gone already). Raises ProviderError as :meth:`delete`, OSError
        when the home cannot be moved (the session's folder is then left in place)."""
        paths = SessionPaths.of_or_none(self.sessions_dir, machine_id)
        if paths is None:
            return False
        with self._locked():
            if not paths.home.is_dir():
                if paths.root.exists():
                    self._cleanup(machine_id, remove_home=True)
                return False
            self._cleanup(machine_id, remove_home=False)
            for entry in paths.home.iterdir():  # links into the session folder: gone with it
                if entry.is_symlink() and os.readlink(entry).startswith(".."):
                    entry.unlink()
            keep_at.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            shutil.move(paths.home, keep_at)
            shutil.rmtree(paths.root, ignore_errors=True)
            return True

    def stop(self, machine_id: str) -> None:
        """End the session's processes and keep its home; poll then says STOPPED.

        The ``stopped`` marker is written first, so a stop cut short still reads as stopped or
        stopping (never as a crash). Already stopped is success. Raises MachineGone when the
        session has no folder, ProviderError if a process survives SIGKILL.
        """
        paths = self._existing(machine_id)
        with self._locked():
            session.mark_stopped(paths)
            self._cleanup(machine_id, remove_home=False)

    def start(self, spec: LaunchSpec) -> None:
        """Start a stopped session's desktop again on its kept home (as ``launch`` does).

        Returns once the desktop runs; a running session is success. A failed start leaves the
        session stopped. Raises MachineGone when the session has no folder, and what
        :meth:`launch` raises.
        """
        paths = self._existing(spec.machine_id)
        self.launch(spec)
        with self._locked():
            session.clear_stopped(paths)

    def list_machine_ids(self) -> set[str]:
        """Return the ids of sessions whose Xvnc (or any marked process) still runs."""
        with self._lock:
            recorded = session.recorded_ids(self.sessions_dir)
            running = {mid for mid in recorded if session.alive(self.sessions_dir, mid)}
            return running | session.marked_ids(self.sessions_dir) | self._pooled_ids()

    def unavailable_reason(self, environment: Environment) -> str | None:
        """Return which of the environment's programs are not on this host (for a person), or
        None when every launcher's command exists and others may run it. Kept 30 s per
        environment; one ``stat`` per command (see
        :mod:`daaas.portal.providers.local.software`). Raises nothing."""
        return self._availability.reason(environment)

    def notices(self) -> list[str]:
        """Return the single-user or refusal notice when the portal does not run as root."""
        notice = isolation_notice(self.single_user_mode)
        return [notice] if notice else []

    def capacity(self) -> Capacity:
        """Return free session slots out of ``max_sessions``; no GPUs here (0)."""
        used = len(self.list_machine_ids())
        return Capacity(gpus_free=0, gpus_total=0, sessions_free=max(0, self.max_sessions - used),
                        sessions_total=self.max_sessions)

    def connection_target(self, machine_id: str) -> ConnectionTarget:
        """Return the session's VNC Unix socket (no host, no port). Raises MachineGone if
        not running."""
        paths = SessionPaths.of_or_none(self.sessions_dir, machine_id)
        state = SessionState.load(paths.state) if paths else None
        if state is None or not state.alive("xvnc"):
            raise MachineGone("This desktop is no longer running.",
                              f"local session {machine_id!r}: no running Xvnc")
        return ConnectionTarget(host="", vnc_port=0, vnc_socket=state.socket)

    def adopt_or_cleanup(self, known_ids: Collection[str],
                         remove_homes: bool = False) -> set[str]:
        """Keep running sessions the portal knows; stop and clear every other one.

        Dead or unknown sessions lose their processes, state and password (their home folder
        too if ``remove_homes``). Returns the ids kept. Raises ProviderError if a process
        survives SIGKILL.
        """
        with self._locked():
            adopted = set()
            pooled = self._pooled_ids()
            found = session.recorded_ids(self.sessions_dir) \
                | session.marked_ids(self.sessions_dir) | pooled
            for machine_id in found:
                if machine_id in known_ids and (session.alive(self.sessions_dir, machine_id)
                                                or machine_id in pooled):
                    adopted.add(machine_id)
                else:
                    self._cleanup(machine_id, remove_home=remove_homes)
            return adopted

    # -- internals ---------------------------------------------------------------------------

    def _pooled_ids(self) -> set[str]:
        """The ids of warm pools' reserved slots (a session folder with the pooled mark)."""
        if not self.sessions_dir.is_dir():
            return set()
        return {entry.parent.name for entry in self.sessions_dir.glob(f"*/{POOLED_MARK}")}

    def _reserve(self, spec: LaunchSpec, paths: SessionPaths) -> None:
        """Reserve a slot for a warm pool's machine: its folder (the portal's own, 0700) and
        the pooled mark; no process, no account, no file of anyone. Raises
        CapacityExhausted when no slot is free, LaunchFailed for a GPU environment."""
        if spec.environment.gpu == "required":
            raise CapacityExhausted("This environment needs a GPU; this server has none.")
        with self._locked():
            if paths.root.exists():
                return
            if len(self.list_machine_ids()) >= self.max_sessions:
                raise CapacityExhausted(
                    "All desktop slots on this server are in use; try again when one is free.",
                    f"local: {self.max_sessions} sessions running")
            paths.root.mkdir(mode=0o700)
            (paths.root / POOLED_MARK).touch(mode=0o600)

    def _paths_or_fail(self, machine_id: str) -> SessionPaths:
        paths = SessionPaths.of_or_none(self.sessions_dir, machine_id)
        if paths is None:
            raise LaunchFailed("The machine could not be started (invalid identifier).",
                               f"local: unsafe machine id {machine_id!r}")
        return paths

    def _existing(self, machine_id: str) -> SessionPaths:
        paths = SessionPaths.of_or_none(self.sessions_dir, machine_id)
        if paths is None or not paths.home.is_dir():
            raise MachineGone("This desktop's files are gone; delete the machine and launch a "
                              "new one (your storage is kept).",
                              f"local session {machine_id!r}: no home folder")
        return paths

    @contextmanager
    def _locked(self) -> Iterator[None]:
        """Serialise launches/deletes across threads and across processes on one var dir."""
        for folder in (self.sessions_dir.parent, self.sessions_dir):
            if not folder.is_dir():  # made here: each session's account passes to its home
                folder.mkdir(parents=True)
                folder.chmod(0o711)
        self.sessions_dir.chmod(0o711)
        with self._lock, open(self.sessions_dir / ".lock", "a") as lock_file:
            fcntl.flock(lock_file, fcntl.LOCK_EX)
            yield

    def _start_server(self, spec: LaunchSpec, paths: SessionPaths, found: dict[str, str],
                      account: SessionAccount) -> SessionState:
        if spec.environment.gpu == "required":
            raise CapacityExhausted("This environment needs a GPU; this server has none.")
        if len(self.list_machine_ids()) >= self.max_sessions:
            raise CapacityExhausted(
                "All desktop slots on this server are in use; try again when one is free.",
                f"local: {self.max_sessions} sessions running")
        try:
            start.prepare_files(paths, spec, found["vncpasswd"], account, self.software_roots)
            display, xvnc = start.start_xvnc(
                paths, self.sessions_dir, spec.machine_id, xvnc=found["Xvnc"],
                xauth=found["xauth"], account=account,
                displays=self.displays, geometry=spec.geometry,
                title=spec.environment.title,
                timeout=self.start_timeout)
        except BaseException:
            self._cleanup(spec.machine_id, remove_home=False)  # no password left lying around
            raise
        state = SessionState(spec.machine_id, display, str(paths.vnc_socket), self.desktop,
                             {"xvnc": xvnc})
        state.save(paths.state)
        return state

    def _start_desktop(self, state: SessionState, paths: SessionPaths,
                       account: SessionAccount) -> None:
        env = start.session_env(paths, self.sessions_dir, state.machine_id, state.display,
                                account)
        if "wm" not in state.procs:
            state.procs["wm"] = start.start_program(paths, env, "wm", desk.WINDOW_MANAGER,
                                                    account)
            state.save(paths.state)
        desktop = desk.DESKTOPS[state.desktop]
        if desktop and "desktop" not in state.procs:
            start.wait_for_window_manager(paths, state.display, state.procs["wm"],
                                          self.start_timeout)
            state.procs["desktop"] = start.start_desktop(paths, env, state.display, desktop,
                                                         account)
            state.save(paths.state)

    def _cleanup(self, machine_id: str, remove_home: bool) -> None:
        paths = self._paths_or_fail(machine_id)
        state = SessionState.load(paths.state)
        refs = list(state.procs.values()) if state else []
        survivors = stop_processes(refs, start.marker(self.sessions_dir, machine_id),
                                   self.stop_grace)
        if survivors:
            raise ProviderError(f"The desktop {machine_id} could not be stopped completely.",
                                f"local {machine_id}: pids {sorted(survivors)} survived SIGKILL")
        if state is not None and "xvnc" in state.procs:
            remove_stale_x_files(state.display, state.procs["xvnc"])
        (paths.root / POOLED_MARK).unlink(missing_ok=True)
        detach(paths.root)  # never delete a folder with experiment data mounted inside
        shutil.rmtree(paths.run, ignore_errors=True)
        if remove_home:
            shutil.rmtree(paths.root, ignore_errors=True)
            return
        paths.state.unlink(missing_ok=True)
