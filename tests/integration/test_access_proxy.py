"""A real websockify started by start_proxy, routing by one-time tokens from the database to a
real TCP server that greets like VNC; tokens work once, bogus ones never, and neither the
database URL nor the tokens show up where other people could read them."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask

from daaas.portal.access.proxy import ProxyError, ProxyProcess, start_proxy
from daaas.portal.access.service import issue_desktop_token
from daaas.portal.auth.service import get_user
from daaas.portal.config import Settings, load_settings
from daaas.portal.db import unit_of_work
from tests.support.access import (
    RFB_GREETING,
    FixedTarget,
    RfbServer,
    WebSocketClient,
    free_port,
    make_machine,
)
from tests.support.paths import ROOT


@pytest.fixture
def settings_override(settings_override: dict[str, Any]) -> dict[str, Any]:
    """The conftest portal on the in-memory provider, with the proxy on a free port."""
    return {**settings_override, "provider": "memory", "websockify_port": free_port()}


@pytest.fixture
def settings(settings_override: dict[str, Any]) -> Settings:
    return load_settings(settings_override, environ={})


@pytest.fixture
def vnc() -> Iterator[RfbServer]:
    server = RfbServer()
    yield server
    server.close()


@pytest.fixture
def proxy(app: Flask, settings: Settings) -> Iterator[ProxyProcess]:
    running = start_proxy(settings, settings.effective_database_url)
    yield running
    running.stop()
    assert not running.running()


def desktop_token(app: Flask, vnc: RfbServer, username: str = "scientist") -> str:
    machine_id = make_machine(app, username)
    rt = app.extensions["daaas"]
    with unit_of_work(rt.session_factory) as db:
        grant = issue_desktop_token(db, rt.settings, FixedTarget(vnc.port), get_user(db, username),
                                    machine_id)
    return grant.token


def _refused(port: int, token: str) -> bool:
    try:
        client = WebSocketClient(port, f"/?token={token}")
    except OSError:
        return True
    try:
        if not client.accepted:
            return True
        client.receive()
        return False
    except (ConnectionError, OSError):
        return True
    finally:
        client.close()


def test_a_token_opens_the_desktop_once(app: Flask, proxy: ProxyProcess, vnc: RfbServer) -> None:
    token = desktop_token(app, vnc)
    client = WebSocketClient(proxy.port, f"/?token={token}")
    try:
        assert client.accepted, f"websocket refused with HTTP {client.status}"
        assert client.receive() == RFB_GREETING
        client.send(b"RFB 003.008\n")
        assert client.receive() == b"RFB 003.008\n"
    finally:
        client.close()
    assert _refused(proxy.port, token), "a spent token opened a second connection"
    assert vnc.connections == 1


def test_bogus_and_missing_tokens_are_refused(app: Flask, proxy: ProxyProcess,
                                              vnc: RfbServer) -> None:
    desktop_token(app, vnc)
    assert _refused(proxy.port, "bogus-token")
    client = WebSocketClient(proxy.port, "/")
    assert not client.accepted
    client.close()
    assert vnc.connections == 0


def test_tokens_and_database_url_stay_private(app: Flask, proxy: ProxyProcess,
                                              vnc: RfbServer, settings: Settings) -> None:
    token = desktop_token(app, vnc)
    client = WebSocketClient(proxy.port, f"/?token={token}")
    assert client.receive() == RFB_GREETING
    client.close()
    assert _refused(proxy.port, token)
    assert _refused(proxy.port, "guessed-token-123")
    command_line = Path(f"/proc/{proxy.process.pid}/cmdline").read_bytes().decode()
    assert settings.effective_database_url not in command_line
    assert not proxy.source_file.exists(), "the file holding the database URL was left behind"
    log = proxy.log_file.read_text(encoding="utf-8")
    assert "desktop token refused" in log and "already used" in log
    assert token not in log and "guessed-token-123" not in log


def test_the_source_file_is_private_while_it_exists(settings: Settings) -> None:
    from daaas.portal.access.proxy import write_source

    path = write_source(settings.var_path, settings.effective_database_url)
    assert path.stat().st_mode & 0o777 == 0o600
    assert path.read_text(encoding="utf-8").strip() == settings.effective_database_url
    path.unlink()


def test_a_taken_port_is_reported_clearly(app: Flask, settings: Settings) -> None:
    with socket.create_server(("127.0.0.1", settings.websockify_port)), \
            pytest.raises(ProxyError) as error:
        start_proxy(settings, settings.effective_database_url)
    assert f"127.0.0.1:{settings.websockify_port}" in str(error.value)
    assert "already uses that port" in str(error.value)
    assert not list(settings.var_path.glob("websockify-*.source"))


def test_stop_ends_the_proxy_and_its_connection_handlers(app: Flask, settings: Settings,
                                                         vnc: RfbServer) -> None:
    proxy = start_proxy(settings, settings.effective_database_url)
    client = WebSocketClient(proxy.port, f"/?token={desktop_token(app, vnc)}")
    assert client.receive() == RFB_GREETING
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
    launcher = subprocess.Popen([sys.executable, "-c", LAUNCHER, json.dumps(settings_override)],
                                stdout=subprocess.PIPE, cwd=ROOT, text=True)
    assert launcher.stdout is not None
    websockify_pid = int(launcher.stdout.readline())
    try:
        os.killpg(websockify_pid, 0)  # running, in its own process group
        launcher.kill()  # SIGKILL: the portal gets no chance to call stop()
        launcher.wait(10)
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and _group_alive(websockify_pid):
            time.sleep(0.2)
        assert not _group_alive(websockify_pid), "websockify outlived the portal that started it"
    finally:
        if _group_alive(websockify_pid):
            os.killpg(websockify_pid, 9)


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True
