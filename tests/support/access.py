"""Helpers for the desktop-access tests: machines in the database, a raw websocket client and
a provider whose machines all listen on one given address."""

from __future__ import annotations

import base64
import hashlib
import os
import socket
import struct
import uuid
from datetime import timedelta

from flask import Flask

from daaas.portal.auth.service import get_user
from daaas.portal.db import unit_of_work, utcnow
from daaas.portal.machines.address import address_json
from daaas.portal.machines.models import Machine
from daaas.portal.providers import ConnectionTarget, LaunchSpec
from tests.support.environments import make_environment
from tests.support.providers import InMemoryProvider

WS_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


def make_machine(app: Flask, username: str, *, state: str = "ready",
                 environment: str = "ccp4", protocols: list[str] | None = None) -> str:
    """Put a machine of ``username`` in the database (and at the app's provider); return its id.

    A ready machine gets the address the worker would record (the provider's connection
    target), as the pages read it from there."""
    rt = app.extensions["daaas"]
    env = rt.catalogue.environments[environment]
    if protocols is not None:
        env = make_environment(environment, protocols=protocols)
    machine_id = uuid.uuid4().hex
    with unit_of_work(rt.session_factory) as db:
        user = get_user(db, username)
        db.add(Machine(id=machine_id, user=user, environment_name=environment, environment=env,
                       flavor=env.flavors.default, provider=rt.settings.provider,
                       state=state, expires_at=utcnow() + timedelta(hours=1)))
        uid, gid = user.uid, user.gid
    rt.provider.launch(LaunchSpec(machine_id=machine_id, username=username, uid=uid, gid=gid,
                                  environment=env, vnc_password="unused1"))
    if state == "ready":
        with unit_of_work(rt.session_factory) as db:
            machine = db.get(Machine, machine_id)
            assert machine is not None
            machine.address = address_json(rt.provider.connection_target(machine_id))
    return machine_id


def set_state(app: Flask, machine_id: str, state: str) -> None:
    """Change a machine's state in the database (what the reconciler would do)."""
    with unit_of_work(app.extensions["daaas"].session_factory) as db:
        machine = db.get(Machine, machine_id)
        assert machine is not None
        machine.state = state


class FixedTarget(InMemoryProvider):
    """An in-memory provider whose machines all listen on one given VNC (and RDP) port."""

    name = "fixed"

    def __init__(self, vnc_port: int, rdp_port: int | None = None,
                 host: str = "127.0.0.1") -> None:
        super().__init__()
        self.target = ConnectionTarget(host=host, vnc_port=vnc_port, rdp_port=rdp_port)

    def connection_target(self, machine_id: str) -> ConnectionTarget:
        return self.target


class WebSocketClient:
    """A minimal RFC 6455 client over a raw socket (binary frames, client-side masking)."""

    def __init__(self, port: int, path: str, timeout: float = 10.0) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        key = base64.b64encode(os.urandom(16)).decode()
        self.sock.sendall((f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
                           "Upgrade: websocket\r\nConnection: Upgrade\r\n"
                           f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n")
                          .encode())
        self.buffer = b""
        head = self._read_until(b"\r\n\r\n")
        status_line, _, headers = head.partition(b"\r\n")
        parts = status_line.split()
        self.status = int(parts[1]) if len(parts) > 1 else 0
        expected = base64.b64encode(hashlib.sha1((key + WS_GUID).encode()).digest())
        self.accepted = self.status == 101 and expected in headers

    def _read_until(self, marker: bytes) -> bytes:
        while marker not in self.buffer:
            chunk = self.sock.recv(4096)
            if not chunk:
                head, self.buffer = self.buffer, b""
                return head
            self.buffer += chunk
        head, _, self.buffer = self.buffer.partition(marker)
        return head

    def _read(self, size: int) -> bytes:
        while len(self.buffer) < size:
            chunk = self.sock.recv(4096)
            if not chunk:
                raise ConnectionError("websocket closed")
            self.buffer += chunk
        data, self.buffer = self.buffer[:size], self.buffer[size:]
        return data

    def receive(self) -> bytes:
        """Return the payload of the next data frame (raises ConnectionError on close)."""
        while True:
            first, second = self._read(2)
            length = second & 0x7F
            if length == 126:
                length = struct.unpack("!H", self._read(2))[0]
            elif length == 127:
                length = struct.unpack("!Q", self._read(8))[0]
            payload = self._read(length)
            if first & 0x0F == 0x8:
                raise ConnectionError("websocket closed by the server")
            if first & 0x0F in (0x1, 0x2):
                return payload

    def send(self, payload: bytes) -> None:
        """Send one masked binary frame."""
        mask = os.urandom(4)
        header = bytes([0x82, 0x80 | len(payload)]) if len(payload) < 126 else \
            bytes([0x82, 0x80 | 126]) + struct.pack("!H", len(payload))
        body = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
        self.sock.sendall(header + mask + body)

    def close(self) -> None:
        self.sock.close()


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.create_server(("127.0.0.1", 0)) as probe:
        port: int = probe.getsockname()[1]
    return port
