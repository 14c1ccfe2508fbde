"""A LocalProvider desktop seen through VNC: the portal's password works, the screen is drawn,
and every icon of every environment the embedded default offers opens its application.

A minimal RFB 3.8 client (VNC authentication, raw encoding) reads a real framebuffer from
Xvnc, the same path noVNC takes behind websockify.
"""

from __future__ import annotations

import os
import shutil
import socket
import struct
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography.hazmat.decrepit.ciphers.algorithms import TripleDES
from cryptography.hazmat.primitives.ciphers import Cipher, modes

from daaas.catalogue import DEFAULT_DIRECTORY, Environment, load_catalogue
from daaas.cvmfs.local_source import load_source
from daaas.portal.providers import LaunchSpec, ProviderState
from daaas.portal.providers.local import LocalProvider
from tests.support.desktop_icons import expected_windows, find_session, open_every_icon
from tests.support.environments import make_environment
from tests.support.local import display_of, session_processes, vnc_socket, xauthority_of
from tests.support.software import local_software

PASSWORD = "Pw4-vnc!"
APPS = [{"name": f"app{number}", "terminal": False,
         "command": f"/cvmfs/sw.example.org/bin/app{number}", "icon": "utilities-terminal",
         "category": "Science"} for number in range(3)]

if shutil.which("Xvnc") is None and not os.environ.get("CI"):
    pytest.skip("Xvnc is not installed (apt-get install tigervnc-standalone-server "
                "tigervnc-tools openbox pcmanfm); CI runs these tests",
                allow_module_level=True)
HAS_DESKTOP = bool(shutil.which("pcmanfm") or os.environ.get("CI"))


class AuthFailed(Exception):
    """The VNC server refused the password."""


def recv_exact(sock: socket.socket, size: int) -> bytes:
    data = bytearray()
    while len(data) < size:
        chunk = sock.recv(size - len(data))
        if not chunk:
            raise ConnectionError("VNC server closed the connection")
        data += chunk
    return bytes(data)


def vnc_response(password: str, challenge: bytes) -> bytes:
    """DES-encrypt the challenge with the password, bits of each key byte reversed (RFC 6143)."""
    key = bytes(int(f"{byte:08b}"[::-1], 2) for byte in password.encode()[:8].ljust(8, b"\0"))
    encryptor = Cipher(TripleDES(key * 3), modes.ECB()).encryptor()  # 3x same key = DES
    return encryptor.update(challenge) + encryptor.finalize()


def connect(path: str) -> socket.socket:
    """Open the desktop's VNC Unix socket (local desktops listen on no TCP port)."""
    vnc = socket.socket(socket.AF_UNIX)
    vnc.settimeout(10)
    vnc.connect(path)
    return vnc


def screenshot(path: str, password: str) -> tuple[int, int, bytes]:
    """Return (width, height, 32-bit pixels) of the whole screen. Raises AuthFailed."""
    with connect(path) as vnc:
        assert recv_exact(vnc, 12).startswith(b"RFB 003.")
        vnc.sendall(b"RFB 003.008\n")
        types = recv_exact(vnc, recv_exact(vnc, 1)[0])
        assert 2 in types, f"VncAuth not offered: {types!r}"
        vnc.sendall(b"\x02")
        vnc.sendall(vnc_response(password, recv_exact(vnc, 16)))
        if struct.unpack(">I", recv_exact(vnc, 4))[0] != 0:
            raise AuthFailed(recv_exact(vnc, struct.unpack(">I", recv_exact(vnc, 4))[0]))
        vnc.sendall(b"\x01")  # ClientInit, shared
        width, height = struct.unpack(">HH", recv_exact(vnc, 4))
        pixel_format = recv_exact(vnc, 16)
        assert pixel_format[0] == 32, f"expected 32 bits per pixel, got {pixel_format[0]}"
        recv_exact(vnc, struct.unpack(">I", recv_exact(vnc, 4))[0])  # desktop name
        vnc.sendall(struct.pack(">BxHi", 2, 1, 0))  # SetEncodings: raw only
        vnc.sendall(struct.pack(">BBHHHH", 3, 0, 0, 0, width, height))
        return width, height, read_update(vnc, width, height)


def read_update(vnc: socket.socket, width: int, height: int) -> bytes:
    frame = bytearray(width * height * 4)
    while recv_exact(vnc, 1)[0] != 0:  # skip bells etc. until a FramebufferUpdate
        pass
    _, rectangles = struct.unpack(">BH", recv_exact(vnc, 3))
    for _ in range(rectangles):
        x, y, w, h, encoding = struct.unpack(">HHHHi", recv_exact(vnc, 12))
        assert encoding == 0, f"unexpected encoding {encoding}"
        pixels = recv_exact(vnc, w * h * 4)
        for row in range(h):
            start = ((y + row) * width + x) * 4
            frame[start:start + w * 4] = pixels[row * w * 4:(row + 1) * w * 4]
    return bytes(frame)


@pytest.fixture
def provider(tmp_path: Path) -> Iterator[LocalProvider]:
    local = LocalProvider(tmp_path / "var", desktop="pcmanfm" if HAS_DESKTOP else "none")
    yield local
    local.adopt_or_cleanup(set(), remove_homes=True)
    assert local.list_machine_ids() == set()


