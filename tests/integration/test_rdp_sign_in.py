"""RDP sign-in without a password: the portal signs a one-time secret, the VM's PAM module
(contextualisation/agent/daaas-rdp-sign-in, run by pam_exec) checks it offline.

The verifier runs as a process with its settings as the bootstrap exchange delivers them, and
once through a real PAM stack (a PAM service file with pam_exec and Debian's pamtester, as
root, for a throwaway local account).
"""

from __future__ import annotations

import base64
import dataclasses
import json
import os
import shutil
import subprocess
import sys
import uuid
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from daaas.contextualisation import AGENT_SOURCE
from daaas.portal import create_app
from daaas.portal.access.models import RdpSignIn
from daaas.portal.access.signin import MAX_SECRET, MID_CHARS, sign_token, verifier_settings
from daaas.portal.audit.models import AuditEvent
from daaas.portal.config import resolve_secret_key
from daaas.portal.db import unit_of_work, utcnow
from daaas.portal.machines.models import Machine
from tests.support.access import FixedTarget, free_port, make_machine
from tests.support.rfb import Xvnc
from tests.support.web import assert_matches, bearer, csrf_from, sign_in

VERIFIER = AGENT_SOURCE.parent / "daaas-rdp-sign-in"
PYTHON = "/usr/bin/python3" if subprocess.run(
    ["/usr/bin/python3", "-c", "import cryptography"], capture_output=True,
    check=False).returncode == 0 else sys.executable


@pytest.fixture
def rdp_app(settings_override: dict[str, Any]) -> Iterator[Flask]:
    """A portal whose machines all have an RDP port (what the OpenStack provider gives)."""
    app = create_app(settings_override)
    runtime = app.extensions["daaas"]
    app.extensions["daaas"] = dataclasses.replace(
        runtime, provider=FixedTarget(vnc_port=5901, rdp_port=3389, host="10.0.0.5"))
    yield app
    runtime.engine.dispose()


def vm_config(app: Flask, machine_id: str, tmp_path: Path) -> Path:
    """The verifier's settings file as the bootstrap exchange hands it to the machine."""
    with unit_of_work(app.extensions["daaas"].session_factory) as db:
        machine = db.get(Machine, machine_id)
        assert machine is not None
        config = verifier_settings(resolve_secret_key(app.extensions["daaas"].settings), machine)
    assert config is not None
    config["nonce_dir"] = str(tmp_path / f"nonces-{machine_id[:6]}")
    path = tmp_path / f"rdp-sign-in-{machine_id[:6]}.json"
    path.write_text(json.dumps(config))
    return path


def verify(config: Path, user: str, secret: str) -> subprocess.CompletedProcess[str]:
    """Run the verifier as pam_exec does: $PAM_USER, $PAM_TYPE, the password and a NUL."""
    env = {"PATH": "/usr/bin:/bin", "PAM_USER": user, "PAM_TYPE": "auth"}
    return subprocess.run([PYTHON, str(VERIFIER), "--config", str(config)],
                          input=secret + "\0", env=env, capture_output=True, text=True,
                          timeout=30, check=False)


def new_secret(app: Flask, client: FlaskClient, machine_id: str,
               user: str = "scientist") -> dict[str, Any]:
    response = client.post(f"/api/v1/machines/{machine_id}/rdp-sign-in", headers=bearer(app, user))
    assert response.status_code == 201, response.get_data(as_text=True)
    assert response.headers["Cache-Control"] == "no-store"
    body: dict[str, Any] = response.get_json()
    assert_matches(body, "RdpSignIn")
    return body


