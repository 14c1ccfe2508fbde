"""The desktop proxy: websockify with an RFB security proxy in each connection.

Started by :mod:`daaas.portal.access.proxy` as::

    python -m daaas.portal.access.rfbproxy --source /path/to/websockify-XXXX.source 127.0.0.1:6080

where the source file (mode 600, JSON, :func:`daaas.portal.access.tokenplugin.read_source`)
holds the database URL and the portal's secret key. For every websocket
(:class:`RfbProxyHandler`, a websockify ``ProxyRequestHandler``):

1. before the websocket is accepted, the one-time ``?token=`` is spent in the database
   (:class:`daaas.portal.access.tokenplugin.DatabaseTokens`); a missing, unknown, used or
   expired token, or one whose machine is not ready, gets no websocket and not a byte of RFB;
2. the proxy connects to the token's VNC server (its Unix socket when the token has one, else
   host and port) and signs in itself with the machine's VNC password, derived here from the
   secret key and the machine id (:func:`daaas.portal.access.rfb.sign_in_to_server`);
3. to the browser it offers only security type None (:func:`daaas.portal.access.rfb.greet_client`);
4. then it relays bytes both ways in :meth:`RfbProxyHandler.relay`, where every message from
   the browser passes :meth:`RfbProxyHandler.from_browser`, which follows the client message
   stream and drops a viewer's input (:mod:`daaas.portal.sharing.rfbfilter`).

Each connection is recorded in the sharing registry (:mod:`daaas.portal.sharing.registry`)
with the role its token carried; the relay reads its row every
:data:`~daaas.portal.sharing.registry.CHECK_EVERY` seconds, so a role change or a revocation
made by the web process applies within a second.

The browser never receives the password, and tokens are hidden in every log line.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import select
import socket
import sys
import time
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from websockify.websocketproxy import ProxyRequestHandler, WebSocketProxy

from daaas.portal.access.rfb import RfbError, greet_client, refuse_client, sign_in_to_server
from daaas.portal.access.service import DesktopTarget
from daaas.portal.access.tokenplugin import (
    LAUNCHER_ENV,
    DatabaseTokens,
    SourceFileError,
    exit_with_launcher,
    read_source,
    redact_websockify_logs,
)
from daaas.portal.audit.service import set_origin
from daaas.portal.machines.secrets import vnc_password
from daaas.portal.sharing.models import Role
from daaas.portal.sharing.registry import CHECK_EVERY, TOUCH_EVERY, Grant
from daaas.portal.sharing.rfbfilter import ClientMessages, UnknownMessage

log = logging.getLogger("daaas.rfbproxy")
HANDSHAKE_TIMEOUT = 10.0
UNREACHABLE = "The desktop cannot be reached right now. Try again in a moment."
#: TLS is terminated in front of the proxy (docs/admin.md); websockify turns its own TLS on
#: when its certificate file exists, and this path never can.
NO_TLS_CERT = "/dev/null/no-tls-here.pem"


class SocketStream:
    """The VNC server side of the handshake: a socket read with a deadline."""

    def __init__(self, sock: socket.socket, timeout: float = HANDSHAKE_TIMEOUT) -> None:
        self.sock = sock
        self.sock.settimeout(timeout)

    def recv_exactly(self, size: int) -> bytes:
        """Return exactly ``size`` bytes. Raises RfbError when the server closes or is silent.
        """
        data = b""
        while len(data) < size:
            try:
                chunk = self.sock.recv(size - len(data))
            except TimeoutError:
                raise RfbError("the VNC server did not answer in time") from None
            if not chunk:
                raise RfbError("the VNC server closed the connection during the handshake")
            data += chunk
        return data

    def sendall(self, data: bytes) -> None:
        """Send all of ``data``. Raises OSError when the server is gone."""
        self.sock.sendall(data)


class BrowserStream:
    """The browser side of the handshake: websocket frames read as a byte stream.

    Bytes that arrive beyond what the handshake reads (ClientInit sent in the same frame) stay
    in ``buffer`` for the relay.
    """

    def __init__(self, handler: RfbProxyHandler, timeout: float = HANDSHAKE_TIMEOUT) -> None:
        self.handler = handler
        self.buffer = b""
        self.deadline = time.monotonic() + timeout

    def recv_exactly(self, size: int) -> bytes:
        """Return exactly ``size`` bytes. Raises RfbError when the browser closes or is silent.
        """
        while len(self.buffer) < size:
            if not self.handler.request.pending():
                remaining = self.deadline - time.monotonic()
                if remaining <= 0 or not select.select([self.handler.request], [], [],
                                                       remaining)[0]:
                    raise RfbError("the browser did not answer in time")
            frames, closed = self.handler.recv_frames()
            self.buffer += b"".join(frames)
            if closed and len(self.buffer) < size:
                raise RfbError("the browser closed the connection during the handshake")
        data, self.buffer = self.buffer[:size], self.buffer[size:]
        return data

    def sendall(self, data: bytes) -> None:
        """Send ``data`` as one websocket frame. Raises OSError when the browser is gone."""
        pending = self.handler.send_frames([data])
        while pending:
            select.select([], [self.handler.request], [], HANDSHAKE_TIMEOUT)
            pending = self.handler.send_frames()


class RfbProxyHandler(ProxyRequestHandler):  # type: ignore[misc]  # websockify has no types
    """One browser connection: spend its token, sign in to its VNC server, relay.

    websockify runs each in a forked child process, so the attributes below are this
    connection's alone.
    """

    server: RfbProxyServer
    target: DesktopTarget | None = None
    role: Role = Role.OWNER
    grant: Grant | None = None
    connection_id: int | None = None
    messages: ClientMessages | None = None
    _checked_at = 0.0
    _touched_at = 0.0

    def validate_connection(self) -> None:
        """Spend the ``?token=`` of the request before the websocket is accepted.

        Returns None with ``target`` and ``role`` set. Raises websockify's EClose (no
        websocket, nothing sent) when the token is missing or refused.
        """
        token = self.token_from_path()
        if not token:
            raise self.server.EClose("no desktop token in the request")
        target = self.server.tokens.lookup(token)
        if target is None:
            raise self.server.EClose("desktop token refused")
        grant = self.server.tokens.grant(token)
        if grant is None:
            raise self.server.EClose("desktop token's role unknown")
        self.target, self.grant, self.role = target, grant, grant.role

    def token_from_path(self) -> str:
        """Return the request's ``?token=`` ("" when there is none). Raises nothing."""
        values = parse_qs(urlsplit(self.path).query).get("token", [""])
        return values[0].strip()

    def new_websocket_client(self) -> None:
        """Sign in to the token's VNC server, greet the browser with security None, relay.

        Returns when either side closes. Raises websockify's CClose (which closes the
        websocket) when the desktop cannot be reached or signed in to, or the browser does
        not complete the handshake; the browser is told only that the desktop is unreachable.
        """
        target = self.target
        assert target is not None, "validate_connection sets the target first"
        browser = BrowserStream(self)
        with contextlib.suppress(OSError):
            self.request.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        try:
            server = connect(target)
        except OSError as error:
            log.warning("machine %s: cannot connect to its VNC server at %s: %s",
                        target.machine_id, target.describe(), error.strerror or error)
            self._refuse(browser, UNREACHABLE)
            raise self.CClose(1011, "desktop unreachable") from None
        try:
            self._handshake(target, SocketStream(server), browser)
            server.settimeout(None)
            self._mark_seen()
            self._register(target)
            self.relay(server, browser.buffer)
        finally:
            if self.connection_id is not None:
                self.server.tokens.close(self.connection_id)
            with contextlib.suppress(OSError):
                server.shutdown(socket.SHUT_RDWR)
            server.close()
            self._mark_seen()
            log.info("machine %s: desktop connection closed", target.machine_id)

    def _handshake(self, target: DesktopTarget, server: SocketStream,
                   browser: BrowserStream) -> None:
        password = vnc_password(self.server.secret_key, target.machine_id)
        try:
            used = sign_in_to_server(server, password)
        except (RfbError, OSError) as error:
            log.warning("machine %s: signing in to its VNC server at %s failed: %s",
                        target.machine_id, target.describe(), error)
            self._refuse(browser, UNREACHABLE)
            raise self.CClose(1011, "desktop sign-in failed") from None
        try:
            greet_client(browser)
        except (RfbError, OSError) as error:
            log.warning("machine %s: the browser's RFB handshake failed: %s",
                        target.machine_id, error)
            raise self.CClose(1002, "RFB handshake failed") from None
        log.info("machine %s: signed in to its VNC server at %s (%s); the browser got "
                 "security type None; relaying as %s", target.machine_id, target.describe(),
                 used.name, self.role.value)

    @staticmethod
    def _refuse(browser: BrowserStream, reason: str) -> None:
        with contextlib.suppress(RfbError, OSError):
            refuse_client(browser, reason)

    #: How often an open connection is recorded as activity (the idle stop reads it).
    SEEN_EVERY = 60.0
    _seen_at = 0.0

    def _mark_seen(self, *, every: float = 0.0) -> None:
        """Record the connection as the machine's desktop activity, unless it was recorded
        less than ``every`` seconds ago (time.monotonic). Raises nothing."""
        if self.target is None or time.monotonic() - self._seen_at < every:
            return
        self._seen_at = time.monotonic()
        self.server.tokens.seen(self.target.machine_id)

    def _register(self, target: DesktopTarget) -> None:
        assert self.grant is not None, "validate_connection reads the grant first"
        self.connection_id = self.server.tokens.open(target.machine_id, self.grant)
        if self.connection_id is None:
            raise self.CClose(1011, "desktop connection not recorded")
        self._checked_at = self._touched_at = time.monotonic()

    def check_registry(self) -> None:
        """Apply the registry's word on this connection, read at most every CHECK_EVERY
        seconds: its current role, or close it when it was ended (revoked). Returns None;
        raises CClose (code 4001, the reason) for an ended connection."""
        now = time.monotonic()
        if self.connection_id is None or now - self._checked_at < CHECK_EVERY:
            return
        self._checked_at = now
        touch = now - self._touched_at >= TOUCH_EVERY
        found = self.server.tokens.check(self.connection_id, touch=touch)
        if found is None:
            return
        if touch:
            self._touched_at = now
        role, ended = found
        if ended:
            log.info("machine %s: connection %s ended: %s", self.target and
                     self.target.machine_id, self.connection_id, ended)
            raise self.CClose(4001, ended[:100])
        if role is not self.role:
            log.info("connection %s: role %s -> %s", self.connection_id, self.role.value,
                     role.value)
            self.role = role

    def from_browser(self, data: bytes) -> bytes:
        """Return what of ``data`` (bytes of RFB client messages) goes on to the VNC server.

        The client message stream is followed across frames
        (:class:`~daaas.portal.sharing.rfbfilter.ClientMessages`): ClientInit always asks for a
        shared session, and a viewer's input (key, pointer, clipboard, desktop size, xvp,
        QEMU) is dropped, its SetPixelFormat, SetEncodings, FramebufferUpdateRequest,
        EnableContinuousUpdates and ClientFence pass. Raises CClose (1008) when a viewer sends
        a message the proxy cannot measure.
        """
        if self.messages is None:
            self.messages = ClientMessages()
        try:
            return self.messages.feed(data, viewer=self.role is Role.VIEWER)
        except UnknownMessage as error:
            log.warning("connection %s (viewer): %s; closing", self.connection_id, error)
            raise self.CClose(1008, "unsupported message from a viewer") from None

    def relay(self, server: socket.socket, pending: bytes = b"") -> None:
        """Relay bytes between the browser's websocket and the VNC server until one closes.

        ``pending`` holds browser bytes that arrived with the handshake. Browser bytes pass
        :meth:`from_browser`. Returns None; raises websockify's CClose when either side
        closes (the websocket is then closed with that code), OSError when a socket fails.
        """
        to_server = [part for part in [self.from_browser(pending)] if part]
        to_browser: list[bytes] = []
        browser_blocked = False
        while True:
            self._mark_seen(every=self.SEEN_EVERY)
            self.check_registry()
            writers = ([server] if to_server else []) + \
                ([self.request] if to_browser or browser_blocked else [])
            wait = 0 if self.request.pending() else CHECK_EVERY
            readable, writable, _ = select.select([self.request, server], writers, [], wait)
            if self.request in writable:
                browser_blocked = self.send_frames(to_browser)
                to_browser = []
            if self.request in readable or self.request.pending():
                frames, closed = self.recv_frames()
                to_server.extend(part for part in map(self.from_browser, frames) if part)
                if closed:
                    _send_all(server, to_server)
                    raise self.CClose(closed["code"], closed["reason"])
            if server in writable and to_server:
                sent = server.send(to_server[0])
                to_server[0] = to_server[0][sent:]
                if not to_server[0]:
                    to_server.pop(0)
            if server in readable:
                data = server.recv(self.buffer_size)
                if not data:
                    blocked = self.send_frames(to_browser)
                    while blocked:
                        blocked = self.send_frames()
                    raise self.CClose(1000, "desktop closed")
                to_browser.append(data)


