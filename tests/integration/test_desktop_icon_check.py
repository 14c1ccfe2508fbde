"""The desktop-icon check of tests/e2e/test_desktop_icons.py notices a broken launcher: one
whose program does not exist is reported before anything is clicked, and double-clicking it
opens no window of its application, so the check fails; the same check passes for a working
launcher. The clicks here go through XTest on the session's display (the e2e test's go
through noVNC in Chromium); the check itself (tests.support.desktop_icons) is the same.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from daaas.catalogue import Environment
from daaas.cvmfs.local_source import Program, build
from daaas.portal.providers import LaunchSpec
from daaas.portal.providers.local import LocalProvider
from tests.support.desktop_icons import (
    expected_windows,
    find_session,
    launcher_program,
    open_every_icon,
    x_double_click,
)
from tests.support.environments import make_environment, shipped
from tests.support.local import session_processes
from tests.support.software import local_software

if not (shutil.which("Xvnc") and shutil.which("pcmanfm")) and not os.environ.get("CI"):
    pytest.skip("Xvnc and pcmanfm are not installed; CI runs these tests",
                allow_module_level=True)

BROKEN = "/cvmfs/desktop.daaas.ac.uk/launchers/spreadsheet"


@pytest.fixture
def provider(tmp_path: Path) -> Iterator[LocalProvider]:
    """A local provider with the embedded default's software at /cvmfs (root only)."""
    local = LocalProvider(tmp_path / "var", desktop="pcmanfm")
    with local_software():
        yield local
        local.adopt_or_cleanup(set(), remove_homes=True)
    assert session_processes(local.sessions_dir) == {}


def one_app(name: str, command: str, icon: str) -> Environment:
    return make_environment(name=name, applications=[
        {"name": name.title(), "command": command, "icon": icon, "category": "Utility"}])


def launch(provider: LocalProvider, machine_id: str, environment: Environment) -> None:
    provider.launch(LaunchSpec(machine_id, "alice", 20000, 20000, environment, "Pw4-vnc!",
                               "1024x768"))


def test_a_launcher_pointing_at_nothing_fails_the_icon_check(provider: LocalProvider) -> None:
    editor = next(app.command for app in shipped("base-desktop").applications
                  if app.name == "Text Editor")
    launch(provider, "good", one_app("editor", editor, "accessories-text-editor"))
    good = find_session("good")
    assert expected_windows(good) == ["Mousepad"]
    assert open_every_icon(good, ["Mousepad"], lambda x, y: x_double_click(good, x, y)) == \
        ["Mousepad"]  # the check passes for a working icon (so its clicks do reach the desktop)
    provider.delete("good")

    launch(provider, "broken", one_app("spreadsheet", BROKEN, "x-office-spreadsheet"))
    broken = find_session("broken")
    with pytest.raises(AssertionError, match=f"points at {BROKEN}, which does not exist"):
        expected_windows(broken)  # found before anything is clicked
    with pytest.raises(AssertionError) as failed:  # and clicking it shows no spreadsheet
        open_every_icon(broken, ["Gnumeric"], lambda x, y: x_double_click(broken, x, y),
                        timeout=10)
    message = str(failed.value)
    assert "opened no window" in message or "not one of ['Gnumeric']" in message, message


def test_a_launcher_found_through_a_software_root_opens_its_window(tmp_path: Path) -> None:
    """A portal that cannot mount /cvmfs (not root) finds the program in its software roots:
    the environment is offered, its icon names the program found, and it opens its window."""
    repository = "sw.roots-test.example.org"
    roots = tmp_path / "roots"
    build(roots, [Program(repository, "bin/editor", ("mousepad",), "mousepad", "Mousepad")])
    assert not Path("/cvmfs", repository).exists()
    environment = one_app("editor", f"/cvmfs/{repository}/bin/editor",
                          "accessories-text-editor")
    local = LocalProvider(tmp_path / "var", desktop="pcmanfm", software_roots=[roots])
    assert LocalProvider(tmp_path / "var2").unavailable_reason(environment) is not None
    assert local.unavailable_reason(environment) is None
    try:
        launch(local, "rooted", environment)
        session = find_session("rooted")
        [launcher] = [item for item in (session.home / "Desktop").iterdir()
                      if item.suffix == ".desktop"]
        assert launcher_program(launcher) == str(roots / repository / "bin" / "editor")
        assert open_every_icon(session, ["Mousepad"],
                               lambda x, y: x_double_click(session, x, y)) == ["Mousepad"]
    finally:
        local.adopt_or_cleanup(set(), remove_homes=True)
    assert session_processes(local.sessions_dir) == {}
