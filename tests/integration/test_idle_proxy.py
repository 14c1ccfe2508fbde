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

from daaas.portal.access.proxy import ProxyProcess
from tests.support.machines import machine
from tests.support.rfb import (
    RfbOverWebSocket,
    Xvnc,
    owned_desktop,
    proxy_settings,
    running_proxy,
    xvnc_on_socket,
)


@pytest.fixture
def settings_override(settings_override: dict[str, Any]) -> dict[str, Any]:
    return proxy_settings(settings_override)


@pytest.fixture
def xvnc(tmp_path: Path) -> Iterator[Xvnc]:
    yield from xvnc_on_socket(tmp_path)


@pytest.fixture
def proxy(app: Flask, settings_override: dict[str, Any]) -> Iterator[ProxyProcess]:
    yield from running_proxy(settings_override)


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
    machine_id, token = owned_desktop(app, xvnc)
    assert seen(app, machine_id) is None
    client = RfbOverWebSocket(proxy.port, token)
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
