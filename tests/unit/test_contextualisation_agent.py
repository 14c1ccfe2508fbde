"""The bootstrap agent, run for real against a local HTTP server standing in for the portal.

Only the system commands that need root (chpasswd, systemctl, mount) are replaced, by scripts on
$PATH that record what they were given; vncpasswd is the real one when installed.
"""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from daaas.contextualisation import AGENT_SOURCE, bootstrap_document, context_from_parts
from tests.support.environments import make_environment

TOKEN = "tok_" + "Q1w2E3r4" * 4
REPORT_TOKEN = "report-Xy12"
VNC_PASSWORD = "vncPass1"
RDP_PASSWORD = "rdp pass: with spaces"
MACHINE = "m-42"


@dataclass
class Portal:
    """What the fake portal answers and what it was sent."""

    bootstrap_answers: list[tuple[int, dict[str, Any]]]
    requests: list[tuple[str, dict[str, str], dict[str, Any]]] = field(default_factory=list)
    url: str = ""

    def calls(self, suffix: str) -> list[tuple[str, dict[str, str], dict[str, Any]]]:
        return [request for request in self.requests if request[0].endswith(suffix)]


@pytest.fixture
def portal() -> Iterator[Portal]:
    state = Portal(bootstrap_answers=[])

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            state.requests.append((self.path, dict(self.headers), body))
            status, answer = 200, dict[str, Any]()
            if self.path.endswith("/bootstrap") and state.bootstrap_answers:
                status, answer = state.bootstrap_answers.pop(0)
            payload = json.dumps(answer).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    state.url = f"http://127.0.0.1:{server.server_address[1]}/portal"
    yield state
    server.shutdown()
    server.server_close()
    thread.join(timeout=5)


@pytest.fixture
def machine(tmp_path: Path) -> dict[str, Path]:
    """Folders standing in for the VM's /home, /etc/ceph, /cvmfs, plus stub commands."""
    paths = {name: tmp_path / name for name in ("home", "secrets", "cvmfs", "bin", "log", "mnt")}
    for path in paths.values():
        path.mkdir()
    (paths["cvmfs"] / "ccp4.example.org").mkdir()
    for command in ("chpasswd", "systemctl", "mount"):
        script = paths["bin"] / command
        script.write_text(f'#!/bin/sh\necho "$*" >> "{paths["log"]}/{command}.args"\n'
                          f'cat >> "{paths["log"]}/{command}.stdin"\n')
        script.chmod(0o755)
    if not shutil.which("vncpasswd"):
        fake = paths["bin"] / "vncpasswd"
        fake.write_text("#!/bin/sh\nhead -c 8 | od -An -tx1\n")
        fake.chmod(0o755)
    return paths


def write_config(portal: Portal, machine: dict[str, Path], **changes: Any) -> Path:
    """The document the renderer puts in user-data, its paths pointed at the test folders."""
    environment = make_environment(name="ccp4", protocols=["novnc", "rdp"], applications=[],
                                   cvmfs_repositories=["ccp4.example.org"])
    ctx = context_from_parts({"username": "alice", "uid": 20001, "gid": 20001}, MACHINE,
                             environment, {"callback_url": portal.url}, bootstrap_token=TOKEN)
    document = bootstrap_document(ctx)
    home = machine["home"] / "alice"
    home.mkdir(exist_ok=True)
    document["user"].update(uid=os.getuid(), gid=os.getgid(), home=str(home))
    document.update(vnc_password_file=str(home / ".vnc" / "passwd"),
                    secret_dirs=[str(machine["secrets"])], cvmfs_root=str(machine["cvmfs"]),
                    retry={"initial_delay": 0.05, "max_delay": 0.2, "attempts": 4, "timeout": 5})
    document.update(changes)
    path = machine["home"].parent / "bootstrap.json"
    path.write_text(json.dumps(document))
    path.chmod(0o600)
    return path


def run_agent(config: Path, machine: dict[str, Path]) -> subprocess.CompletedProcess[str]:
    # Run the file itself (its #! line names the image's /usr/bin/python3) when it can.
    command = [str(AGENT_SOURCE)] if os.path.exists("/usr/bin/python3") \
        else [sys.executable, str(AGENT_SOURCE)]
    env = {**os.environ, "PATH": f"{machine['bin']}:{os.environ.get('PATH', '/usr/bin:/bin')}"}
    return subprocess.run([*command, "--config", str(config)], env=env, capture_output=True,
                          text=True, timeout=60)


def secrets_answer(**extra: Any) -> dict[str, Any]:
    return {"vnc_password": VNC_PASSWORD, "rdp_password": RDP_PASSWORD,
            "report_token": REPORT_TOKEN, **extra}


