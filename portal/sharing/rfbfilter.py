"""The browser's RFB client messages, followed message by message so the proxy can drop a
viewer's input (RFC 6143, 7.5, and the extensions noVNC speaks).

:class:`ClientMessages` is fed the browser's bytes as they come (a message may span websocket
frames, a frame may hold many) and returns what goes on to the VNC server. It always tracks
message boundaries, whatever the role, because a role can change in the middle of a session
(the owner leaves and the room becomes view-only). The first byte is ClientInit, always sent on
as "shared" so that nobody's connection can push the others off the desktop.

For a viewer it passes only what changes nothing on the desktop: SetPixelFormat,
SetEncodings, FramebufferUpdateRequest, EnableContinuousUpdates and ClientFence; it drops
KeyEvent, PointerEvent, ClientCutText, SetDesktopSize, xvp (reboot, shutdown) and the QEMU
messages (extended key events, audio). A message type the proxy does not know cannot be
measured, so the stream cannot be followed past it: a viewer's connection is then ended
(:class:`UnknownMessage`), and an owner's or user's is passed on untracked (``untracked``) and
ended if it later becomes a viewer's.
"""

from __future__ import annotations

import struct

SET_PIXEL_FORMAT, SET_ENCODINGS, FRAMEBUFFER_UPDATE_REQUEST = 0, 2, 3
KEY_EVENT, POINTER_EVENT, CLIENT_CUT_TEXT = 4, 5, 6
ENABLE_CONTINUOUS_UPDATES, CLIENT_FENCE, SET_DESKTOP_SIZE, XVP, QEMU = 150, 248, 251, 250, 255
#: What a viewer may send: requests for pictures and how they are encoded, nothing else.
VIEWER_PASSES = frozenset({SET_PIXEL_FORMAT, SET_ENCODINGS, FRAMEBUFFER_UPDATE_REQUEST,
                           ENABLE_CONTINUOUS_UPDATES, CLIENT_FENCE})
SHARED = b"\x01"


class UnknownMessage(Exception):
    """A client message type whose length the proxy cannot tell."""


def message_length(head: bytes) -> int | None:
    """Return the whole length of the client message starting ``head``, or None when more
    bytes are needed to tell. Raises UnknownMessage for a type the proxy does not know."""
    kind = head[0]
    fixed = {SET_PIXEL_FORMAT: 20, FRAMEBUFFER_UPDATE_REQUEST: 10, KEY_EVENT: 8,
             POINTER_EVENT: 6, ENABLE_CONTINUOUS_UPDATES: 10, XVP: 4}
    if kind in fixed:
        return fixed[kind]
    if kind == SET_ENCODINGS:
        return None if len(head) < 4 else 4 + 4 * struct.unpack_from("!H", head, 2)[0]
    if kind == CLIENT_CUT_TEXT:  # a negative length: the extended clipboard's, same bytes
        return None if len(head) < 8 else 8 + abs(struct.unpack_from("!i", head, 4)[0])
    if kind == CLIENT_FENCE:
        return None if len(head) < 9 else 9 + head[8]
    if kind == SET_DESKTOP_SIZE:
        return None if len(head) < 7 else 8 + 16 * head[6]
    if kind == QEMU:
        return _qemu_length(head)
    raise UnknownMessage(f"client message type {kind}")


def _qemu_length(head: bytes) -> int | None:
    if len(head) < 2:
        return None
    if head[1] == 0:  # extended key event
        return 12
    if head[1] == 1:  # audio: enable, disable (4 bytes) or set format (10)
        if len(head) < 4:
            return None
        return 10 if struct.unpack_from("!H", head, 2)[0] == 2 else 4
    raise UnknownMessage(f"QEMU client message subtype {head[1]}")


class ClientMessages:
    """Follows one browser's client message stream; :meth:`feed` returns what may pass."""

    def __init__(self) -> None:
        self.head = b""
        self.remaining = 0
        self.passing = True
        self.initialised = False
        self.untracked = False
        self.dropped: dict[int, int] = {}

    def feed(self, data: bytes, *, viewer: bool) -> bytes:
        """Return the part of ``data`` that goes on to the VNC server for a viewer (``viewer``)
        or anyone else. Raises UnknownMessage when a viewer sends (or has sent, untracked) a
        message the proxy cannot measure."""
        if self.untracked:
            if viewer:
                raise UnknownMessage("the stream is untracked since an unknown message")
            return data
        out: list[bytes] = []
        while data:
            if not self.initialised:
                self.initialised, data = True, data[1:]
                out.append(SHARED)
            elif self.remaining:
                part, data = data[:self.remaining], data[self.remaining:]
                self.remaining -= len(part)
                if self.passing:
                    out.append(part)
            else:
                data = self._start(data, viewer, out)
        return b"".join(out)

    def _start(self, data: bytes, viewer: bool, out: list[bytes]) -> bytes:
        self.head += data
        try:
            length = message_length(self.head)
        except UnknownMessage:
            if viewer:
                raise
            self.untracked = True
            out.append(self.head)
            self.head = b""
            return b""
        if length is None:
            return b""
        data, self.head = self.head, b""
        kind = data[0]
        self.passing = not viewer or kind in VIEWER_PASSES
        if not self.passing:
            self.dropped[kind] = self.dropped.get(kind, 0) + 1
        self.remaining = length
        return data
