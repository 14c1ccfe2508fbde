"""The RFB handshake halves of the desktop proxy against scripted peers over socket pairs: it
signs in to a server with VNC authentication (the DES answer checked against TigerVNC's own
vncpasswd) or None, refuses old servers and unknown security types, and offers a client only
None. The real Xvnc behind the real proxy is in tests/integration/test_access_proxy.py."""

from __future__ import annotations

import shutil
import socket
import struct
import subprocess
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import pytest

from daaas.portal.access.rfb import (
    RfbError,
    SecurityType,
    greet_client,
    refuse_client,
    sign_in_to_server,
    vnc_auth_response,
)
from daaas.portal.access.rfbproxy import SocketStream

CHALLENGE = bytes(range(16))


@contextmanager
def peer(script: Callable[[socket.socket], None]) -> Iterator[socket.socket]:
    """Yield our end of a socket pair while ``script`` plays the other end in a thread."""
    ours, theirs = socket.socketpair()
    errors: list[BaseException] = []

    def run() -> None:
        try:
            script(theirs)
        except BaseException as error:  # reported by the test below
            errors.append(error)
        finally:
            theirs.close()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    yield ours
    ours.close()
    thread.join(5)
    if errors:
        raise errors[0]


def read(sock: socket.socket, size: int) -> bytes:
    data = b""
    while len(data) < size:
        chunk = sock.recv(size - len(data))
        assert chunk, "closed early"
        data += chunk
    return data


def vnc_server(types: bytes, *, version: bytes = b"RFB 003.008\n", password: str = "Secret12",
               seen: list[bytes] | None = None) -> Callable[[socket.socket], None]:
    def script(sock: socket.socket) -> None:
        sock.sendall(version)
        if version != b"RFB 003.008\n":
            return
        assert read(sock, 12) == b"RFB 003.008\n"
        sock.sendall(bytes([len(types)]) + types)
        choice = read(sock, 1)[0]
        if seen is not None:
            seen.append(bytes([choice]))
        if choice == SecurityType.INVALID:  # the client gave up; it has closed
            return
        if choice == SecurityType.VNC_AUTH:
            sock.sendall(CHALLENGE)
            ok = read(sock, 16) == vnc_auth_response(password, CHALLENGE)
        else:
            ok = choice == SecurityType.NONE
        if ok:
            sock.sendall(struct.pack("!I", 0))
        else:
            reason = b"Authentication failure"
            sock.sendall(struct.pack("!II", 1, len(reason)) + reason)
    return script


def test_vnc_auth_is_des_as_tigervnc_does_it() -> None:
    vncpasswd = shutil.which("vncpasswd")
    if vncpasswd is None:
        pytest.skip("vncpasswd (tigervnc-tools) not installed")
    # vncpasswd -f stores VNC-DES(fixed key, password); the answer is VNC-DES(password, challenge)
    fixed_key = bytes([23, 82, 107, 6, 35, 78, 88, 7]).decode("latin-1")
    stored = subprocess.run([vncpasswd, "-f"], input=b"Pw4vncXY", capture_output=True,
                            check=True).stdout
    assert vnc_auth_response(fixed_key, b"Pw4vncXY" * 2)[:8] == stored


def test_signs_in_with_vnc_auth_when_offered() -> None:
    seen: list[bytes] = []
    offered = bytes([SecurityType.NONE, SecurityType.VNC_AUTH])
    with peer(vnc_server(offered, seen=seen)) as sock:
        assert sign_in_to_server(SocketStream(sock), "Secret12") is SecurityType.VNC_AUTH
    assert seen == [bytes([SecurityType.VNC_AUTH])]


def test_a_server_that_asks_nothing_is_fine() -> None:
    with peer(vnc_server(bytes([SecurityType.NONE]))) as sock:
        assert sign_in_to_server(SocketStream(sock), "unused") is SecurityType.NONE


def test_a_wrong_password_is_an_error_with_the_servers_reason() -> None:
    with peer(vnc_server(bytes([SecurityType.VNC_AUTH]), password="Other999")) as sock, \
            pytest.raises(RfbError, match=r"rejected the sign-in.*Authentication failure"):
        sign_in_to_server(SocketStream(sock), "Secret12")


def test_old_servers_and_unknown_types_are_refused() -> None:
    with peer(vnc_server(b"", version=b"RFB 003.003\n")) as sock, \
            pytest.raises(RfbError, match=r"RFB 3\.3"):
        sign_in_to_server(SocketStream(sock), "Secret12")
    seen: list[bytes] = []
    with peer(vnc_server(bytes([18, 19]), seen=seen)) as sock, \
            pytest.raises(RfbError, match=r"offered \[18, 19\]"):
        sign_in_to_server(SocketStream(sock), "Secret12")
    assert seen == [bytes([SecurityType.INVALID])]


def test_the_client_is_offered_none_only() -> None:
    def client(sock: socket.socket) -> None:
        assert read(sock, 12) == b"RFB 003.008\n"
        sock.sendall(b"RFB 003.008\n")
        assert read(sock, 2) == bytes([1, SecurityType.NONE])
        sock.sendall(bytes([SecurityType.NONE]))
        assert read(sock, 4) == struct.pack("!I", 0)

    with peer(client) as sock:
        greet_client(SocketStream(sock))


def test_a_client_that_wants_a_password_is_refused() -> None:
    def client(sock: socket.socket) -> None:
        read(sock, 12)
        sock.sendall(b"RFB 003.008\n")
        read(sock, 2)
        sock.sendall(bytes([SecurityType.VNC_AUTH]))
        assert read(sock, 4) == struct.pack("!I", 1)

    with peer(client) as sock, pytest.raises(RfbError, match="picked security type 2"):
        greet_client(SocketStream(sock))


def test_a_refusal_carries_the_reason() -> None:
    def client(sock: socket.socket) -> None:
        read(sock, 12)
        sock.sendall(b"RFB 003.008\n")
        assert read(sock, 1) == b"\x00"
        length = struct.unpack("!I", read(sock, 4))[0]
        assert read(sock, length) == b"The desktop cannot be reached"

    with peer(client) as sock:
        refuse_client(SocketStream(sock), "The desktop cannot be reached")