def log_of(machine: dict[str, Path], name: str) -> str:
    path = machine["log"] / name
    return path.read_text() if path.exists() else ""


def test_retries_a_503_installs_secrets_and_reports_ready(
        portal: Portal, machine: dict[str, Path]) -> None:
    key_file = machine["secrets"] / "alice.secret"
    portal.bootstrap_answers = [(503, {}), (200, secrets_answer(files=[
        {"path": str(key_file), "content": "AQD-ceph-key==", "mode": "0400"}]))]
    # set_login_password as an older portal's document says it (the agent still honours it)
    done = run_agent(write_config(portal, machine, set_login_password=True), machine)
    assert done.returncode == 0, done.stderr

    bootstrap_calls = portal.calls(f"/portal/api/v1/context/{MACHINE}/bootstrap")
    assert len(bootstrap_calls) == 2  # the 503, then the retry
    assert all(body == {"token": TOKEN} for _, _, body in bootstrap_calls)
    assert "retry 1/3" in done.stderr

    [(_, headers, body)] = portal.calls(f"/portal/api/v1/context/{MACHINE}/status")
    assert body == {"status": "ready"}
    assert headers["Authorization"] == f"Bearer {REPORT_TOKEN}"

    vnc_file = machine["home"] / "alice" / ".vnc" / "passwd"
    assert stat.S_IMODE(vnc_file.stat().st_mode) == 0o600
    assert VNC_PASSWORD.encode() not in vnc_file.read_bytes()
    assert log_of(machine, "chpasswd.stdin") == f"alice:{RDP_PASSWORD}\n"
    assert key_file.read_text() == "AQD-ceph-key=="
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o400
    enabled = log_of(machine, "systemctl.args").splitlines()
    assert "enable --now tigervncserver@:1.service --no-reload" in enabled
    assert "enable --now xrdp.service --no-reload" in enabled
    assert "disable --now ssh.service --no-reload" in enabled
    for secret in (VNC_PASSWORD, RDP_PASSWORD, TOKEN):
        assert secret not in done.stderr + done.stdout


def test_a_refused_token_is_not_retried_and_is_reported_failed(
        portal: Portal, machine: dict[str, Path]) -> None:
    portal.bootstrap_answers = [(403, {"error": "token already used"})]
    done = run_agent(write_config(portal, machine), machine)
    assert done.returncode == 1
    assert len(portal.calls("/bootstrap")) == 1
    [(_, headers, body)] = portal.calls("/status")
    assert body["status"] == "failed" and "HTTP 403" in body["reason"]
    assert headers["Authorization"] == f"Bearer {TOKEN}"
    assert log_of(machine, "systemctl.args") == ""


def test_a_file_outside_the_secret_folders_fails_the_machine(
        portal: Portal, machine: dict[str, Path], tmp_path: Path) -> None:
    outside = tmp_path / "elsewhere" / "authorized_keys"
    portal.bootstrap_answers = [(200, secrets_answer(
        files=[{"path": f"{machine['secrets']}/../elsewhere/authorized_keys", "content": "x"}]))]
    done = run_agent(write_config(portal, machine), machine)
    assert done.returncode == 1
    assert not outside.exists()
    [(_, _, body)] = portal.calls("/status")
    assert body["status"] == "failed" and "outside" in body["reason"]


def test_unmounted_storage_is_mounted_and_a_missing_repository_fails(
        portal: Portal, machine: dict[str, Path]) -> None:
    portal.bootstrap_answers = [(200, secrets_answer())]
    config = write_config(portal, machine, mounts=[str(machine["mnt"])],
                          cvmfs_repositories=["ccp4.example.org", "gone.example.org"])
    done = run_agent(config, machine)
    assert done.returncode == 1
    assert log_of(machine, "mount.args").splitlines() == [str(machine["mnt"])]
    [(_, _, body)] = portal.calls("/status")
    assert "gone.example.org" in body["reason"]


def test_an_unreachable_portal_gives_up_after_the_configured_attempts(
        machine: dict[str, Path]) -> None:
    unreachable = Portal(bootstrap_answers=[], url="http://127.0.0.1:9/portal")
    done = run_agent(write_config(unreachable, machine), machine)
    assert done.returncode == 1
    assert "bootstrap exchange failed after 4 attempts" in done.stderr


def test_an_unreadable_configuration_exits_2(tmp_path: Path, machine: dict[str, Path]) -> None:
    done = run_agent(tmp_path / "missing.json", machine)
    assert done.returncode == 2 and "cannot read" in done.stderr