def launch(provider: LocalProvider, machine_id: str) -> str:
    environment = make_environment(name="sw", title="Software desktop", applications=APPS)
    provider.launch(LaunchSpec(machine_id, "alice", 20000, 20000, environment, PASSWORD,
                               "800x600"))
    assert provider.poll([machine_id])[machine_id].state is ProviderState.READY
    return vnc_socket(provider, machine_id)


def test_vnc_accepts_the_portal_password_only(provider: LocalProvider) -> None:
    port = launch(provider, "m1")
    width, height, frame = screenshot(port, PASSWORD)
    assert (width, height, len(frame)) == (800, 600, 800 * 600 * 4)
    with pytest.raises(AuthFailed):
        screenshot(port, "wrong-pw")


needs_desktop = pytest.mark.skipif(
    not HAS_DESKTOP, reason="pcmanfm is not installed (apt-get install pcmanfm); without it "
    "the screen is an empty root window. CI runs this.")


@needs_desktop
def test_screenshot_shows_the_desktop_with_icons(provider: LocalProvider) -> None:
    port = launch(provider, "m1")
    deadline = time.monotonic() + 20
    while True:  # pcmanfm paints the background, then the icons
        _, _, frame = screenshot(port, PASSWORD)
        screen = Counter(frame[i:i + 3] for i in range(0, len(frame), 4))
        icons = Counter(frame[(y * 800 + x) * 4:(y * 800 + x) * 4 + 3]
                        for y in range(0, 320) for x in range(0, 120))  # the icon column
        if len(icons) > 20 or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    background, count = screen.most_common(1)[0]
    assert background != b"\0\0\0", "the root window is still black: no desktop drew on it"
    assert count > len(frame) // 4 // 2, "the background should fill most of the screen"
    assert len(icons) > 20, f"only {len(icons)} colours where the icons should be"


def click(path: str, x: int, y: int, double: bool = True) -> None:
    """Move the pointer to (x, y) and (double-)click button 1 through VNC."""
    with connect(path) as vnc:
        recv_exact(vnc, 12)
        vnc.sendall(b"RFB 003.008\n")
        recv_exact(vnc, recv_exact(vnc, 1)[0])
        vnc.sendall(b"\x02")
        vnc.sendall(vnc_response(PASSWORD, recv_exact(vnc, 16)))
        assert recv_exact(vnc, 4) == b"\0\0\0\0"
        vnc.sendall(b"\x01")
        vnc.sendall(struct.pack(">BBHH", 5, 0, x, y))
        time.sleep(0.3)
        for _ in range(2 if double else 1):
            for mask in (1, 0):  # PointerEvent: button 1 down, up
                vnc.sendall(struct.pack(">BBHH", 5, mask, x, y))
                time.sleep(0.03)
        time.sleep(0.3)


@pytest.fixture
def software() -> Iterator[None]:
    """The embedded default's software source at /cvmfs, as ``daaas serve`` provides it."""
    with local_software():
        yield


def launch_environment(provider: LocalProvider, machine_id: str,
                       environment: Environment) -> tuple[str, int, Path]:
    """Launch a desktop of ``environment``; return its VNC socket, X display and X cookie."""
    provider.launch(LaunchSpec(machine_id, "alice", 20000, 20000, environment, PASSWORD,
                               "800x600"))
    return (vnc_socket(provider, machine_id), display_of(provider, machine_id),
            xauthority_of(provider, machine_id))


def offered_environments(provider: LocalProvider) -> dict[str, Environment]:
    """The shipped environments this host can run (what the Analysis page offers)."""
    catalogue = load_catalogue(DEFAULT_DIRECTORY)
    return {name: environment for name, environment in sorted(catalogue.environments.items())
            if provider.unavailable_reason(environment) is None}


@needs_desktop
def test_every_icon_of_every_offered_environment_opens_its_window(
        provider: LocalProvider, software: None) -> None:
    """What a person does: double-click each icon, see the application's window, close it."""
    windows = {program.cvmfs_path: program.window for program in load_source()}
    offered = offered_environments(provider)
    catalogue = load_catalogue(DEFAULT_DIRECTORY).environments
    assert {"base-desktop", "hdf5-viewers"} <= set(offered), {
        name: provider.unavailable_reason(catalogue[name])
        for name in ("base-desktop", "hdf5-viewers")}  # the embedded default's own software
    for number, (name, environment) in enumerate(offered.items()):
        machine_id = f"icons{number}"
        path, _, _ = launch_environment(provider, machine_id, environment)
        session = find_session(machine_id)
        expected = expected_windows(session)  # from the launchers on its desktop
        assert sorted(expected) == sorted(windows[app.command]
                                          for app in environment.applications), name
        opened = open_every_icon(session, expected, lambda x, y, vnc=path: click(vnc, x, y),
                                 timeout=25)
        assert sorted(opened) == sorted(expected), name
        provider.delete(machine_id)  # nothing an icon started outlives the desktop
        assert session_processes(provider.sessions_dir, machine_id) == {}
