"""Just enough of the X11 protocol to ask a session's X server whether a window manager runs.

The desktop program must start only once the window manager is fully up: started together
with openbox, pcmanfm's desktop window is left unmapped (a black screen) in most tries, and
even after openbox owns ``WM_S0`` in some. Openbox sets ``_NET_SUPPORTING_WM_CHECK`` on the
root window late in its start-up (EWMH); waiting for that was reliable. A few requests over the
session's X socket answer this without an X library or another Debian package.
"""

from __future__ import annotations

import socket
import struct

from portal.providers.local_session import x_socket

INTERN_ATOM, GET_PROPERTY = 16, 20


def _receive(connection: socket.socket, size: int) -> bytes:
    data = b""
    while len(data) < size:
        chunk = connection.recv(size - len(data))
        if not chunk:
            raise ConnectionError("X server closed the connection")
        data += chunk
    return data


def _connect(display: int, timeout: float) -> tuple[socket.socket, int]:
    """Open an (unauthenticated, local) X connection; return it and the root window id."""
    connection = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    connection.settimeout(timeout)
    try:
        connection.connect(str(x_socket(display)))
        connection.sendall(struct.pack("<cxHHHHxx", b"l", 11, 0, 0, 0))
        head = _receive(connection, 8)
        setup = _receive(connection, struct.unpack_from("<H", head, 6)[0] * 4)
        if head[0] != 1:
            raise ConnectionRefusedError(f"X server :{display} refused the connection")
    except BaseException:
        connection.close()
        raise
    vendor_length, formats = struct.unpack_from("<H", setup, 16)[0], setup[21]
    screens_at = 32 + vendor_length + (-vendor_length % 4) + 8 * formats
    return connection, struct.unpack_from("<I", setup, screens_at)[0]


def _reply(connection: socket.socket) -> tuple[bytes, bytes]:
    """Return the next reply's fixed 32 bytes and its extra data; skip events."""
    while True:
        packet = _receive(connection, 32)
        if packet[0] == 1:
            return packet, _receive(connection, struct.unpack_from("<I", packet, 4)[0] * 4)
        if packet[0] == 0:
            raise OSError(f"X error code {packet[1]}")


def root_property_set(display: int, name: str, timeout: float = 2.0) -> bool:
    """Return True if the root window of ``:display`` has property ``name``.

    Raises OSError if the X server cannot be reached or answers with an error.
    """
    encoded = name.encode()
    padded = encoded + b"\0" * (-len(encoded) % 4)
    connection, root = _connect(display, timeout)
    with connection:
        connection.sendall(struct.pack("<BBHHxx", INTERN_ATOM, 1, 2 + len(padded) // 4,
                                       len(encoded)) + padded)
        atom = struct.unpack_from("<I", _reply(connection)[0], 8)[0]
        if atom == 0:  # the atom does not even exist yet
            return False
        connection.sendall(struct.pack("<BBHIIIII", GET_PROPERTY, 0, 6, root, atom, 0, 0, 1))
        reply, _ = _reply(connection)
        return bool(struct.unpack_from("<I", reply, 8)[0])  # type None: no such property


def window_manager_running(display: int) -> bool:
    """Return True once an EWMH window manager has finished starting on ``:display``."""
    try:
        return root_property_set(display, "_NET_SUPPORTING_WM_CHECK")
    except OSError:
        return False
