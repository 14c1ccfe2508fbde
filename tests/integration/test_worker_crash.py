"""A real `daaas worker` killed with SIGKILL between launch and record leaves one session."""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from daaas.portal.providers.local import LocalProvider
from tests.integration.process_scan import session_processes
from tests.support.machines import launch_from_settings, start_worker, state_of, wait_for

pytestmark = pytest.mark.skipif(not Path("/usr/bin/Xvnc").exists() and not os.environ.get("CI"),
                                reason="TigerVNC (Xvnc) not installed")


@pytest.fixture
def requested_machine(settings_override: dict[str, Any]) -> Iterator[str]:
    machine_id = launch_from_settings(settings_override)
    yield machine_id
    LocalProvider(var_dir=settings_override["var_dir"]).delete(machine_id)
    assert session_processes(machine_id) == []


def test_sigkill_between_launch_and_record_leaves_one_session(
        settings_override: dict[str, Any], requested_machine: str) -> None:
    url, var_dir = settings_override["database_url"], Path(settings_override["var_dir"])
    first = start_worker(settings_override, "tests.integration.crash_provider:PauseAfterLaunch")
    try:
        wait_for(lambda: (var_dir / f"launched-{requested_machine}").exists(), 60,
                 "the first worker's launch")
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait(10)
    assert state_of(url, requested_machine) == "requested"
    assert len([p for p in session_processes(requested_machine) if p.name == "Xvnc"]) == 1
    second = start_worker(settings_override, "local")
    try:
        wait_for(lambda: state_of(url, requested_machine) == "ready", 60, "ready")
    finally:
        second.terminate()
        second.wait(30)
    xvnc = [p for p in session_processes(requested_machine) if p.name == "Xvnc"]
    assert len(xvnc) == 1, xvnc