class RfbProxyServer(WebSocketProxy):  # type: ignore[misc]  # websockify has no types
    """websockify's proxy server with :class:`RfbProxyHandler` and the proxy's secrets."""

    def __init__(self, tokens: DatabaseTokens, secret_key: str, **options: Any) -> None:
        self.tokens = tokens
        self.secret_key = secret_key
        super().__init__(RequestHandlerClass=RfbProxyHandler, **{"cert": NO_TLS_CERT, **options})

    def started(self) -> None:
        """Log where the proxy listens (websockify calls this once it does). Raises nothing."""
        self.msg("  - RFB security proxy on %s:%s: one-time desktop tokens, VNC sign-in "
                 "by the proxy, security type None to browsers",
                 self.listen_host, self.listen_port)


def connect(target: DesktopTarget, timeout: float = HANDSHAKE_TIMEOUT) -> socket.socket:
    """Return a socket connected to the target's VNC server (Unix socket or TCP).

    Raises OSError when it cannot be reached within ``timeout`` seconds.
    """
    if target.socket_path:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.settimeout(timeout)
            sock.connect(target.socket_path)
        except OSError:
            sock.close()
            raise
        return sock
    sock = socket.create_connection((target.host, target.port), timeout=timeout)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


def _send_all(sock: socket.socket, parts: list[bytes]) -> None:
    with contextlib.suppress(OSError):
        for part in parts:
            sock.sendall(part)


