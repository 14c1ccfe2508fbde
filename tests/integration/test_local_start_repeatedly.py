"""Desktop start-up is reliable (issue 14, point 0): in ONE process, a local desktop is started
and ended again and again, and every start reaches a managed desktop window.

On a real kernel, pcmanfm's desktop window used to be left unmapped in some starts (a black
screen, "showed no window after 3 tries") while the first start of a test run passed: so this
runs many starts in a row in one process, fresh launches and stop/start of one desktop,
and checks each through the X server (the window manager's client list), not only the
provider's word. Skipped where Xvnc or pcmanfm is not installed (CI runs it).
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from daaas.portal.providers import ProviderState
from daaas.portal.providers.local import LocalProvider
from tests.support.local import display_of, session_processes, spec, wait_state, xauthority_of
from tests.support.software import client_windows, wait_for_windows

ROUNDS = 5
#: The class of pcmanfm's desktop window (the icons and background)
DESKTOP_WINDOW = "Pcmanfm"

if not (shutil.which("Xvnc") and shutil.which("pcmanfm")) and not os.environ.get("CI"):
    pytest.skip("Xvnc and pcmanfm are not installed (apt-get install "
                "tigervnc-standalone-server pcmanfm); CI runs these tests",
                allow_module_level=True)


@pytest.fixture
def local(tmp_path: Path) -> Iterator[LocalProvider]:
    provider = LocalProvider(tmp_path / "var", desktop="pcmanfm", max_sessions=2)
    yield provider
    provider.adopt_or_cleanup(set(), remove_homes=True)
    assert session_processes(provider.sessions_dir) == {}, "a test left session processes behind"


def desktop_window(local: LocalProvider, machine_id: str) -> dict[int, str]:
    """Wait (briefly) for the desktop's window in the window manager's list; return the list."""
    display, cookie = display_of(local, machine_id), xauthority_of(local, machine_id)
    return wait_for_windows(display, cookie, lambda now: DESKTOP_WINDOW in now.values(), 5)


def test_every_fresh_start_reaches_a_desktop_window(local: LocalProvider) -> None:
    took = []
    for round_number in range(ROUNDS):
        machine_id = f"again{round_number}"
        started = time.monotonic()
        local.launch(spec(machine_id))
        took.append(round(time.monotonic() - started, 1))
        assert local.poll([machine_id])[machine_id].state is ProviderState.READY
        windows = desktop_window(local, machine_id)
        assert DESKTOP_WINDOW in windows.values(), (round_number, windows, took)
        local.delete(machine_id)
        assert session_processes(local.sessions_dir, machine_id) == {}
    print(f"{ROUNDS} launches took {took} s")


def test_every_start_after_a_stop_reaches_a_desktop_window(local: LocalProvider) -> None:
    local.launch(spec("kept"))
    assert DESKTOP_WINDOW in desktop_window(local, "kept").values()
    for round_number in range(ROUNDS):
        local.stop("kept")
        assert local.poll(["kept"])["kept"].state is ProviderState.STOPPED
        assert session_processes(local.sessions_dir, "kept") == {}
        local.start(spec("kept"))
        wait_state(local, "kept", ProviderState.READY)
        windows = desktop_window(local, "kept")
        assert DESKTOP_WINDOW in windows.values(), (round_number, windows)
    assert client_windows(display_of(local, "kept"), xauthority_of(local, "kept"))
