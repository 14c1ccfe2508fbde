"""The RFB (VNC) handshake of the desktop proxy: it signs in to the VNC server itself and offers
the browser only security type None, so the browser never needs, nor sees, a VNC password.

This is the way Nova's console proxy does it (an "RFB security proxy"). RFB 3.8 only
(RFC 6143), which every VNC server and noVNC of the last fifteen years speaks:

* to the VNC server (:func:`sign_in_to_server`) the proxy is the client: it reads the server's
  ProtocolVersion, answers ``RFB 003.008``, picks VNC authentication (type 2) and answers the
  16-byte DES challenge with the machine's password, or picks None (type 1) where the server
  offers only that, and reads the SecurityResult;
* to the browser (:func:`greet_client`) it is the server: ``RFB 003.008``, the security types
  ``[None]``, and SecurityResult OK; or, when the server could not be signed in to, a failure
  with a reason that tells nothing about the server (:func:`refuse_client`).

After that both sides are in the initialisation phase (ClientInit, ServerInit) and the proxy
only relays bytes. The streams are anything with ``recv_exactly`` and ``sendall``
(:class:`Stream`), so the same code runs against a socket and against websocket frames.
"""

from __future__ import annotations

import re
import struct
from enum import IntEnum
from typing import Protocol

from cryptography.hazmat.primitives.ciphers import Cipher, modes

try:  # cryptography >= 43 keeps the old ciphers apart
    from cryptography.hazmat.decrepit.ciphers.algorithms import TripleDES
except ImportError:  # pragma: no cover - cryptography < 43
    from cryptography.hazmat.primitives.ciphers.algorithms import (  # type: ignore[no-redef,unused-ignore]
        TripleDES,
    )

VERSION_3_8 = b"RFB 003.008\n"
VERSION_LENGTH = 12
CHALLENGE_LENGTH = 16
MAX_REASON_LENGTH = 4096
VERSION_PATTERN = re.compile(rb"RFB (\d{3})\.(\d{3})\n")
RESULT_OK = struct.pack("!I", 0)
RESULT_FAILED = struct.pack("!I", 1)


class SecurityType(IntEnum):
    """RFB security types the proxy knows (RFC 6143, 7.1.2)."""

    INVALID = 0
    NONE = 1
    VNC_AUTH = 2


class RfbError(Exception):
    """The RFB handshake failed; the message says why (never with a password or a token)."""


class Stream(Protocol):
    """One side of the handshake: read exactly n bytes, send all bytes."""

    def recv_exactly(self, size: int) -> bytes:
        """Return exactly ``size`` bytes. Raises RfbError when the peer closes or times out."""

    def sendall(self, data: bytes) -> None:
        """Send all of ``data``. Raises OSError when the peer is gone."""


def sign_in_to_server(server: Stream, password: str) -> SecurityType:
    """Do the client half of the RFB 3.8 handshake with a VNC server, up to SecurityResult OK.

    Prefers VNC authentication with ``password``; accepts a server that offers only None.
    Returns the security type used. Raises RfbError when the server speaks an older protocol,
    refuses the connection, offers no type the proxy supports, or rejects the password (the
    message quotes the server's reason).
    """
    major, minor = parse_version(server.recv_exactly(VERSION_LENGTH))
    if (major, minor) < (3, 8):
        raise RfbError(f"the VNC server speaks RFB {major}.{minor}; the proxy needs 3.8")
    server.sendall(VERSION_3_8)
    count = server.recv_exactly(1)[0]
    if count == 0:
        raise RfbError(f"the VNC server refused the connection: {read_reason(server)}")
    offered = list(server.recv_exactly(count))
    if SecurityType.VNC_AUTH in offered:
        chosen = SecurityType.VNC_AUTH
    elif SecurityType.NONE in offered:
        chosen = SecurityType.NONE
    else:
        server.sendall(bytes([SecurityType.INVALID]))
        raise RfbError(f"the VNC server offers no security type the proxy supports "
                       f"(offered {offered}; supported: None, VncAuth)")
    server.sendall(bytes([chosen]))
    if chosen is SecurityType.VNC_AUTH:
        challenge = server.recv_exactly(CHALLENGE_LENGTH)
        server.sendall(vnc_auth_response(password, challenge))
    if server.recv_exactly(4) != RESULT_OK:
        raise RfbError(f"the VNC server rejected the sign-in ({chosen.name}): "
                       f"{read_reason(server)}")
    return chosen


