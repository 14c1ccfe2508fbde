"""Helpers for the shared-desktop tests: a test VNC server that records every byte its clients
send after the handshake, and raw RFB client messages."""

from __future__ import annotations

import re
import socket
import struct
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from daaas.portal.db import unit_of_work
from daaas.portal.machines.models import MachineEvent
from daaas.portal.providers import ConnectionTarget
from tests.support.web import sign_in

PIXEL_FORMAT = struct.pack("!BBBBHHHBBBxxx", 32, 24, 0, 1, 255, 255, 255, 16, 8, 0)


def set_pixel_format() -> bytes:
    return struct.pack("!Bxxx", 0) + PIXEL_FORMAT


def set_encodings(*encodings: int) -> bytes:
    return struct.pack("!BxH", 2, len(encodings)) + b"".join(
        struct.pack("!i", e) for e in encodings)


def update_request(x: int = 0, incremental: int = 1) -> bytes:
    return struct.pack("!BBHHHH", 3, incremental, x, 0, 64, 48)


def key_event(keysym: int = 0x61, down: bool = True) -> bytes:
    return struct.pack("!BBxxI", 4, int(down), keysym)


def pointer_event(x: int = 10, y: int = 10, buttons: int = 1) -> bytes:
    return struct.pack("!BBHH", 5, buttons, x, y)


def cut_text(text: bytes = b"rm -rf ~") -> bytes:
    return struct.pack("!BxxxI", 6, len(text)) + text


def set_desktop_size(width: int = 1024, height: int = 768) -> bytes:
    screen = struct.pack("!IHHHHI", 1, 0, 0, width, height, 0)
    return struct.pack("!BxHHBx", 251, width, height, 1) + screen


def qemu_key(keysym: int = 0x62) -> bytes:
    return struct.pack("!BBHII", 255, 0, 1, keysym, 30)


def fence(payload: bytes = b"ab") -> bytes:
    return struct.pack("!BxxxIB", 248, 0, len(payload)) + payload


def continuous_updates() -> bytes:
    return struct.pack("!BBHHHH", 150, 1, 0, 0, 64, 48)


def xvp_reboot() -> bytes:
    return struct.pack("!BxBB", 250, 1, 3)


@dataclass
class Client:
    """One connection the test server accepted: what the client sent after ServerInit."""

    sock: socket.socket
    shared_flag: int = -1
    received: bytearray = field(default_factory=bytearray)
    closed: bool = False


class RecordingVncServer:
    """An RFB 3.8 server on 127.0.0.1 offering security None, which records what each client
    sends after the handshake (``clients[i].received``) and can send bytes to every client
    (:meth:`broadcast`), as a desktop's updates would."""

    def __init__(self) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.clients: list[Client] = []
        self.lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    def target(self) -> ConnectionTarget:
        return ConnectionTarget(host="127.0.0.1", vnc_port=self.port)

    def _accept(self) -> None:
        while True:
            try:
                sock, _ = self.listener.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(sock,), daemon=True).start()

    def _serve(self, sock: socket.socket) -> None:
        client = Client(sock)
        try:
            sock.sendall(b"RFB 003.008\n")
            _read(sock, 12)
            sock.sendall(bytes([1, 1]))
            _read(sock, 1)
            sock.sendall(struct.pack("!I", 0))
            client.shared_flag = _read(sock, 1)[0]
            name = b"recording"
            sock.sendall(struct.pack("!HH", 64, 48) + PIXEL_FORMAT
                         + struct.pack("!I", len(name)) + name)
            with self.lock:
                self.clients.append(client)
            while data := sock.recv(65536):
                with self.lock:
                    client.received += data
        except OSError:
            pass
        finally:
            client.closed = True
            sock.close()

    def broadcast(self, data: bytes) -> None:
        """Send ``data`` to every open client."""
        with self.lock:
            for client in self.clients:
                if not client.closed:
                    client.sock.sendall(data)

    def wait_for_clients(self, count: int, timeout: float = 10.0) -> list[Client]:
        """Return the first ``count`` clients once they have done the handshake."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                if len(self.clients) >= count:
                    return self.clients[:count]
            time.sleep(0.02)
        raise AssertionError(f"{count} clients did not connect to the test VNC server")

    def wait_for_bytes(self, client: Client, ending: bytes, timeout: float = 10.0) -> bytes:
        """Return what ``client`` sent once it ends with ``ending``."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                if bytes(client.received).endswith(ending):
                    return bytes(client.received)
            time.sleep(0.02)
        raise AssertionError(f"the server got {bytes(client.received)!r}, not ending {ending!r}")

    def close(self) -> None:
        self.listener.close()
        with self.lock:
            for client in self.clients:
                client.sock.close()


def _read(sock: socket.socket, size: int) -> bytes:
    data = b""
    while len(data) < size:
        chunk = sock.recv(size - len(data))
        if not chunk:
            raise OSError("closed")
        data += chunk
    return data


def changed_pixels(first: bytes, second: bytes) -> int:
    """Return how many pixels differ (by more than a little) between two PNG screenshots."""
    from io import BytesIO

    from PIL import Image, ImageChops

    one = Image.open(BytesIO(first)).convert("RGB")
    two = Image.open(BytesIO(second)).convert("RGB")
    if one.size != two.size:
        return one.width * one.height
    difference = ImageChops.difference(one, two).convert("L").point(lambda v: 255 if v > 24
                                                                     else 0)
    return int(sum(1 for value in difference.get_flattened_data() if value))


PASSWORDS = {"scientist": "scientist-demo", "neutron": "neutron-demo",
             "admin": "admin-demo-pass"}


class Person:
    """A signed-in browser: pages, and the JSON API with the session's CSRF token."""

    def __init__(self, app: Flask, username: str) -> None:
        self.client: FlaskClient = app.test_client()
        self.username = username
        sign_in(self.client, username, PASSWORDS[username])
        page = self.client.get("/account").get_data(as_text=True)
        match = re.search(r'<meta name="csrf-token" content="([^"]+)"', page)
        assert match, "no CSRF token"
        self.csrf = match.group(1)

    def api(self, method: str, path: str, body: Any = None) -> Any:
        return self.client.open(f"/api/v1{path}", method=method, json=body,
                                headers={"X-CSRF-Token": self.csrf,
                                         "Accept": "application/json"})


def events(app: Flask, machine_id: str) -> list[str]:
    with unit_of_work(app.extensions["daaas"].session_factory) as db:
        return [e.message for e in db.scalars(select(MachineEvent).where(
            MachineEvent.machine_id == machine_id).order_by(MachineEvent.id))]
