"""A real `daaas worker` killed with SIGKILL between launch and record leaves one session."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from daaas.portal.auth.service import get_user
from daaas.portal.config import load_settings
from daaas.portal.db import make_engine, make_session_factory, unit_of_work
from daaas.portal.machines import service
from daaas.portal.machines.models import Machine
from daaas.portal.providers.local import LocalProvider
from tests.integration.process_scan import session_processes
from tests.support.paths import ROOT

pytestmark = pytest.mark.skipif(not Path("/usr/bin/Xvnc").exists() and not os.environ.get("CI"),
                                reason="TigerVNC (Xvnc) not installed")


def start_worker(override: dict[str, Any], provider: str) -> subprocess.Popen[bytes]:
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("DAAAS_")},
           "DAAAS_DATABASE_URL": override["database_url"], "DAAAS_VAR_DIR": override["var_dir"],
           "DAAAS_SECRET_KEY": override["secret_key"], "DAAAS_PROVIDER": provider,
           "DAAAS_RECONCILE_INTERVAL_SECONDS": "0.3"}
    return subprocess.Popen([sys.executable, "-c", "from daaas.portal.cli import main; main()",
                             "worker"], cwd=ROOT, env=env)


def wait_for(check: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.fixture
def requested_machine(settings_override: dict[str, Any]) -> Iterator[str]:
    settings = load_settings(settings_override, environ={})
    factory = make_session_factory(make_engine(settings.effective_database_url))
    from daaas.catalogue import load_catalogue

    with unit_of_work(factory) as db:
        machine = service.request_launch(db, settings, load_catalogue(Path(settings.catalogue_dir)),
                                         get_user(db, "scientist"), "base-desktop")
        machine_id = machine.id
    yield machine_id
    LocalProvider(var_dir=settings.var_dir).delete(machine_id)
    assert session_processes(machine_id) == []


def state_of(url: str, machine_id: str) -> str:
    with make_session_factory(make_engine(url))() as db:
        return db.scalar(select(Machine.state).where(Machine.id == machine_id)) or ""


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
