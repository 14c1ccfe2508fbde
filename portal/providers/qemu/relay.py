"""Relay one guest TCP connection to a host address (QEMU ``guestfwd=...-cmd:``).

QEMU's user-mode network runs this program once per connection the guest opens to the
forwarded address, with the connection on stdin/stdout. A ``guestfwd`` to a ``tcp:`` character
device would instead connect once, at QEMU's start, and carry one connection only; the
bootstrap exchange and the status report are separate HTTP connections. Standard library only.

    python3 qemu_relay.py HOST PORT
"""

from __future__ import annotations

import selectors
import socket
import sys


def relay(host: str, port: int) -> None:
    """Copy bytes both ways between stdin/stdout and HOST:PORT until either side closes."""
    guest = socket.socket(fileno=sys.stdin.fileno())
    with socket.create_connection((host, port), timeout=30) as portal:
        portal.settimeout(None)
        selector = selectors.DefaultSelector()
        selector.register(guest, selectors.EVENT_READ, portal)
        selector.register(portal, selectors.EVENT_READ, guest)
        open_sides = 2
        while open_sides:
            for key, _ in selector.select():
                source: socket.socket = key.fileobj  # type: ignore[assignment]
                data = source.recv(65536)
                if data:
                    key.data.sendall(data)
                    continue
                selector.unregister(source)
                open_sides -= 1
                try:
                    key.data.shutdown(socket.SHUT_WR)
                except OSError:
                    open_sides = 0


if __name__ == "__main__":
    relay(sys.argv[1], int(sys.argv[2]))
