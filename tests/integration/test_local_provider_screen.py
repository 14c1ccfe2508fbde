"""A LocalProvider desktop seen through VNC: the portal's password works, the screen is drawn.

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

from daaas.portal.providers import LaunchSpec, ProviderState
from daaas.portal.providers.local import LocalProvider
from tests.support.environments import make_environment
from tests.support.local import vnc_socket

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
def cvmfs_program() -> Iterator[str]:
    """A program under /cvmfs/<repository>/ (launchers only point there): a stand-in
    repository folder on this host, removed afterwards."""
    if os.geteuid() != 0:
        pytest.skip("creating a stand-in /cvmfs repository needs root")
    repository = Path("/cvmfs/daaas-test.example.org")
    created_root = not repository.parent.exists()
    program = repository / "bin" / "sleeper"
    program.parent.mkdir(parents=True, exist_ok=True)
    program.write_text("#!/bin/sh\nexec sleep 3217\n")
    program.chmod(0o755)
    yield str(program)
    shutil.rmtree(repository)
    if created_root:
        repository.parent.rmdir()


@needs_desktop
def test_double_clicking_an_icon_starts_its_application(provider: LocalProvider,
                                                        cvmfs_program: str) -> None:
    environment = make_environment(name="sw", applications=[
        {"name": "sleeper", "command": cvmfs_program, "terminal": False,
         "icon": "utilities-terminal", "category": "Utility"}])
    provider.launch(LaunchSpec("m1", "alice", 20000, 20000, environment, PASSWORD,
                               "800x600"))
    port = vnc_socket(provider, "m1")
    marker = b"DAAAS_MACHINE_ID=m1\0"
    deadline = time.monotonic() + 20
    while not (started := [pid for pid in os.listdir("/proc") if pid.isdigit()
                           and _cmdline(pid) == b"sleep\x003217\x00"]):
        assert time.monotonic() < deadline, "the launcher did not start its application"
        click(port, 60, 30)  # the first icon of pcmanfm's column; no "trust this?" dialog
        time.sleep(1)
    assert marker in Path(f"/proc/{started[0]}/environ").read_bytes()
    provider.delete("m1")
    assert not Path(f"/proc/{started[0]}/cmdline").exists() or _cmdline(started[0]) == b""


def _cmdline(pid: str) -> bytes:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return b""