def greet_client(client: Stream) -> None:
    """Do the server half of the RFB 3.8 handshake with the browser, offering only None.

    Sends ``RFB 003.008``, reads the client's version, offers ``[None]``, reads its choice and
    sends SecurityResult OK. Returns None. Raises RfbError when the client speaks another
    version or picks another type (it is sent a failure with a reason first).
    """
    read_client_version(client)
    client.sendall(bytes([1, SecurityType.NONE]))
    choice = client.recv_exactly(1)[0]
    if choice != SecurityType.NONE:
        client.sendall(RESULT_FAILED + reason_bytes("only security type None is offered"))
        raise RfbError(f"the browser picked security type {choice}, not None")
    client.sendall(RESULT_OK)


def read_client_version(client: Stream) -> None:
    """Send ``RFB 003.008`` to the browser and read its answer.

    Returns None. Raises RfbError when the answer is not exactly RFB 3.8.
    """
    client.sendall(VERSION_3_8)
    answer = client.recv_exactly(VERSION_LENGTH)
    if answer != VERSION_3_8:
        raise RfbError(f"the browser answered RFB version {answer!r}, not 3.8")


def refuse_client(client: Stream, reason: str) -> None:
    """Tell the browser, after the version exchange, that the connection failed with ``reason``.

    RFB's way: zero security types followed by a reason string, which noVNC shows. Returns
    None. Raises RfbError when the browser does not answer the version, OSError when it is gone.
    """
    read_client_version(client)
    client.sendall(b"\x00" + reason_bytes(reason))


def parse_version(data: bytes) -> tuple[int, int]:
    """Return (major, minor) of an RFB ProtocolVersion message. Raises RfbError if it is not one.
    """
    match = VERSION_PATTERN.fullmatch(data)
    if match is None:
        raise RfbError(f"not an RFB server: it greeted with {data[:VERSION_LENGTH]!r}")
    return int(match.group(1)), int(match.group(2))


def read_reason(stream: Stream) -> str:
    """Read an RFB reason string (u32 length, then text). Returns it; raises RfbError."""
    length = struct.unpack("!I", stream.recv_exactly(4))[0]
    if length > MAX_REASON_LENGTH:
        raise RfbError(f"the VNC server sent a {length}-byte reason")
    return stream.recv_exactly(length).decode("utf-8", errors="replace") or "no reason given"


def reason_bytes(reason: str) -> bytes:
    """Return ``reason`` as an RFB reason string (u32 length, UTF-8 text). Raises nothing."""
    text = reason.encode("utf-8")
    return struct.pack("!I", len(text)) + text


def vnc_auth_response(password: str, challenge: bytes) -> bytes:
    """Return the answer to a VNC authentication challenge: the 16 bytes DES-encrypted.

    VNC's key is the password's first 8 bytes (zero-padded), each byte's bits reversed; DES is
    Triple DES with that 8-byte key three times. Raises ValueError for a challenge that is not
    16 bytes.
    """
    if len(challenge) != CHALLENGE_LENGTH:
        raise ValueError(f"a VNC challenge has {CHALLENGE_LENGTH} bytes, not {len(challenge)}")
    secret = password.encode("latin-1", "replace")[:8].ljust(8, b"\0")
    key = bytes(_reverse_bits(byte) for byte in secret)
    encryptor = Cipher(TripleDES(key * 3), modes.ECB()).encryptor()
    return encryptor.update(challenge) + encryptor.finalize()


def _reverse_bits(byte: int) -> int:
    return int(f"{byte:08b}"[::-1], 2)
