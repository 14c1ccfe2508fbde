"""Helpers for the desktop-proxy tests: a real TigerVNC Xvnc (on a Unix socket or a loopback
TCP port, with VNC authentication or none), a provider double that points every machine at it,
and a raw RFB client that talks to the proxy over a websocket the way noVNC does."""

from __future__ import annotations

import os
import select
import shutil
import struct
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from flask import Flask

from daaas.portal.access.proxy import ProxyProcess, start_proxy
from daaas.portal.access.service import issue_desktop_token
from daaas.portal.auth.service import get_user
from daaas.portal.config import load_settings
from daaas.portal.db import unit_of_work
from daaas.portal.machines.secrets import vnc_password
from daaas.portal.providers import ConnectionTarget, Provider
from tests.support.access import WebSocketClient, free_port, make_machine
from tests.support.machines import SECRET_KEY
from tests.support.providers import InMemoryProvider

XVNC = shutil.which("Xvnc")
VNCPASSWD = shutil.which("vncpasswd") or shutil.which("tigervncpasswd")
GEOMETRY = (800, 600)


def require_xvnc() -> tuple[str, str]:
    """Return the paths of Xvnc and vncpasswd (skips locally, fails in CI, naming the packages)."""
    if XVNC and VNCPASSWD:
        return XVNC, VNCPASSWD
    message = "Xvnc and vncpasswd are needed: apt-get install tigervnc-standalone-server " \
              "tigervnc-tools"
    if os.environ.get("CI"):
        pytest.fail(message)
    pytest.skip(message)
    raise AssertionError("unreachable")


