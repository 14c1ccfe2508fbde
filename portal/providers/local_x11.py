"""Just enough of the X11 protocol to ask a session's X server whether a window manager runs.

Started together with openbox, pcmanfm's desktop window is left unmapped (a black screen) in
most tries; started after openbox has set ``_NET_SUPPORTING_WM_CHECK`` (EWMH), still in about
one try in sixteen, when openbox never manages it. So the desktop is started after that, and
restarted if the window manager's ``_NET_CLIENT_LIST`` stays empty. A few requests over the
session's X socket answer both questions without an X library or another Debian package.
"""

from __future__ import annotations

import socket
import struct

from daaas.portal.providers.errors import LaunchFailed
from daaas.portal.providers.local_procs import ProcRef, is_alive, stop, wait_for
from daaas.portal.providers.local_session import SessionPaths, x_socket
from daaas.portal.providers.local_start import start_program

INTERN_ATOM, GET_PROPERTY = 16, 20
DESKTOP_SECONDS = 5.0  # a desktop window is managed ~0.3 s after the start when all goes well


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


def root_property_length(display: int, name: str, timeout: float = 2.0) -> int:
    """Return how many items property ``name`` of the root window of ``:display`` holds.

    0 when the property is not set. Raises OSError if the X server cannot be reached or
    answers with an error.
    """
    encoded = name.encode()
    padded = encoded + b"\0" * (-len(encoded) % 4)
    connection, root = _connect(display, timeout)
    with connection:
        connection.sendall(struct.pack("<BBHHxx", INTERN_ATOM, 1, 2 + len(padded) // 4,
                                       len(encoded)) + padded)
        atom = struct.unpack_from("<I", _reply(connection)[0], 8)[0]
        if atom == 0:  # the atom does not even exist yet
            return 0
        connection.sendall(struct.pack("<BBHIIIII", GET_PROPERTY, 0, 6, root, atom, 0, 0,
                                       1024))
        reply, _ = _reply(connection)
        return int(struct.unpack_from("<I", reply, 16)[0])


def window_manager_running(display: int) -> bool:
    """Return True once an EWMH window manager has finished starting on ``:display``."""
    try:
        return root_property_length(display, "_NET_SUPPORTING_WM_CHECK") > 0
    except OSError:
        return False


def managed_windows(display: int) -> int:
    """Return how many windows the window manager of ``:display`` manages (0 if unknown)."""
    try:
        return root_property_length(display, "_NET_CLIENT_LIST")
    except OSError:
        return 0


def wait_for_window_manager(paths: SessionPaths, display: int, wm: ProcRef,
                            timeout: float) -> None:
    """Wait until the window manager has finished starting (see the module's docstring).

    Raises LaunchFailed if it exits or is not managing after ``timeout`` seconds.
    """
    wait_for(lambda: window_manager_running(display) or not is_alive(wm), timeout, 0.05)
    if not window_manager_running(display):
        raise LaunchFailed("The desktop could not be started on this host.",
                           f"window manager on :{display} is not running; log tail:\n"
                           f"{paths.log_tail('wm')}")


def start_desktop(paths: SessionPaths, env: dict[str, str], display: int, argv: list[str],
                  attempts: int = 3, timeout: float = DESKTOP_SECONDS) -> ProcRef:
    """Start the desktop program and wait until the window manager manages its window.

    A desktop whose window is not managed within ``timeout`` seconds is restarted, up to
    ``attempts`` times. Returns its ProcRef. Raises LaunchFailed (log tail in the log message).
    """
    for attempt in range(1, attempts + 1):
        ref = start_program(paths, env, "desktop", argv)
        if _wait_managed(display, ref, timeout):
            return ref
        stop([ref], {}, grace=1.0)
        with open(paths.logs / "desktop.log", "a") as log:
            log.write(f"daaas: no managed desktop window after {timeout} s (try {attempt})\n")
    raise LaunchFailed("The desktop could not be started on this host.",
                       f"{argv[0]} on :{display} showed no window after {attempts} tries; "
                       f"log tail:\n{paths.log_tail('desktop')}")


def _wait_managed(display: int, ref: ProcRef, timeout: float) -> bool:
    wait_for(lambda: managed_windows(display) > 0 or not is_alive(ref), timeout, 0.05)
    return is_alive(ref) and managed_windows(display) > 0
