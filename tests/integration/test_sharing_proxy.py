"""Shared desktops enforced at the real desktop proxy (start_proxy, its own process) in front of
a test VNC server that records every byte it receives: a viewer's input never reaches the
server while its picture requests do and it still sees the desktop's updates; a user's input
does; a revocation made in this (the web) process closes the connection in the proxy's
process within a second; the owner-away policy and view-only links follow the owner."""

from __future__ import annotations

import random
import time
from collections.abc import Iterator
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import select

from daaas.portal.access.proxy import ProxyProcess
from daaas.portal.access.service import issue_desktop_token
from daaas.portal.audit.models import AuditEvent
from daaas.portal.auth.service import get_user
from daaas.portal.config import Settings, load_settings
from daaas.portal.db import unit_of_work
from daaas.portal.errors import Conflict
from daaas.portal.machines.models import Machine
from daaas.portal.sharing import service
from daaas.portal.sharing.models import DesktopConnection, Role
from tests.support.access import make_machine
from tests.support.rfb import (
    RfbOverWebSocket,
    VncTarget,
    desktop_token,
    proxy_settings,
    running_proxy,
)
from tests.support.sharing import (
    RecordingVncServer,
    continuous_updates,
    cut_text,
    events,
    fence,
    key_event,
    pointer_event,
    qemu_key,
    set_desktop_size,
    set_encodings,
    set_pixel_format,
    update_request,
    xvp_reboot,
)


@pytest.fixture
def settings_override(settings_override: dict[str, Any]) -> dict[str, Any]:
    return proxy_settings(settings_override)


@pytest.fixture
def settings(settings_override: dict[str, Any]) -> Settings:
    return load_settings(settings_override, environ={})


@pytest.fixture
def vnc() -> Iterator[RecordingVncServer]:
    server = RecordingVncServer()
    yield server
    server.close()


@pytest.fixture
def proxy(app: Flask, settings_override: dict[str, Any]) -> Iterator[ProxyProcess]:
    yield from running_proxy(settings_override)


def share(app: Flask, machine_id: str, username: str, role: Role,
          owner_away: str = "stay") -> None:
    rt = app.extensions["daaas"]
    with unit_of_work(rt.session_factory) as db:
        owner = get_user(db, "scientist")
        service.invite(db, rt.settings, owner, machine_id, username, role.value)
        service.set_policy(db, rt.settings, owner, machine_id, owner_away)


def connect(app: Flask, proxy: ProxyProcess, vnc: RecordingVncServer, username: str,
            machine_id: str, *, shared_flag: int = 1) -> RfbOverWebSocket:
    """Open ``username``'s desktop connection through the proxy (ClientInit sent)."""
    _, token = desktop_token(app, VncTarget(vnc.target()), username, machine_id)
    client = RfbOverWebSocket(proxy.port, token)
    assert client.accepted
    assert client.security_types() == [1]
    client.send(bytes([1]))
    assert client.recv_exactly(4) == b"\0\0\0\0"
    client.send(bytes([shared_flag]))
    client.recv_exactly(4 + 16 + 4 + len(b"recording"))
    return client


def owner_then_user(app: Flask, proxy: ProxyProcess, vnc: RecordingVncServer,
                    owner_away: str) -> tuple[str, RfbOverWebSocket, RfbOverWebSocket]:
    """A new machine of scientist's shared with neutron as a user under the ``owner_away``
    policy, both connected (owner first); returns (machine id, owner's, neutron's)."""
    machine_id = make_machine(app, "scientist")
    share(app, machine_id, "neutron", Role.USER, owner_away=owner_away)
    owner = connect(app, proxy, vnc, "scientist", machine_id)
    user = connect(app, proxy, vnc, "neutron", machine_id)
    wait_for_connections(app, machine_id, 2)
    return machine_id, owner, user


def send_in_pieces(client: RfbOverWebSocket, data: bytes) -> None:
    """Send ``data`` cut at random places, so messages span websocket frames."""
    rng = random.Random(17)
    while data:
        size = rng.randint(1, 7)
        client.send(data[:size])
        data = data[size:]


def closed_within(client: RfbOverWebSocket, seconds: float) -> float:
    """Return how long the proxy took to close ``client`` (fails after ``seconds``)."""
    client.ws.sock.settimeout(seconds)
    start = time.monotonic()
    try:
        while True:
            client.ws.receive()
    except (ConnectionError, OSError):
        pass
    took = time.monotonic() - start
    assert took < seconds, f"still open after {took:.2f} s"
    return took


