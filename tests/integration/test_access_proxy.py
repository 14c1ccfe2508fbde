"""The real desktop proxy started by start_proxy, in front of a real Xvnc: a one-time token opens
the desktop once, the proxy signs in to the VNC server itself and offers the browser (here a
raw RFB client) only security type None; used, expired, bogus and missing tokens and another
machine's token open nothing; and neither the secrets nor the tokens show up where other
people could read them."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import update

from daaas.portal.access.proxy import ProxyError, ProxyProcess, start_proxy, write_source
from daaas.portal.access.tokenplugin import ProxySecrets, SourceFileError, read_source
from daaas.portal.config import Settings, load_settings
from daaas.portal.db import unit_of_work, utcnow
from daaas.portal.machines.models import AccessToken
from daaas.portal.machines.secrets import vnc_password
from daaas.portal.providers import ConnectionTarget
from tests.support.access import WebSocketClient, free_port
from tests.support.machines import SECRET_KEY
from tests.support.paths import ROOT
from tests.support.rfb import (
    GEOMETRY,
    RfbOverWebSocket,
    VncTarget,
    Xvnc,
    desktop_token,
    owned_desktop,
    proxy_settings,
    running_proxy,
    xvnc_on_socket,
)


@pytest.fixture
def settings_override(settings_override: dict[str, Any]) -> dict[str, Any]:
    """The conftest portal on the in-memory provider, with the proxy on a free port."""
    return proxy_settings(settings_override)


@pytest.fixture
def settings(settings_override: dict[str, Any]) -> Settings:
    return load_settings(settings_override, environ={})


@pytest.fixture
def xvnc(tmp_path: Path) -> Iterator[Xvnc]:
    """A real Xvnc with VNC authentication, listening only on a Unix socket."""
    yield from xvnc_on_socket(tmp_path)


@pytest.fixture
def proxy(app: Flask, settings_override: dict[str, Any]) -> Iterator[ProxyProcess]:
    yield from running_proxy(settings_override)


def nothing_rfb(port: int, path: str) -> bool:
    """True when a websocket to ``path`` is refused and not one byte of RFB comes back."""
    try:
        client = WebSocketClient(port, path, timeout=5)
    except OSError:
        return True
    try:
        if client.accepted:
            return False
        return b"RFB 00" not in client.buffer
    finally:
        client.close()


def xvnc_connections(xvnc: Xvnc) -> int:
    """How many connections Xvnc has accepted, from its log."""
    text = (xvnc.password_file.parent / "xvnc.log").read_text(errors="replace")
    return text.count("Connections: accepted")


def test_the_browser_gets_security_none_and_the_desktop(app: Flask, proxy: ProxyProcess,
                                                        xvnc: Xvnc) -> None:
    machine_id, token = owned_desktop(app, xvnc)
    client = RfbOverWebSocket(proxy.port, token)
    try:
        assert client.accepted, f"websocket refused with HTTP {client.ws.status}"
        assert client.security_types() == [1], client.reason  # None, and only None
        assert client.version == b"RFB 003.008\n"
        init = client.open_with_none()
        assert (init.width, init.height) == GEOMETRY
        assert "proxy-test" in init.name
        client.send(bytes([3, 0]) + (0).to_bytes(2, "big") * 2 + (16).to_bytes(2, "big") * 2)
        update_header = client.recv_exactly(4)  # FramebufferUpdateRequest answered
        assert update_header[0] == 0
    finally:
        client.close()
    assert xvnc_connections(xvnc) == 1
    assert nothing_rfb(proxy.port, f"/?token={token}"), "a spent token opened a second time"
    log = _wait_for_log(proxy, "desktop connection closed")
    assert f"machine {machine_id}: signed in to its VNC server at unix:" in log
    assert "(VNC_AUTH)" in log
    assert vnc_password(SECRET_KEY, machine_id) not in log and token not in log


def test_a_tcp_desktop_that_asks_no_password(app: Flask, proxy: ProxyProcess,
                                             tmp_path: Path) -> None:
    xvnc = Xvnc(tmp_path / "open", security="None", tcp_port=free_port())
    try:
        _, token = desktop_token(app, VncTarget(xvnc.target()))
        client = RfbOverWebSocket(proxy.port, token)
        assert client.security_types() == [1]
        init = client.open_with_none(one_frame=True)  # ClientInit rides with the choice
        assert (init.width, xvnc.target().vnc_socket) == (GEOMETRY[0], None)
        client.close()
    finally:
        xvnc.stop()
    assert "(NONE)" in _wait_for_log(proxy, "desktop connection closed")


def test_another_machines_token_does_not_open_this_desktop(app: Flask, proxy: ProxyProcess,
                                                           xvnc: Xvnc) -> None:
    mine, my_token = owned_desktop(app, xvnc)
    # neutron's machine is (wrongly) routed to scientist's Xvnc: its token carries neutron's
    # machine, so the proxy signs in with that machine's password, which this Xvnc refuses.
    theirs, their_token = desktop_token(app, VncTarget(xvnc.target()), "neutron")
    client = RfbOverWebSocket(proxy.port, their_token)
    try:
        assert client.security_types() == []
        assert client.reason == "The desktop cannot be reached right now. Try again in a moment."
        with pytest.raises(ConnectionError):
            client.recv_exactly(1)
    finally:
        client.close()
    log = _wait_for_log(proxy, f"machine {theirs}: signing in to its VNC server")
    assert "Authentication failure" in log
    client = RfbOverWebSocket(proxy.port, my_token)
    assert client.security_types() == [1]
    assert client.open_with_none().width == GEOMETRY[0]
    client.close()
    assert mine != theirs


def test_used_expired_and_unreachable(app: Flask, proxy: ProxyProcess, xvnc: Xvnc,
                                      tmp_path: Path) -> None:
    machine_id, token = owned_desktop(app, xvnc)
    with unit_of_work(app.extensions["daaas"].session_factory) as db:
        db.execute(update(AccessToken).where(AccessToken.machine_id == machine_id)
                   .values(expires_at=utcnow() - timedelta(seconds=1)))
    assert nothing_rfb(proxy.port, f"/?token={token}"), "an expired token opened the desktop"
    _, token = desktop_token(app, VncTarget(xvnc.target()), machine_id=machine_id)
    client = RfbOverWebSocket(proxy.port, token)
    assert client.security_types() == [1]
    client.close()
    assert nothing_rfb(proxy.port, f"/?token={token}"), "a used token opened the desktop"
    gone = ConnectionTarget(host="", vnc_port=0, vnc_socket=str(tmp_path / "no-such.sock"))
    _, token = desktop_token(app, VncTarget(gone), machine_id=machine_id)
    client = RfbOverWebSocket(proxy.port, token)
    assert client.security_types() == []
    assert "cannot be reached" in client.reason
    client.close()


def test_no_token_no_rfb(app: Flask, proxy: ProxyProcess, xvnc: Xvnc) -> None:
    owned_desktop(app, xvnc)
    assert nothing_rfb(proxy.port, "/?token=bogus-token")
    assert nothing_rfb(proxy.port, "/")
    assert nothing_rfb(proxy.port, "/?token=")
    with socket.create_connection(("127.0.0.1", proxy.port), timeout=10) as raw:
        raw.sendall(b"RFB 003.008\n")
        received = _read_all(raw)
    assert b"RFB 00" not in received, received  # an HTTP error, never an RFB greeting
    with socket.create_connection(("127.0.0.1", proxy.port), timeout=10) as raw:
        assert _read_all(raw) == b""  # a silent client is dropped without a greeting
    assert xvnc_connections(xvnc) == 0


def test_secrets_and_tokens_stay_private(app: Flask, proxy: ProxyProcess, xvnc: Xvnc,
                                         settings: Settings) -> None:
    machine_id, token = owned_desktop(app, xvnc)
    client = RfbOverWebSocket(proxy.port, token)
    assert client.security_types() == [1]
    client.close()
    assert nothing_rfb(proxy.port, f"/?token={token}")
    assert nothing_rfb(proxy.port, "/?token=guessed-token-123")
    pid = proxy.process.pid
    command_line = Path(f"/proc/{pid}/cmdline").read_bytes().decode()
    environment = Path(f"/proc/{pid}/environ").read_bytes().decode(errors="replace")
    assert "daaas.portal.access.rfbproxy" in command_line
    for secret in (settings.effective_database_url, SECRET_KEY):
        assert secret not in command_line and secret not in environment
    assert not proxy.source_file.exists(), "the file holding the secrets was left behind"
    log = _wait_for_log(proxy, "already used")
    assert "desktop token refused" in log
    for secret in (token, "guessed-token-123", vnc_password(SECRET_KEY, machine_id),
                   SECRET_KEY):
        assert secret not in log


def test_the_source_file_is_private_and_checked(settings: Settings) -> None:
    secrets = ProxySecrets(settings.effective_database_url, SECRET_KEY)
    path = write_source(settings.var_path, secrets)
    assert path.stat().st_mode & 0o777 == 0o600
    assert read_source(path) == secrets
    assert SECRET_KEY not in repr(read_source(path))
    path.chmod(0o640)
    with pytest.raises(SourceFileError, match="chmod 600"):
        read_source(path)
    path.chmod(0o600)
    path.write_text(json.dumps({"database_url": "sqlite://"}), encoding="utf-8")
    with pytest.raises(SourceFileError, match="secret_key"):
        read_source(path)
    path.unlink()


def test_a_taken_port_is_reported_clearly(app: Flask, settings: Settings) -> None:
    with socket.create_server(("127.0.0.1", settings.websockify_port)), \
            pytest.raises(ProxyError) as error:
        start_proxy(settings, settings.effective_database_url)
    assert f"127.0.0.1:{settings.websockify_port}" in str(error.value)
    assert "already uses that port" in str(error.value)
    assert not list(settings.var_path.glob("websockify-*.source"))


def test_stop_ends_the_proxy_and_its_connection_handlers(app: Flask, settings: Settings,
                                                         xvnc: Xvnc) -> None:
    proxy = start_proxy(settings, settings.effective_database_url)
    _, token = owned_desktop(app, xvnc)
    client = RfbOverWebSocket(proxy.port, token)
    assert client.security_types() == [1]
    assert client.open_with_none().height == GEOMETRY[1]
    proxy.stop()
    assert not proxy.running()
    with pytest.raises(ProcessLookupError):
        os.killpg(proxy.process.pid, 0)
    client.close()


LAUNCHER = """
import json, sys, time
from daaas.portal.access.proxy import start_proxy
from daaas.portal.config import load_settings
settings = load_settings(json.loads(sys.argv[1]), environ={})
proxy = start_proxy(settings, settings.effective_database_url)
print(proxy.process.pid, flush=True)
time.sleep(120)
"""


def test_the_proxy_does_not_outlive_a_killed_portal(app: Flask,
                                                    settings_override: dict[str, Any]) -> None:
    portal_env = {**os.environ, "DAAAS_SECRET_KEY": "env-secret-key-1",
                  "OS_PASSWORD": "cloud-password-1"}
    launcher = subprocess.Popen([sys.executable, "-c", LAUNCHER, json.dumps(settings_override)],
                                stdout=subprocess.PIPE, cwd=ROOT, text=True, env=portal_env)
    assert launcher.stdout is not None
    proxy_pid = int(launcher.stdout.readline())
    try:
        os.killpg(proxy_pid, 0)  # running, in its own process group
        environment = Path(f"/proc/{proxy_pid}/environ").read_bytes().decode(errors="replace")
        assert "env-secret-key-1" not in environment and "cloud-password-1" not in environment
        launcher.kill()  # SIGKILL: the portal gets no chance to call stop()
        launcher.wait(10)
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and _group_alive(proxy_pid):
            time.sleep(0.2)
        assert not _group_alive(proxy_pid), "the proxy outlived the portal that started it"
    finally:
        if _group_alive(proxy_pid):
            os.killpg(proxy_pid, 9)


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


def _read_all(sock: socket.socket) -> bytes:
    data = b""
    try:
        while chunk := sock.recv(4096):
            data += chunk
    except OSError:
        pass
    return data


def _wait_for_log(proxy: ProxyProcess, text: str, timeout: float = 10.0) -> str:
    """Return the proxy's log once it holds ``text`` (its child processes log a moment late)."""
    deadline = time.monotonic() + timeout
    while True:
        log = proxy.log_file.read_text(encoding="utf-8", errors="replace")
        if text in log or time.monotonic() > deadline:
            assert text in log, f"{text!r} not in the proxy's log:\n{log[-3000:]}"
            return log
        time.sleep(0.1)