def test_a_secret_signs_in_once_and_is_refused_again(rdp_app: Flask, tmp_path: Path) -> None:
    client = rdp_app.test_client()
    machine_id = make_machine(rdp_app, "scientist")
    body = new_secret(rdp_app, client, machine_id)
    # RDP carries at most 255 characters of password (xrdp drops a longer one's connection)
    assert body["username"] == "scientist" and len(body["secret"]) <= MAX_SECRET
    config = vm_config(rdp_app, machine_id, tmp_path)

    first = verify(config, "scientist", body["secret"])
    assert first.returncode == 0, first.stderr
    again = verify(config, "scientist", body["secret"])
    assert again.returncode == 1 and "already used" in again.stderr
    assert body["secret"] not in first.stderr + again.stderr
    assert body["secret"].split(".")[2] not in first.stderr + again.stderr

    with unit_of_work(rdp_app.extensions["daaas"].session_factory) as db:
        [row] = db.scalars(select(RdpSignIn)).all()
        recorded = f"{row.nonce} {row.machine_id} {row.user_id} {row.expires_at}"
    assert row.machine_id == machine_id and body["secret"] not in recorded
    nonce = json.loads(base64.urlsafe_b64decode(body["secret"].split(".")[1] + "=="))["nonce"]
    assert row.nonce == nonce and (tmp_path / f"nonces-{machine_id[:6]}" / nonce).exists()
    with unit_of_work(rdp_app.extensions["daaas"].session_factory) as db:
        [event] = db.scalars(select(AuditEvent).where(
            AuditEvent.action == "desktop.rdp_sign_in")).all()
        assert (event.actor, event.target) == ("scientist", f"machine {machine_id}")
        assert body["secret"] not in event.detail and nonce not in event.detail


def test_tampered_expired_foreign_and_misdirected_secrets_are_refused(
        rdp_app: Flask, tmp_path: Path) -> None:
    client = rdp_app.test_client()
    machine_id, other_id = make_machine(rdp_app, "scientist"), make_machine(rdp_app, "scientist")
    config = vm_config(rdp_app, machine_id, tmp_path)
    key = resolve_secret_key(rdp_app.extensions["daaas"].settings)
    now = int(utcnow().timestamp())
    claims = {"sub": "scientist", "mid": machine_id[:MID_CHARS], "nonce": "n" * 16,
              "exp": now + 300}
    # the longest POSIX user name still fits in an RDP password
    assert len(sign_token(key, {**claims, "sub": "u" * 32})) <= MAX_SECRET

    head, _, signature = sign_token(key, claims).split(".")
    forged = base64.urlsafe_b64encode(json.dumps({**claims, "sub": "admin"}).encode())
    tampered = f"{head}.{forged.decode().rstrip('=')}.{signature}"
    cases = {
        "bad signature": [(tampered, "admin"), (sign_token("another-portal", claims),
                                                  "scientist")],
        "token expired": [(sign_token(key, {**claims, "exp": now - 600}), "scientist")],
        "issued in the future": [(sign_token(key, {**claims, "iat": now + 900}), "scientist")],
        "another machine": [(new_secret(rdp_app, client, other_id)["secret"], "scientist")],
        "another user": [(sign_token(key, claims), "neutron")],
        "not a sign-in token": [("scientist-demo", "scientist")],
        "malformed": [(f"{head}.!!!.{signature}", "scientist")],
    }
    for reason, attempts in cases.items():
        for secret, user in attempts:
            done = verify(config, user, secret)
            assert done.returncode == 1, (reason, done.stderr)
            assert reason in done.stderr, (reason, done.stderr)
    assert verify(config, "scientist", sign_token(key, claims)).returncode == 0


def test_the_page_shows_the_secret_once_with_the_download(rdp_app: Flask, tmp_path: Path) -> None:
    client = rdp_app.test_client()
    machine_id = make_machine(rdp_app, "scientist")
    sign_in(client, "scientist", "scientist-demo")
    machine_page = client.get(f"/machines/{machine_id}").get_data(as_text=True)
    assert f'action="/machines/{machine_id}/rdp-sign-in"' in machine_page
    token = csrf_from(client, f"/machines/{machine_id}")
    response = client.post(f"/machines/{machine_id}/rdp-sign-in", data={"csrf_token": token})
    assert response.status_code == 201 and response.headers["Cache-Control"] == "no-store"
    page = response.get_data(as_text=True)
    assert f'href="/machines/{machine_id}/rdp"' in page and 'id="rdp-user">scientist<' in page
    secret = page.split('id="rdp-secret">')[1].split("<")[0]
    assert verify(vm_config(rdp_app, machine_id, tmp_path), "scientist", secret).returncode == 0
    assert secret not in client.get(f"/machines/{machine_id}").get_data(as_text=True)
    assert secret not in client.get(f"/machines/{machine_id}/rdp").get_data(as_text=True)


