"""The local provider's parts that need no X server: launchers, programs, processes."""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

from daaas.catalogue.loader import ICONS_DIRECTORY
from daaas.contextualisation.builder import launchers
from daaas.contextualisation.files import desktop_entries
from daaas.portal.providers import LaunchSpec, MissingSystemPackages
from daaas.portal.providers.errors import LaunchFailed
from daaas.portal.providers.local import LocalProvider
from daaas.portal.providers.local.desktop import required_programs, write_launchers
from daaas.portal.providers.local.session import RUNTIME_ROOT, SessionPaths, SessionState
from daaas.portal.providers.processes import ProcRef, is_alive, marked_pids, proc_ref, spawn, stop
from tests.support.environments import make_environment

COOT = {"name": "coot", "command": "/cvmfs/ccp4.example.org/bin/coot", "arguments": ["%f"],
        "icon": "/cvmfs/ccp4.example.org/share/coot.png", "category": "Science",
        "terminal": False}


def test_launchers_are_the_shared_desktop_entries_written_executable(tmp_path: Path) -> None:
    shell = {"name": "a shell/../x", "command": "/cvmfs/ccp4.example.org/bin/ccp4-shell",
             "terminal": True, "icon": "utilities-terminal", "category": "System"}
    environment = make_environment(name="ccp4", applications=[COOT, shell])
    written = write_launchers(tmp_path, environment)
    assert [path.name for path in written] == ["daaas-coot.desktop", "daaas-a-shell-x.desktop"]
    assert all(path.parent == tmp_path / "Desktop" for path in written)
    assert all(os.stat(path).st_mode & 0o111 for path in written)
    text = written[0].read_text()
    assert "Exec=/cvmfs/ccp4.example.org/bin/coot %%f\n" in text  # a literal %, no field code
    assert "Icon=/cvmfs/ccp4.example.org/share/coot.png\n" in text
    assert "Terminal=true" in written[1].read_text()
    # the very entries cloud-init writes on a VM for the same environment
    shared = dict(desktop_entries("ccp4", launchers(environment), str(ICONS_DIRECTORY)))
    assert {p.name: p.read_text() for p in written} == shared


@pytest.mark.parametrize("broken", [{"command": "/cvmfs/NotAName/bin/coot"},
                                    {"command": "/cvmfs/bad_repo/bin/coot"}])
def test_broken_application_entries_fail_the_launch(tmp_path: Path,
                                                    broken: dict[str, object]) -> None:
    with pytest.raises(LaunchFailed) as raised:
        write_launchers(tmp_path, make_environment(applications=[{**COOT, **broken}]))
    assert raised.value.user_message == "This environment has a broken application entry."


def test_required_programs_per_desktop() -> None:
    assert required_programs("pcmanfm") == ["Xvnc", "vncpasswd", "xauth", "openbox", "pcmanfm"]
    assert required_programs("none") == ["Xvnc", "vncpasswd", "xauth", "openbox"]
    with pytest.raises(ValueError, match="unknown desktop"):
        required_programs("kde")


def test_missing_programs_name_the_debian_packages(tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))  # a host where nothing is installed
    provider = LocalProvider(tmp_path)
    spec = LaunchSpec("m1", "alice", 20000, 20000, make_environment(), "pw")
    with pytest.raises(MissingSystemPackages) as raised:
        provider.launch(spec)
    assert raised.value.packages == ["tigervnc-standalone-server", "tigervnc-tools", "xauth",
                                     "openbox", "pcmanfm"]
    assert "apt-get install tigervnc-standalone-server" in raised.value.user_message
    assert not (tmp_path / "sessions" / "m1").exists()


def test_unsafe_machine_ids_are_refused_or_gone(tmp_path: Path) -> None:
    provider = LocalProvider(tmp_path, desktop="none")
    with pytest.raises(LaunchFailed) as raised:
        provider.launch(LaunchSpec("../evil", "alice", 20000, 20000, make_environment(),
                                   "pw"))
    assert "invalid identifier" in raised.value.user_message
    assert provider.poll(["../evil", "unknown"])["../evil"].state.value == "gone"
    provider.delete("../evil")  # nothing to do, no error
    assert provider.list_machine_ids() == set()


def test_state_file_round_trip_and_corrupt_file(tmp_path: Path) -> None:
    paths = SessionPaths.of(tmp_path, "m1")
    paths.prepare(os.getuid(), os.getgid())
    state = SessionState("m1", 12, str(paths.vnc_socket), "none", {"xvnc": ProcRef(1, 2)})
    state.save(paths.state)
    assert SessionState.load(paths.state) == state
    paths.state.write_text("{not json")
    assert SessionState.load(paths.state) is None
    shutil.rmtree(paths.run)


def test_runtime_folder_is_short_private_and_per_session(tmp_path: Path) -> None:
    deep = SessionPaths.of(tmp_path / ("d" * 150) / "sessions", "a" * 32)
    deep.prepare(os.getuid(), os.getgid())
    try:
        assert len(str(deep.run / "pcmanfm-socket--99-a-long-user-name")) < 108
        assert len(str(deep.vnc_socket)) < 108
        assert stat.S_IMODE(deep.run.stat().st_mode) == 0o700
        # the sessions' accounts pass through to their own folders, never list the others
        assert stat.S_IMODE(RUNTIME_ROOT.stat().st_mode) == 0o711
        assert deep.run != SessionPaths.of(tmp_path / "other", "a" * 32).run
    finally:
        shutil.rmtree(deep.run)


def test_is_alive_rejects_a_reused_pid() -> None:
    me = proc_ref(os.getpid())
    assert is_alive(me)
    assert not is_alive(ProcRef(me.pid, me.start + 1))


def test_stop_kills_the_group_and_marked_escapees(tmp_path: Path) -> None:
    marker = {"DAAAS_MACHINE_ID": "t1", "DAAAS_SESSIONS_DIR": str(tmp_path)}
    env = {**os.environ, **marker}
    leader = spawn(["sh", "-c", "sleep 300 & exec sleep 301"], env, tmp_path, tmp_path / "log")
    escapee = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(300)"], env=env,
                               start_new_session=True)  # like an app that called setsid()
    time.sleep(0.2)
    assert len(marked_pids(marker)) == 3
    assert stop([leader], marker, grace=2.0) == set()
    assert marked_pids(marker) == set()
    assert escapee.wait(timeout=5) != 0
    assert marked_pids({}) == set()  # an empty marker never matches every process