INPUT = (key_event() + pointer_event() + cut_text() + set_desktop_size() + qemu_key()
         + xvp_reboot() + key_event(0x62, down=False) + pointer_event(buttons=0))
VIEWING = (set_pixel_format() + set_encodings(0, 7, -223) + update_request()
           + continuous_updates() + fence())


def test_no_input_of_a_viewer_reaches_the_vnc_server(app: Flask, proxy: ProxyProcess,
                                                     vnc: RecordingVncServer) -> None:
    machine_id = make_machine(app, "scientist")
    share(app, machine_id, "neutron", Role.VIEWER)
    viewer = connect(app, proxy, vnc, "neutron", machine_id, shared_flag=0)
    marker = update_request(x=7)
    send_in_pieces(viewer, VIEWING[:20] + INPUT + VIEWING[20:] + INPUT + marker)
    [client] = vnc.wait_for_clients(1)
    received = vnc.wait_for_bytes(client, marker)
    assert received == VIEWING + marker, "only picture requests pass, in order"
    assert client.shared_flag == 1, "a viewer cannot take the desktop for itself"
    vnc.broadcast(b"\x00\x00\x00\x00")  # a FramebufferUpdate with no rectangles
    assert viewer.recv_exactly(4) == b"\x00\x00\x00\x00", "the viewer still sees updates"
    viewer.close()


def test_a_user_members_input_reaches_the_server(app: Flask, proxy: ProxyProcess,
                                                 vnc: RecordingVncServer) -> None:
    machine_id = make_machine(app, "scientist")
    share(app, machine_id, "neutron", Role.USER)
    user = connect(app, proxy, vnc, "neutron", machine_id)
    send_in_pieces(user, VIEWING + INPUT)
    [client] = vnc.wait_for_clients(1)
    assert vnc.wait_for_bytes(client, INPUT) == VIEWING + INPUT
    user.close()


def test_an_unknown_message_from_a_viewer_ends_its_connection(
        app: Flask, proxy: ProxyProcess, vnc: RecordingVncServer) -> None:
    machine_id = make_machine(app, "scientist")
    share(app, machine_id, "neutron", Role.VIEWER)
    viewer = connect(app, proxy, vnc, "neutron", machine_id)
    viewer.send(bytes([253, 0, 0, 4, 1, 2, 3, 4]))  # gii: not measured by the proxy
    closed_within(viewer, 3.0)
    [client] = vnc.wait_for_clients(1)
    assert bytes(client.received) == b""


def test_revocation_closes_the_viewer_within_a_second(app: Flask, proxy: ProxyProcess,
                                                      vnc: RecordingVncServer) -> None:
    machine_id = make_machine(app, "scientist")
    share(app, machine_id, "neutron", Role.VIEWER)
    owner = connect(app, proxy, vnc, "scientist", machine_id)
    viewer = connect(app, proxy, vnc, "neutron", machine_id)
    rt = app.extensions["daaas"]
    wait_for_connections(app, machine_id, 2)
    with unit_of_work(rt.session_factory) as db:
        service.remove_member(db, get_user(db, "scientist"), machine_id, "neutron")
    closed_within(viewer, 1.0)
    owner.send(update_request(x=3))
    [first, _] = vnc.wait_for_clients(2)
    vnc.wait_for_bytes(first, update_request(x=3))  # the owner's connection goes on
    with unit_of_work(rt.session_factory) as db:
        messages = events(app, machine_id)
        with pytest.raises(service.NotFound):
            issue_desktop_token(db, rt.settings, VncTarget(vnc.target()),
                                get_user(db, "neutron"), machine_id)
    assert "neutron joined the desktop as viewer" in messages
    assert any(m.startswith("neutron removed from the members") for m in messages)
    owner.close()


def test_the_room_becomes_view_only_while_the_owner_is_away(
        app: Flask, proxy: ProxyProcess, vnc: RecordingVncServer) -> None:
    machine_id, owner, user = owner_then_user(app, proxy, vnc, "view_only")
    owner.close()
    wait_for_role(app, machine_id, "neutron", "viewer")
    time.sleep(0.6)  # the proxy reads the new role within CHECK_EVERY
    marker = update_request(x=9)
    user.send(key_event() + marker)
    [_, client] = vnc.wait_for_clients(2)
    assert vnc.wait_for_bytes(client, marker) == marker, "typing dropped while locked"
    owner = connect(app, proxy, vnc, "scientist", machine_id)
    wait_for_role(app, machine_id, "neutron", "user")
    time.sleep(0.6)
    user.send(key_event(0x63))
    assert vnc.wait_for_bytes(client, key_event(0x63)) == marker + key_event(0x63)
    owner.close()
    user.close()


