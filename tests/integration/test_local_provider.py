"""LocalProvider against a REAL Xvnc: launch, readiness, idempotency, delete, adoption.

Skipped (with the reason) only where Xvnc is not installed and CI is unset; in CI they run.
The desktop is pcmanfm where installed (and always in CI); elsewhere openbox alone.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from daaas.portal.providers import (
    CapacityExhausted,
    LaunchFailed,
    LaunchSpec,
    MachineGone,
    ProviderState,
)
from daaas.portal.providers.local import LocalProvider
from daaas.portal.providers.local.session import SessionPaths, display_free
from daaas.portal.providers.local.start import (
    managed_windows,
    root_property_length,
    window_manager_running,
)
from tests.support.environments import make_environment
from tests.support.local import (
    DESKTOP,
    PASSWORD,
    display_of,
    rfb_greeting,
    session_processes,
    socket_open,
    spec,
    vnc_socket,
    wait_state,
    xauthority_of,
)

if shutil.which("Xvnc") is None and not os.environ.get("CI"):
    pytest.skip("Xvnc is not installed (apt-get install tigervnc-standalone-server "
                "tigervnc-tools openbox pcmanfm); CI runs these tests",
                allow_module_level=True)


def dead(pid: int) -> bool:
    """True once ``pid`` has exited (gone, or a zombie), read from /proc/<pid>/stat."""
    try:
        return (Path("/proc") / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()[0] in "ZX"
    except OSError:
        return True


@pytest.fixture
def provider(tmp_path: Path) -> Iterator[LocalProvider]:
    local = LocalProvider(tmp_path / "var", desktop=DESKTOP, max_sessions=3)
    yield local
    cleaner = LocalProvider(tmp_path / "var", desktop=DESKTOP)
    cleaner.adopt_or_cleanup(set(), remove_homes=True)
    assert session_processes(local.sessions_dir) == {}, "a test left session processes behind"


def test_launch_becomes_ready_and_speaks_rfb(provider: LocalProvider) -> None:
    provider.launch(spec("m1"))
    print(f"READY after {wait_state(provider, 'm1', ProviderState.READY):.2f}s of polling")
    target = provider.connection_target("m1")
    assert target.vnc_socket and (target.host, target.vnc_port) == ("", 0)
    assert os.stat(target.vnc_socket).st_mode & 0o777 == 0o600
    assert re.fullmatch(rb"RFB 003\.00\d\n", rfb_greeting(target.vnc_socket))
    names = set(session_processes(provider.sessions_dir, "m1").values())
    assert {"Xvnc", "openbox"} <= names
    assert DESKTOP == "none" or "pcmanfm" in names
    assert provider.list_machine_ids() == {"m1"}
    assert provider.capacity().sessions_free == 2


def test_python_xlib_reads_what_the_launch_waits_for(provider: LocalProvider) -> None:
    provider.launch(spec("m1"))
    display, cookie = display_of(provider, "m1"), xauthority_of(provider, "m1")
    assert window_manager_running(display, cookie)
    managed = managed_windows(display, cookie)
    assert managed >= 1 if DESKTOP == "pcmanfm" else managed == 0
    assert root_property_length(display, cookie, "_DAAAS_NEVER_SET") == 0
    unused = next(number for number in range(99, 10, -1) if display_free(number))
    assert not window_manager_running(unused, cookie) and managed_windows(unused, cookie) == 0
    assert not window_manager_running(display, provider.sessions_dir / "no-cookie"), \
        "the display must refuse a client without the session's cookie"


def test_session_folder_holds_icons_password_and_state(provider: LocalProvider) -> None:
    provider.launch(spec("m1"))
    root = provider.sessions_dir / "m1"
    coot = root / "home" / "Desktop" / "daaas-coot.desktop"
    assert "Exec=/cvmfs/ccp4.example.org/bin/coot\n" in coot.read_text()
    assert os.stat(coot).st_mode & 0o111, "launchers must be executable to be trusted"
    assert (root / "home" / "Desktop" / "daaas-ccp4-shell.desktop").exists()
    password = SessionPaths.of(provider.sessions_dir, "m1").password
    assert password.parent == Path(vnc_socket(provider, "m1")).parent
    assert os.stat(password).st_mode & 0o777 == 0o600
    xvnc = next(pid for pid, name in session_processes(provider.sessions_dir).items()
                if name == "Xvnc")
    environ = (Path("/proc") / str(xvnc) / "environ").read_bytes().split(b"\0")
    assert f"HOME={root / 'home'}".encode() in environ
    assert os.getpgid(xvnc) == xvnc, "Xvnc must lead its own process group"
    for path in [root / "state.json", *(root / "logs").iterdir()]:
        assert PASSWORD.encode() not in path.read_bytes(), f"password leaked into {path}"


def test_launching_the_same_id_twice_leaves_one_xvnc(provider: LocalProvider,
                                                     tmp_path: Path) -> None:
    provider.launch(spec("m1"))
    provider.launch(spec("m1"))
    LocalProvider(tmp_path / "var", desktop=DESKTOP).launch(spec("m1"))  # a restarted worker
    names = list(session_processes(provider.sessions_dir, "m1").values())
    assert names.count("Xvnc") == 1 and names.count("openbox") == 1
    wait_state(provider, "m1", ProviderState.READY)


def test_delete_removes_every_process_and_closes_the_port(provider: LocalProvider) -> None:
    provider.launch(spec("m1"))
    vnc = vnc_socket(provider, "m1")
    root = provider.sessions_dir / "m1"
    # an application the user started that left the session's process group
    env = {**os.environ, "DAAAS_MACHINE_ID": "m1", "DAAAS_SESSIONS_DIR": str(provider.sessions_dir)}
    escapee = subprocess.Popen(["sleep", "300"], env=env, start_new_session=True)
    started = time.monotonic()
    provider.delete("m1")
    print(f"delete took {time.monotonic() - started:.2f}s")
    assert session_processes(provider.sessions_dir, "m1") == {}
    assert escapee.wait(timeout=5) == -signal.SIGTERM
    assert not socket_open(vnc) and not Path(vnc).parent.exists()
    assert not root.exists()
    assert provider.poll(["m1"])["m1"].state is ProviderState.GONE
    with pytest.raises(MachineGone):
        provider.connection_target("m1")
    provider.delete("m1")  # already gone: success


def test_restarted_portal_adopts_live_sessions_and_cleans_dead_ones(
        provider: LocalProvider, tmp_path: Path) -> None:
    for machine_id in ("alive", "dead", "unknown"):
        provider.launch(spec(machine_id))
    dead_xvnc = next(pid for pid, name in
                     session_processes(provider.sessions_dir, "dead").items() if name == "Xvnc")
    os.kill(dead_xvnc, signal.SIGKILL)
    deadline = time.monotonic() + 5
    while not dead(dead_xvnc):
        assert time.monotonic() < deadline, "SIGKILLed Xvnc still alive"
        time.sleep(0.02)

    restarted = LocalProvider(tmp_path / "var", desktop=DESKTOP, max_sessions=3)
    status = restarted.poll(["dead"])["dead"]
    assert status.state is ProviderState.ERROR and "stopped unexpectedly" in status.reason
    assert "Xvnc" in status.log_message and PASSWORD not in status.log_message
    assert {"alive", "unknown"} <= restarted.list_machine_ids()

    assert restarted.adopt_or_cleanup({"alive", "dead"}) == {"alive"}
    assert restarted.poll(["alive"])["alive"].state is ProviderState.READY
    remaining = session_processes(provider.sessions_dir)
    assert set(remaining.values()) >= {"Xvnc"}
    assert list(remaining.values()).count("Xvnc") == 1, remaining
    for machine_id in ("dead", "unknown"):
        assert session_processes(provider.sessions_dir, machine_id) == {}
        assert restarted.poll([machine_id])[machine_id].state is ProviderState.GONE
        assert (provider.sessions_dir / machine_id / "home" / "Desktop").is_dir()  # kept
        assert not SessionPaths.of(provider.sessions_dir, machine_id).password.exists()
    assert restarted.list_machine_ids() == {"alive"}


def test_capacity_limit_and_gpu_requests(provider: LocalProvider) -> None:
    for machine_id in ("a", "b", "c"):
        provider.launch(spec(machine_id))
    assert provider.capacity().sessions_free == 0
    with pytest.raises(CapacityExhausted):
        provider.launch(spec("d"))
    provider.launch(spec("a"))  # an existing id is not a new session
    provider.delete("c")
    gpu = LaunchSpec("g", "alice", 20000, 20000, make_environment(gpu="required"),
                     PASSWORD)
    with pytest.raises(CapacityExhausted) as raised:
        provider.launch(gpu)
    assert "GPU" in raised.value.user_message


def test_bad_geometry_fails_without_leaving_processes(provider: LocalProvider) -> None:
    with pytest.raises(LaunchFailed) as raised:
        provider.launch(spec("m1", geometry="huge"))
    assert "screen size" in raised.value.user_message
    assert session_processes(provider.sessions_dir) == {}
    assert not SessionPaths.of(provider.sessions_dir, "m1").password.exists()
    assert provider.poll(["m1"])["m1"].state is ProviderState.GONE


def test_xvnc_that_dies_at_start_is_a_readable_launch_failure(provider: LocalProvider) -> None:
    with pytest.raises(LaunchFailed) as raised:
        provider.launch(spec("m1", geometry="99999x99999"))  # Xvnc: "Couldn't add screen"
    assert raised.value.user_message == "The desktop server could not be started on this host."
    assert "Couldn't add screen" in raised.value.log_message
    assert PASSWORD not in raised.value.log_message
    assert session_processes(provider.sessions_dir) == {}
    assert not SessionPaths.of(provider.sessions_dir, "m1").password.exists()


def test_concurrent_launches_from_separate_portals_get_separate_displays(
        tmp_path: Path) -> None:
    providers = [LocalProvider(tmp_path / f"var{n}", desktop=DESKTOP) for n in range(3)]
    errors: list[BaseException] = []

    def launch(local: LocalProvider) -> None:
        try:
            local.launch(spec("same-id"))
        except BaseException as error:  # reported below, in the test's thread
            errors.append(error)

    threads = [threading.Thread(target=launch, args=(local,)) for local in providers]
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=60)
        assert errors == []
        displays = {display_of(local, "same-id") for local in providers}
        sockets = {vnc_socket(local, "same-id") for local in providers}
        assert len(displays) == len(sockets) == 3
        for local in providers:
            wait_state(local, "same-id", ProviderState.READY)
    finally:
        for local in providers:
            local.delete("same-id")
            assert session_processes(local.sessions_dir) == {}


def test_window_manager_only_session(tmp_path: Path) -> None:
    local = LocalProvider(tmp_path / "var", desktop="none")
    try:
        local.launch(spec("bare"))
        wait_state(local, "bare", ProviderState.READY)
        deadline = time.monotonic() + 5  # Xvnc forks a short-lived xkbcomp (named Xvnc
        while (names := sorted(session_processes(local.sessions_dir, "bare").values())) \
                != ["Xvnc", "openbox"] and time.monotonic() < deadline:  # until its exec)
            time.sleep(0.05)
        assert names == ["Xvnc", "openbox"]
    finally:
        local.delete("bare")
    assert session_processes(local.sessions_dir) == {}