def file_with_the_password(client: FlaskClient, machine_id: str) -> tuple[str, str, str]:
    """Ask the machine page's form for the password in the .rdp file; return (the secret
    shown, the file's name, the file's text as the page's download link holds it)."""
    token = csrf_from(client, f"/machines/{machine_id}")
    response = client.post(f"/machines/{machine_id}/rdp-sign-in",
                           data={"csrf_token": token, "in_file": "1"})
    assert response.status_code == 201 and response.headers["Cache-Control"] == "no-store"
    page = response.get_data(as_text=True)
    secret = page.split('id="rdp-secret">')[1].split("<")[0]
    link = page.split('id="rdp-download" href="')[1].split('"')[0]
    name = page.split(f'href="{link}" download="')[1].split('"')[0]
    assert link.startswith("data:application/x-rdp;base64,")
    return secret, name, base64.b64decode(link.split(",", 1)[1]).decode()


def test_the_password_goes_in_the_file_when_asked_and_still_works_once(
        rdp_app: Flask, tmp_path: Path) -> None:
    client = rdp_app.test_client()
    machine_id = make_machine(rdp_app, "scientist")
    sign_in(client, "scientist", "scientist-demo")
    assert 'name="in_file"' in client.get(f"/machines/{machine_id}").get_data(as_text=True)
    secret, name, text = file_with_the_password(client, machine_id)
    plain = client.get(f"/machines/{machine_id}/rdp").get_data(as_text=True)
    assert name.endswith(f"-{machine_id[:8]}.rdp") and "/p:" not in plain
    assert text == plain + f"/p:{secret}\r\n"  # the same file, with FreeRDP's password line
    config = vm_config(rdp_app, machine_id, tmp_path)
    assert verify(config, "scientist", text.split("/p:")[1].strip()).returncode == 0
    assert verify(config, "scientist", secret).returncode == 1  # one sign-in, file or typed
    again, _, second = file_with_the_password(client, machine_id)
    assert again != secret and f"/p:{again}\r\n" in second  # a new secret each time
    with unit_of_work(rdp_app.extensions["daaas"].session_factory) as db:
        files = db.scalars(select(AuditEvent).where(AuditEvent.action == "desktop.rdp_file"))
        details = [event.detail for event in files]
    assert sum(d.endswith(", with its one-time password") for d in details) == 2
    assert not any(secret in d or again in d for d in details)


@pytest.fixture
def display(tmp_path: Path) -> Iterator[int]:
    """An X display for FreeRDP's X11 client (it opens one before it reads its options)."""
    if not shutil.which("xfreerdp"):
        message = "FreeRDP is needed: apt-get install freerdp2-x11"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    server = Xvnc(tmp_path / "x", socket_path=tmp_path / "vnc.sock", security="None")
    yield server.display
    server.stop()


def test_freerdp_reads_the_password_from_the_file(rdp_app: Flask, tmp_path: Path,
                                                  display: int) -> None:
    """The real FreeRDP client, authenticating only (``/auth-only``) towards a port where
    nothing listens: with the file's password it goes on to connect; without, it stops for
    want of one."""
    client = rdp_app.test_client()
    machine_id = make_machine(rdp_app, "scientist")
    sign_in(client, "scientist", "scientist-demo")
    _, _, text = file_with_the_password(client, machine_id)
    port = free_port()
    plain = client.get(f"/machines/{machine_id}/rdp").get_data(as_text=True)
    outputs = {}
    for kind, content in (("with", text), ("without", plain)):
        path = tmp_path / f"{kind}.rdp"
        path.write_text(content.replace("10.0.0.5:3389", f"127.0.0.1:{port}"), newline="")
        done = subprocess.run(["xfreerdp", str(path), "/auth-only", "/cert:ignore"],
                              env={"PATH": "/usr/bin:/bin", "DISPLAY": f":{display}",
                                   "HOME": str(tmp_path)}, stdin=subprocess.DEVNULL,
                              capture_output=True, text=True, timeout=60, check=False)
        outputs[kind] = done.stdout + done.stderr
    assert "no password set" in outputs["without"], outputs["without"]
    assert "no password set" not in outputs["with"], outputs["with"]
    assert "Authentication only" in outputs["with"], outputs["with"]