def test_members_are_disconnected_when_the_owner_leaves(
        app: Flask, proxy: ProxyProcess, vnc: RecordingVncServer) -> None:
    machine_id, owner, user = owner_then_user(app, proxy, vnc, "disconnect")
    owner.close()
    closed_within(user, 2.0)
    assert "the owner left: the others disconnect" in events(app, machine_id)


def test_a_view_link_lives_while_the_owner_is_connected(
        app: Flask, proxy: ProxyProcess, vnc: RecordingVncServer) -> None:
    machine_id = make_machine(app, "scientist")
    rt = app.extensions["daaas"]
    with unit_of_work(rt.session_factory) as db:
        made = service.create_link(db, rt.settings, get_user(db, "scientist"), machine_id,
                                   "view")
    provider = VncTarget(vnc.target())
    with unit_of_work(rt.session_factory) as db, pytest.raises(Conflict):
        service.issue_link_token(db, rt.settings, provider, get_user(db, "neutron"),
                                 made.secret)
    owner = connect(app, proxy, vnc, "scientist", machine_id)
    wait_for_connections(app, machine_id, 1)
    with unit_of_work(rt.session_factory) as db:
        grant = service.issue_link_token(db, rt.settings, provider, get_user(db, "neutron"),
                                         made.secret)
    watcher = RfbOverWebSocket(proxy.port, grant.token)
    assert watcher.security_types() == [1]
    watcher.open_with_none()
    wait_for_connections(app, machine_id, 2)
    watcher.send(key_event() + update_request(x=5))
    [_, client] = vnc.wait_for_clients(2)
    assert vnc.wait_for_bytes(client, update_request(x=5)) == update_request(x=5)
    owner.close()
    closed_within(watcher, 1.5)
    with unit_of_work(rt.session_factory) as db, pytest.raises(Conflict):
        service.issue_link_token(db, rt.settings, provider, get_user(db, "neutron"),
                                 made.secret)


def open_rows(app: Flask, machine_id: str) -> list[tuple[str, str]]:
    rt = app.extensions["daaas"]
    with unit_of_work(rt.session_factory) as db:
        machine = db.get(Machine, machine_id)
        assert machine is not None
        return [(row.user.username, row.role) for row in service.connected(db, machine)]


def wait_for_connections(app: Flask, machine_id: str, count: int) -> None:
    deadline = time.monotonic() + 10
    while len(open_rows(app, machine_id)) < count:
        assert time.monotonic() < deadline, open_rows(app, machine_id)
        time.sleep(0.05)


def wait_for_role(app: Flask, machine_id: str, username: str, role: str) -> None:
    deadline = time.monotonic() + 10
    while (username, role) not in open_rows(app, machine_id):
        assert time.monotonic() < deadline, open_rows(app, machine_id)
        time.sleep(0.05)


def test_connections_are_recorded_and_closed(app: Flask, proxy: ProxyProcess,
                                             vnc: RecordingVncServer) -> None:
    alone = make_machine(app, "scientist")
    owner = connect(app, proxy, vnc, "scientist", alone)
    wait_for_connections(app, alone, 1)
    assert open_rows(app, alone) == [("scientist", "owner")]
    owner.close()
    wait_for_close(app, alone)
    assert not [m for m in events(app, alone) if "the desktop" in m], \
        "the owner alone on an unshared desktop is no event"
    machine_id = make_machine(app, "scientist")
    share(app, machine_id, "neutron", Role.VIEWER)
    owner = connect(app, proxy, vnc, "scientist", machine_id)
    wait_for_connections(app, machine_id, 1)
    owner.close()
    wait_for_close(app, machine_id)
    rt = app.extensions["daaas"]
    with unit_of_work(rt.session_factory) as db:
        audited = {(row.action, row.actor, row.source) for row in db.scalars(
            select(AuditEvent).where(AuditEvent.target == f"machine {machine_id}"))}
    assert {("desktop.join", "scientist", "proxy"),
            ("desktop.leave", "scientist", "proxy")} <= audited


def wait_for_close(app: Flask, machine_id: str) -> None:
    rt = app.extensions["daaas"]
    deadline = time.monotonic() + 5
    while True:
        with unit_of_work(rt.session_factory) as db:
            closed = db.scalar(select(DesktopConnection.closed_at).where(
                DesktopConnection.machine_id == machine_id))
        if closed is not None:
            return
        assert time.monotonic() < deadline, "the connection's close was not recorded"
        time.sleep(0.05)
