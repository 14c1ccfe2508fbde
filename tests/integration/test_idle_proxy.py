"""The real desktop proxy (start_proxy, a real Xvnc) records a desktop connection as the
machine's activity for the idle stop: when it opens and when it closes, not per input event."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from flask import Flask

from daaas.portal.access.proxy import ProxyProcess, start_proxy
from daaas.portal.access.service import issue_desktop_token
from daaas.portal.auth.service import get_user
from daaas.portal.config import Settings, load_settings
from daaas.portal.db import unit_of_work
from daaas.portal.machines.secrets import vnc_password
from tests.support.access import free_port, make_machine
from tests.support.machines import machine
from tests.support.rfb import RfbOverWebSocket, VncTarget, Xvnc

SECRET_KEY = "test-secret-key"  # the conftest portal's


@pytest.fixture
def settings_override(settings_override: dict[str, Any]) -> dict[str, Any]:
    return {**settings_override, "provider": "memory", "websockify_port": free_port()}


@pytest.fixture
def xvnc(tmp_path: Path) -> Iterator[Xvnc]:
    server = Xvnc(tmp_path / "xvnc", socket_path=tmp_path / "vnc.sock")
    yield server
    server.stop()


@pytest.fixture
def proxy(app: Flask, settings_override: dict[str, Any]) -> Iterator[ProxyProcess]:
    settings: Settings = load_settings(settings_override, environ={})
    running = start_proxy(settings, settings.effective_database_url)
    yield running
    running.stop()


def seen(app: Flask, machine_id: str) -> datetime | None:
    return machine(app, machine_id).desktop_seen_at


def wait_for_seen(app: Flask, machine_id: str, after: datetime | None) -> datetime:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        value = seen(app, machine_id)
        if value is not None and (after is None or value > after):
            return value
        time.sleep(0.05)
    raise AssertionError("the proxy recorded no desktop activity")


def test_a_desktop_connection_is_recorded_when_it_opens_and_closes_not_per_input(
        app: Flask, proxy: ProxyProcess, xvnc: Xvnc) -> None:
    machine_id = make_machine(app, "scientist")
    rt = app.extensions["daaas"]
    with unit_of_work(rt.session_factory) as db:
        grant = issue_desktop_token(db, rt.settings, VncTarget(xvnc.target()),
                                    get_user(db, "scientist"), machine_id)
    xvnc.set_password(vnc_password(SECRET_KEY, machine_id))
    assert seen(app, machine_id) is None
    client = RfbOverWebSocket(proxy.port, grant.token)
    try:
        assert client.accepted and client.security_types() == [1]
        client.open_with_none()
        opened = wait_for_seen(app, machine_id, None)
        for x in range(50):  # pointer events: input, not recorded one by one
            client.send(bytes([5, 0]) + x.to_bytes(2, "big") + x.to_bytes(2, "big"))
        time.sleep(0.5)
        assert seen(app, machine_id) == opened
    finally:
        client.close()
    assert wait_for_seen(app, machine_id, opened) > opened  # the close is recorded