def test_only_the_owner_of_a_ready_machine_offering_rdp_gets_a_secret(rdp_app: Flask) -> None:
    client = rdp_app.test_client()
    mine = make_machine(rdp_app, "scientist")
    path = f"/api/v1/machines/{mine}/rdp-sign-in"
    assert client.post(path, headers=bearer(rdp_app, "neutron")).status_code == 404
    assert client.post(path, headers=bearer(rdp_app, "admin")).status_code == 403
    starting = make_machine(rdp_app, "scientist", state="contextualising")
    refused = client.post(f"/api/v1/machines/{starting}/rdp-sign-in",
                          headers=bearer(rdp_app, "scientist"))
    assert refused.status_code == 409 and "not ready yet" in refused.get_json()["error"]["message"]
    browser_only = make_machine(rdp_app, "scientist", protocols=["novnc"])
    refused = client.post(f"/api/v1/machines/{browser_only}/rdp-sign-in",
                          headers=bearer(rdp_app, "scientist"))
    assert refused.status_code == 409 and "offers only the browser desktop" in \
        refused.get_json()["error"]["message"]
    with unit_of_work(rdp_app.extensions["daaas"].session_factory) as db:
        assert db.scalars(select(RdpSignIn)).all() == []


@pytest.fixture
def throwaway_account() -> Iterator[str]:
    """A local account made for this test and removed after it (root only)."""
    if os.geteuid() != 0 or not shutil.which("useradd"):
        pytest.skip("making a local account needs root")
    name = f"rdp{uuid.uuid4().hex[:8]}"
    subprocess.run(["useradd", "--no-create-home", "--shell", "/usr/sbin/nologin", name],
                   check=True)
    yield name
    subprocess.run(["userdel", name], check=False)


def test_a_real_pam_stack_with_pam_exec_accepts_the_secret_once(
        rdp_app: Flask, tmp_path: Path, throwaway_account: str) -> None:
    pamtester = shutil.which("pamtester")
    if pamtester is None:
        if os.environ.get("CI"):
            pytest.fail("pamtester is missing: install Debian's pamtester package.")
        pytest.skip("pamtester not installed")
    machine_id = make_machine(rdp_app, "scientist")
    config = vm_config(rdp_app, machine_id, tmp_path)
    service = f"daaas-rdp-test-{uuid.uuid4().hex[:8]}"
    pam_file = Path("/etc/pam.d") / service
    pam_file.write_text(
        f"auth sufficient pam_exec.so expose_authtok quiet {PYTHON} {VERIFIER} "
        f"--config {config}\nauth requisite pam_deny.so\naccount required pam_permit.so\n")
    try:
        key = resolve_secret_key(rdp_app.extensions["daaas"].settings)
        now = int(utcnow().timestamp())
        secret = sign_token(key, {"sub": throwaway_account, "mid": machine_id[:MID_CHARS],
                                  "exp": now + int(timedelta(minutes=5).total_seconds()),
                                  "nonce": uuid.uuid4().hex})

        def authenticate(password: str) -> int:
            return subprocess.run([pamtester, service, throwaway_account, "authenticate"],
                                  input=password + "\n", capture_output=True, text=True,
                                  timeout=30, check=False).returncode

        assert authenticate("not-a-token") != 0
        assert authenticate(secret) == 0
        assert authenticate(secret) != 0  # single use on this machine
    finally:
        pam_file.unlink()
