"""The proxy's RFB client-message filter: a viewer's input is dropped however the stream is cut
into frames, picture requests pass, and a message it cannot measure is never let through for a
viewer."""

from __future__ import annotations

import struct

import pytest

from daaas.portal.sharing.rfbfilter import ClientMessages, UnknownMessage, message_length
from tests.support.sharing import (
    continuous_updates,
    cut_text,
    fence,
    key_event,
    pointer_event,
    qemu_key,
    set_desktop_size,
    set_encodings,
    set_pixel_format,
    update_request,
    xvp_reboot,
)

VIEWING = [set_pixel_format(), set_encodings(0, 1, 7, -239, -223), update_request(),
           continuous_updates(), fence(b"xyz")]
INPUT = [key_event(), pointer_event(), cut_text(b"secret" * 100), set_desktop_size(),
         qemu_key(), xvp_reboot(), struct.pack("!BBH", 255, 1, 0),
         struct.pack("!BBHBBI", 255, 1, 2, 3, 2, 44100),
         struct.pack("!BxxxI", 6, 2**32 - 10) + b"x" * 10]  # extended clipboard: -10


def interleaved() -> tuple[bytes, bytes]:
    """Return (everything, what a viewer may send) for the messages interleaved."""
    stream, viewing = b"", b""
    for view, other in zip(VIEWING * 2, INPUT, strict=False):
        stream += view + other
        viewing += view
    return stream, viewing


@pytest.mark.parametrize("size", [1, 2, 3, 5, 8, 13, 1000])
def test_a_viewer_gets_only_picture_requests_however_the_stream_is_cut(size: int) -> None:
    stream, viewing = interleaved()
    messages = ClientMessages()
    out = messages.feed(b"\x00", viewer=True)  # ClientInit "exclusive" is sent as shared
    for start in range(0, len(stream), size):
        out += messages.feed(stream[start:start + size], viewer=True)
    assert out == b"\x01" + viewing
    assert set(messages.dropped) == {4, 5, 6, 251, 255, 250}


def test_everyone_else_passes_everything_but_shares_the_desktop() -> None:
    stream, _ = interleaved()
    messages = ClientMessages()
    assert messages.feed(b"\x00" + stream, viewer=False) == b"\x01" + stream


def test_a_role_change_applies_from_the_next_message() -> None:
    messages = ClientMessages()
    head = key_event()[:3]
    assert messages.feed(b"\x01" + head, viewer=False) == b"\x01" + head
    # the rest of the started key event still goes (it was begun as a user's)
    assert messages.feed(key_event()[3:] + key_event(), viewer=True) == key_event()[3:]
    assert messages.feed(key_event(), viewer=False) == key_event()


def test_an_unknown_message_ends_a_viewer_and_untracks_a_user() -> None:
    with pytest.raises(UnknownMessage):
        ClientMessages().feed(b"\x01" + bytes([253, 0, 0, 0]), viewer=True)
    user = ClientMessages()
    assert user.feed(b"\x01" + bytes([253, 0, 0, 0]), viewer=False) == b"\x01" + bytes(
        [253, 0, 0, 0])
    assert user.feed(key_event(), viewer=False) == key_event()
    with pytest.raises(UnknownMessage):
        user.feed(update_request(), viewer=True)


@pytest.mark.parametrize(("message", "length"), [
    (set_pixel_format(), 20), (set_encodings(1, 2, 3), 16), (update_request(), 10),
    (key_event(), 8), (pointer_event(), 6), (cut_text(b"abc"), 11),
    (set_desktop_size(), 24), (qemu_key(), 12), (fence(b"ab"), 11),
    (continuous_updates(), 10), (xvp_reboot(), 4)])
def test_message_lengths(message: bytes, length: int) -> None:
    assert len(message) == length
    assert message_length(message) == length
    assert message_length(message[:1]) in (None, length)