def parse_listen(text: str) -> tuple[str, int]:
    """Return (host, port) of ``host:port`` or ``[v6]:port``. Raises ValueError if malformed."""
    host, _, port = text.rpartition(":")
    if not host or not port.isdigit():
        raise ValueError(f"expected HOST:PORT, not {text!r}")
    return host.strip("[]"), int(port)


def main(argv: list[str] | None = None) -> int:
    """Run the desktop proxy until SIGTERM (or until its launcher is gone).

    Returns the exit status: 2 when the source file or the arguments are unusable (the reason
    on stderr), 0 after a clean stop.
    """
    parser = argparse.ArgumentParser(prog="python -m daaas.portal.access.rfbproxy",
                                     description="The portal's desktop proxy.")
    parser.add_argument("--source", required=True,
                        help="mode-600 JSON file with database_url and secret_key")
    parser.add_argument("listen", help="HOST:PORT to listen on")
    args = parser.parse_args(argv)
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    logging.getLogger().addHandler(handler)
    logging.getLogger().setLevel(logging.INFO)
    redact_websockify_logs()
    try:
        secrets = read_source(Path(args.source))
        host, port = parse_listen(args.listen)
    except (SourceFileError, ValueError) as error:
        print(f"desktop proxy: {error}", file=sys.stderr)
        return 2
    set_origin("proxy")  # audit rows of joins and leaves come from the desktop proxy
    launcher = os.environ.get(LAUNCHER_ENV, "")
    if launcher.isdigit():
        exit_with_launcher(int(launcher))
    server = RfbProxyServer(DatabaseTokens(secrets.database_url), secrets.secret_key,
                            listen_host=host, listen_port=port)
    server.start_server()
    return 0


if __name__ == "__main__":
    sys.exit(main())
