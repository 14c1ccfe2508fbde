"""The VM activity agent (contextualisation/agent/daaas-activity) against the real portal
served over HTTP: it measures this host's real CPU use (/proc/stat) and sessions, reports with
the machine's report token, and the portal records it (an active report holds off the idle
stop: tests/integration/test_lifetime_homes.py); a wrong token is refused, a missing
configuration says so."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from werkzeug.serving import make_server

from daaas import package_path
from daaas.portal import create_app
from daaas.portal.bootstrap.models import MachineContext
from daaas.portal.db import unit_of_work, utcnow
from daaas.portal.machines.activity import MachineActivity
from daaas.portal.machines.secrets import token_digest
from tests.support.machines import ManualClock, launch, policy_reconciler
from tests.support.providers import InMemoryProvider

AGENT = Path(str(package_path("daaas.contextualisation", "agent"))) / "daaas-activity"


@pytest.fixture
def served_app(settings_override: dict[str, Any]) -> Iterator[tuple[Flask, str]]:
    app = create_app({**settings_override, "provider": "memory",
                      "vm_idle_cpu_percent": 0.0})
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield app, f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    thread.join(timeout=10)


def run_agent(tmp_path: Path, url: str, machine_id: str,
              token: str) -> subprocess.CompletedProcess[str]:
    (tmp_path / "report-token").write_text(token + "\n")
    config = tmp_path / "bootstrap.json"
    config.write_text(json.dumps({"callback_url": url, "machine_id": machine_id,
                                  "report_token_file": str(tmp_path / "report-token")}))
    return subprocess.run([sys.executable, str(AGENT), "--config", str(config),
                           "--sample", "0.5"], capture_output=True, text=True, timeout=60)


def test_the_agent_reports_real_cpu_use_with_the_report_token(
        served_app: tuple[Flask, str], tmp_path: Path) -> None:
    app, url = served_app
    machine_id = launch(app, environment="ccp4")
    policy_reconciler(app, ManualClock(), InMemoryProvider(ready_after_polls=1)).run_once()
    with unit_of_work(app.extensions["daaas"].session_factory) as db:
        db.add(MachineContext(machine_id=machine_id, token_hash=token_digest("bootstrap"),
                              expires_at=utcnow() + timedelta(hours=1), used_at=utcnow(),
                              report_token_hash=token_digest("report-secret"),
                              reported_status="ready"))
    done = run_agent(tmp_path, url, machine_id, "report-secret")
    assert done.returncode == 0, done.stderr
    assert "daaas-activity: cpu " in done.stderr
    with app.extensions["daaas"].session_factory() as db:
        row = db.get(MachineActivity, machine_id)
        assert row is not None and row.vm_reported_at is not None
        assert row.vm_cpu_percent is not None and row.vm_cpu_percent >= 0
        assert row.vm_detail.startswith("load ")
        # this host's CPU is never exactly idle for half a second with the threshold at 0
        assert ("active" in done.stderr) == (row.vm_active_at is not None)

    refused = run_agent(tmp_path, url, machine_id, "bootstrap")
    assert refused.returncode == 1 and "HTTP 403" in refused.stderr


def test_the_agent_without_a_configuration_says_so(tmp_path: Path) -> None:
    done = subprocess.run([sys.executable, str(AGENT), "--config", str(tmp_path / "none.json")],
                          capture_output=True, text=True, timeout=30)
    assert done.returncode == 2 and "no usable configuration" in done.stderr


def test_the_bootstrap_agent_keeps_the_report_token_for_the_activity_agent(
        tmp_path: Path) -> None:
    import importlib.machinery
    import importlib.util

    loader = importlib.machinery.SourceFileLoader("daaas_bootstrap_agent",
                                                  str(AGENT.with_name("daaas-bootstrap")))
    spec = importlib.util.spec_from_loader(loader.name, loader)
    assert spec is not None
    agent = importlib.util.module_from_spec(spec)
    loader.exec_module(agent)
    secrets = tmp_path / "secrets"
    agent.keep_report_token({"secret_dirs": [str(secrets), "/etc/ceph"]}, "report-secret")
    kept = secrets / "report-token"
    assert kept.read_text() == "report-secret" and kept.stat().st_mode & 0o777 == 0o600
    agent.keep_report_token({"secret_dirs": []}, "other")  # nowhere to keep it: nothing
    assert kept.read_text() == "report-secret"
