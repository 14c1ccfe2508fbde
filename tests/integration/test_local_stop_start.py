"""Stop and start with the REAL local provider (Xvnc, openbox, pcmanfm) and the real reconciler.

Skipped (with the reason) only where Xvnc is not installed and CI is unset; in CI they run.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from flask import Flask

from daaas.portal.auth.service import get_user
from daaas.portal.db import unit_of_work
from daaas.portal.machines import service
from daaas.portal.providers import LaunchFailed, MachineGone, ProviderState
from daaas.portal.providers.local import LocalProvider
from daaas.portal.providers.local.session import SessionPaths
from tests.support.local import (
    DESKTOP,
    rfb_greeting,
    session_processes,
    socket_open,
    spec,
    vnc_socket,
    wait_state,
)
from tests.support.machines import launch, machine, reconciler


@pytest.fixture
def local(tmp_path: Path) -> Iterator[LocalProvider]:
    provider = LocalProvider(tmp_path / "var", desktop=DESKTOP, max_sessions=3)
    yield provider
    for machine_id in provider.list_machine_ids() | {"m1", "m2"}:
        provider.delete(machine_id)
    assert session_processes(provider.sessions_dir) == {}, "a test left session processes behind"


def speaks_rfb(path: str) -> bool:
    return re.fullmatch(rb"RFB 003\.00\d\n", rfb_greeting(path)) is not None


def test_stop_ends_the_processes_keeps_the_home_and_start_brings_the_desktop_back(
        local: LocalProvider) -> None:
    local.launch(spec("m1"))
    wait_state(local, "m1", ProviderState.READY)
    vnc = vnc_socket(local, "m1")
    home = local.sessions_dir / "m1" / "home"
    (home / "results.txt").write_text("refined model, cycle 12\n")

    local.stop("m1")
    assert session_processes(local.sessions_dir, "m1") == {}
    assert not socket_open(vnc)
    assert local.poll(["m1"])["m1"].state is ProviderState.STOPPED  # not GONE, not ERROR
    assert local.list_machine_ids() == set() and local.capacity().sessions_free == 3
    with pytest.raises(MachineGone):
        local.connection_target("m1")
    assert not SessionPaths.of(local.sessions_dir, "m1").password.exists()
    local.stop("m1")  # already stopped: success

    local.start(spec("m1"))
    wait_state(local, "m1", ProviderState.READY)
    assert speaks_rfb(vnc_socket(local, "m1"))
    assert (home / "results.txt").read_text() == "refined model, cycle 12\n"
    assert (home / "Desktop" / "daaas-coot.desktop").exists()
    names = list(session_processes(local.sessions_dir, "m1").values())
    assert names.count("Xvnc") == 1 and names.count("openbox") == 1
    local.start(spec("m1"))  # running: success, nothing doubled
    assert list(session_processes(local.sessions_dir, "m1").values()).count("Xvnc") == 1


def test_a_failed_start_leaves_the_session_stopped_with_its_home(local: LocalProvider) -> None:
    local.launch(spec("m1"))
    home = local.sessions_dir / "m1" / "home"
    (home / "keep.txt").write_text("x")
    local.stop("m1")
    with pytest.raises(LaunchFailed):
        local.start(spec("m1", geometry="huge"))
    assert local.poll(["m1"])["m1"].state is ProviderState.STOPPED
    assert (home / "keep.txt").exists() and session_processes(local.sessions_dir, "m1") == {}


def test_unknown_sessions_cannot_be_stopped_or_started(local: LocalProvider) -> None:
    for call in (lambda: local.stop("m2"), lambda: local.start(spec("m2"))):
        with pytest.raises(MachineGone):
            call()
    assert not (local.sessions_dir / "m2").exists()


def test_delete_of_a_stopped_session_removes_its_folder(local: LocalProvider) -> None:
    local.launch(spec("m1"))
    local.stop("m1")
    local.delete("m1")
    assert not (local.sessions_dir / "m1").exists()
    assert local.poll(["m1"])["m1"].state is ProviderState.GONE


def test_the_reconciler_stops_and_starts_a_real_desktop(app: Flask, local: LocalProvider) -> None:
    worker = reconciler(app, local)
    machine_id = launch(app, environment="base-desktop")
    for _ in range(40):
        worker.run_once()
        if machine(app, machine_id).state == "ready":
            break
    assert machine(app, machine_id).state == "ready"
    home = local.sessions_dir / machine_id / "home"
    (home / "notes.txt").write_text("kept")
    rt = app.extensions["daaas"]
    with unit_of_work(rt.session_factory) as db:
        service.request_stop(db, get_user(db, "scientist"), machine_id, local)
    worker.run_once()  # stops the processes
    worker.run_once()  # sees them stopped
    assert machine(app, machine_id).state == "stopped"
    assert session_processes(local.sessions_dir, machine_id) == {}
    with unit_of_work(rt.session_factory) as db:
        service.request_start(db, get_user(db, "scientist"), machine_id, local)
    for _ in range(40):
        worker.run_once()
        if machine(app, machine_id).state == "ready":
            break
    assert machine(app, machine_id).state == "ready"
    assert speaks_rfb(vnc_socket(local, machine_id))
    assert (home / "notes.txt").read_text() == "kept"
    local.delete(machine_id)