class Xvnc:
    """A real Xvnc without X over TCP, started with ``-displayfd`` (it picks a free display).

    With ``socket_path`` it listens only on that Unix socket (``-rfbport -1``); with
    ``tcp_port`` only on 127.0.0.1:tcp_port. ``security`` is ``"VncAuth"`` (password from
    :meth:`set_password`, read by Xvnc at each connection) or ``"None"``.
    """

    def __init__(self, folder: Path, *, security: str = "VncAuth",
                 socket_path: Path | None = None, tcp_port: int | None = None) -> None:
        xvnc, self.vncpasswd = require_xvnc()
        folder.mkdir(parents=True, exist_ok=True)
        self.password_file = folder / "passwd"
        self.set_password("unset-00")
        self.socket_path = socket_path
        self.tcp_port = tcp_port
        width, height = GEOMETRY
        argv = [xvnc, "-displayfd", "", "-geometry", f"{width}x{height}", "-depth", "24",
                "-SecurityTypes", security, "-PasswordFile", str(self.password_file),
                "-nolisten", "tcp", "-desktop", "proxy-test"]
        if socket_path is not None:
            argv += ["-rfbport", "-1", "-rfbunixpath", str(socket_path)]
        else:
            assert tcp_port is not None
            argv += ["-rfbport", str(tcp_port), "-localhost", "-interface", "127.0.0.1"]
        read_end, write_end = os.pipe()
        argv[2] = str(write_end)
        self.log = (folder / "xvnc.log").open("wb")
        self.process = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=self.log,
                                        stderr=subprocess.STDOUT, pass_fds=(write_end,),
                                        start_new_session=True)
        os.close(write_end)
        try:
            self.display = int(_read_line(read_end, 15.0))
        except (ValueError, TimeoutError):
            self.stop()
            log = (folder / "xvnc.log").read_text(errors="replace")
            raise AssertionError(f"Xvnc did not start: {log}") from None
        finally:
            os.close(read_end)
        if socket_path is not None:
            _wait_for(socket_path.exists, 10.0, f"Xvnc's socket {socket_path}")

    def set_password(self, password: str) -> None:
        """Make ``password`` the VNC password (vncpasswd -f writes the obfuscated file)."""
        encoded = subprocess.run([self.vncpasswd, "-f"], input=password.encode(),
                                 capture_output=True, check=True).stdout
        self.password_file.write_bytes(encoded)
        self.password_file.chmod(0o600)

    def target(self) -> ConnectionTarget:
        """Return where the proxy reaches this Xvnc, as a provider would say it."""
        if self.socket_path is not None:
            return ConnectionTarget(host="", vnc_port=0, vnc_socket=str(self.socket_path))
        assert self.tcp_port is not None
        return ConnectionTarget(host="127.0.0.1", vnc_port=self.tcp_port)

    def stop(self) -> None:
        """End Xvnc (SIGTERM, then SIGKILL) and close its log."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)
        self.log.close()


def _read_line(fd: int, timeout: float) -> str:
    data = b""
    deadline = time.monotonic() + timeout
    while not data.endswith(b"\n"):
        remaining = deadline - time.monotonic()
        if remaining <= 0 or not select.select([fd], [], [], remaining)[0]:
            raise TimeoutError("no display number")
        chunk = os.read(fd, 64)
        if not chunk:
            break
        data += chunk
    return data.decode().strip()


def _wait_for(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"{what} did not appear in {timeout:.0f} s"
        time.sleep(0.05)


def proxy_settings(override: dict[str, Any]) -> dict[str, Any]:
    """Return the test portal's settings ``override`` on the in-memory provider, with the
    desktop proxy on a free port."""
    return {**override, "provider": "memory", "websockify_port": free_port()}


def running_proxy(override: dict[str, Any]) -> Iterator[ProxyProcess]:
    """For a fixture's ``yield from``: the real desktop proxy (its own process) for the portal
    of settings ``override``, stopped (and checked gone) after the test."""
    settings = load_settings(override, environ={})
    running = start_proxy(settings, settings.effective_database_url)
    yield running
    running.stop()
    assert not running.running()


def xvnc_on_socket(folder: Path) -> Iterator[Xvnc]:
    """For a fixture's ``yield from``: a real Xvnc with VNC authentication listening only on
    the Unix socket ``folder``/vnc.sock, stopped after the test."""
    server = Xvnc(folder / "xvnc", socket_path=folder / "vnc.sock")
    yield server
    server.stop()


def desktop_token(app: Flask, provider: Provider, username: str = "scientist",
                  machine_id: str | None = None) -> tuple[str, str]:
    """Return (machine id, one-time token) for ``username``'s machine ``machine_id`` (by
    default a new ready one) served by ``provider``."""
    machine_id = machine_id or make_machine(app, username)
    rt = app.extensions["daaas"]
    with unit_of_work(rt.session_factory) as db:
        grant = issue_desktop_token(db, rt.settings, provider, get_user(db, username),
                                    machine_id)
    return machine_id, grant.token


def owned_desktop(app: Flask, xvnc: Xvnc, username: str = "scientist") -> tuple[str, str]:
    """A new machine whose VNC server is ``xvnc`` with that machine's derived password;
    returns (machine id, one-time token)."""
    machine_id, token = desktop_token(app, VncTarget(xvnc.target()), username)
    xvnc.set_password(vnc_password(SECRET_KEY, machine_id))
    return machine_id, token


class VncTarget(InMemoryProvider):
    """An in-memory provider whose machines all have one given VNC server."""

    name = "vnc-target"

    def __init__(self, target: ConnectionTarget) -> None:
        super().__init__()
        self.target = target

    def connection_target(self, machine_id: str) -> ConnectionTarget:
        return self.target


@dataclass(frozen=True)
class ServerInit:
    """What an RFB server tells its client once the handshake is done."""

    width: int
    height: int
    name: str


class RfbOverWebSocket:
    """A raw RFB client that speaks through the proxy's websocket, as noVNC does."""

    def __init__(self, port: int, token: str) -> None:
        self.ws = WebSocketClient(port, f"/?token={token}")
        self.buffer = b""

    @property
    def accepted(self) -> bool:
        """True when the proxy accepted the websocket (HTTP 101)."""
        return self.ws.accepted

    def recv_exactly(self, size: int) -> bytes:
        """Return exactly ``size`` bytes of the RFB stream (ConnectionError when it closes)."""
        while len(self.buffer) < size:
            self.buffer += self.ws.receive()
        data, self.buffer = self.buffer[:size], self.buffer[size:]
        return data

    def send(self, data: bytes) -> None:
        """Send ``data`` in one websocket frame."""
        self.ws.send(data)

    def security_types(self) -> list[int]:
        """Exchange versions (RFB 3.8); return the security types offered.

        An empty list means refused: the reason is then in :attr:`reason`.
        """
        self.version = self.recv_exactly(12)
        self.send(b"RFB 003.008\n")
        count = self.recv_exactly(1)[0]
        self.reason = ""
        if count == 0:
            length = struct.unpack("!I", self.recv_exactly(4))[0]
            self.reason = self.recv_exactly(length).decode()
            return []
        return list(self.recv_exactly(count))

    def open_with_none(self, *, one_frame: bool = False) -> ServerInit:
        """After :meth:`security_types`: pick None, check SecurityResult OK, send ClientInit
        (shared) and return the ServerInit. With ``one_frame`` the choice and ClientInit go
        in one websocket frame, before the SecurityResult is read."""
        self.send(bytes([1, 1]) if one_frame else bytes([1]))
        result = struct.unpack("!I", self.recv_exactly(4))[0]
        assert result == 0, f"SecurityResult {result}"
        if not one_frame:
            self.send(bytes([1]))
        width, height = struct.unpack("!HH", self.recv_exactly(4))
        self.recv_exactly(16)  # pixel format
        length = struct.unpack("!I", self.recv_exactly(4))[0]
        return ServerInit(width, height, self.recv_exactly(length).decode())

    def close(self) -> None:
        """Close the connection."""
        self.ws.close()
