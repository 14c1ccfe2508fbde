"""A local desktop's icons as a person meets them: where each is drawn on the screen, what
each should open, and a check that double-clicking every one opens that application's window.

The screen is read from the session's X server (python-xlib ``GetImage`` of the root window,
with the session's cookie); windows are the window manager's ``_NET_CLIENT_LIST`` with their
WM_CLASS (:func:`tests.support.software.client_windows`). The double-click itself is the
caller's: through noVNC in Chromium (tests/e2e/test_desktop_icons.py) or XTest
(:func:`x_double_click`).
"""

from __future__ import annotations

import configparser
import os
import shlex
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from Xlib import X
from Xlib.ext import xtest

from daaas.cvmfs.local_source import load_source
from daaas.portal.providers.local.desktop import STORAGE_VIEW_PROGRAM
from daaas.portal.providers.local.start import x_display
from tests.support.software import appeared, client_windows, close_window, closed, wait_for_windows

#: The class of the file manager's windows (a folder icon opens one)
FOLDER_WINDOW = "Pcmanfm"
#: The class of the "Storage use" view's window (xmessage)
STORAGE_VIEW_WINDOW = "Xmessage"
#: The desktop's icons are laid out in a column this wide at the left of the screen
ICON_COLUMN = 120
#: An icon's picture is 48 px high; a line of its label about 14
PICTURE_ROWS = 30
#: A double-click that neither shows a window nor starts a program within RETRY_SECONDS is
#: made again, up to ATTEMPTS times in all
RETRY_SECONDS, ATTEMPTS = 6.0, 3


@dataclass(frozen=True)
class Session:
    """A running local desktop as the tests reach it: its X display, X cookie and home."""

    machine_id: str
    display: int
    xauthority: Path
    home: Path


def find_session(machine_id: str) -> Session:
    """Return the display, cookie and home of the running session ``machine_id``, read from its
    Xvnc process (argv ``:N … -auth <cookie>``, environment ``HOME``). Raises AssertionError
    when no Xvnc of that machine runs."""
    marker = f"DAAAS_MACHINE_ID={machine_id}".encode()
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            environ = (proc / "environ").read_bytes().split(b"\0")
            argv = (proc / "cmdline").read_bytes().decode().split("\0")
        except OSError:
            continue
        if marker not in environ or not argv[0].endswith("Xvnc"):
            continue
        variables = dict(item.decode().split("=", 1) for item in environ if b"=" in item)
        return Session(machine_id, int(argv[1].lstrip(":")),
                       Path(argv[argv.index("-auth") + 1]), Path(variables["HOME"]))
    raise AssertionError(f"no Xvnc of machine {machine_id} is running")


def session_pids(machine_id: str) -> set[int]:
    """Return the pids of the live processes of the session (DAAAS_MACHINE_ID marker)."""
    marker = f"DAAAS_MACHINE_ID={machine_id}".encode()
    found = set()
    for proc in Path("/proc").iterdir():
        try:
            if proc.name.isdigit() and marker in (proc / "environ").read_bytes().split(b"\0"):
                found.add(int(proc.name))
        except OSError:
            continue
    return found


def screen(session: Session) -> tuple[int, int, bytes]:
    """Return (width, height, 32-bit pixels) of the session's whole screen."""
    with x_display(session.display, session.xauthority) as connection:
        root = connection.screen().root
        geometry = root.get_geometry()
        image = root.get_image(0, 0, geometry.width, geometry.height, X.ZPixmap, 0xFFFFFFFF)
        return geometry.width, geometry.height, bytes(image.data)


def background_of(frame: bytes) -> bytes:
    """Return the colour most of the screen has (3 bytes)."""
    return Counter(frame[i:i + 3] for i in range(0, len(frame), 4 * 7)).most_common(1)[0][0]


def icon_pictures(width: int, height: int, frame: bytes) -> list[tuple[int, int]]:
    """Return (top, bottom) of each icon's picture in the desktop's icon column, top to bottom.

    Rows that differ from the background come in runs: an icon's picture (48 px: a run of
    30 rows or more), then its label (a run of about 14 rows per line of text, two lines for a
    long name), then a gap before the next icon. Labels are told from pictures by their height.
    """
    background = background_of(frame)
    runs: list[list[int]] = []
    for y in range(height):
        row = y * width * 4
        if any(frame[row + x * 4:row + x * 4 + 3] != background
               for x in range(0, min(ICON_COLUMN, width), 2)):
            if runs and runs[-1][1] == y - 1:
                runs[-1][1] = y
            else:
                runs.append([y, y])
    return [(top, bottom) for top, bottom in runs if bottom - top + 1 >= PICTURE_ROWS]


def icon_centres(session: Session, count: int, timeout: float = 30.0) -> list[tuple[int, int]]:
    """Return the screen position of the middle of each icon's picture, top to bottom, once
    ``count`` icons are drawn and two looks in a row agree (the desktop lays its icons out again
    when noVNC resizes the screen). Raises AssertionError naming the pictures seen otherwise."""
    deadline = time.monotonic() + timeout
    last: list[tuple[int, int]] = []
    while True:
        width, height, frame = screen(session)
        pictures = icon_pictures(width, height, frame)
        if len(pictures) == count and pictures == last:
            break
        assert time.monotonic() < deadline, \
            f"{len(pictures)} icons drawn at rows {pictures}, {count} expected"
        last = pictures
        time.sleep(0.5)
    background = background_of(frame)
    centres = []
    for top, bottom in pictures:
        xs = [x for x in range(min(ICON_COLUMN, width)) for y in range(top, bottom + 1)
              if frame[(y * width + x) * 4:(y * width + x) * 4 + 3] != background]
        centres.append(((min(xs) + max(xs)) // 2, (top + bottom) // 2))
    return centres


def desktop_items(session: Session) -> list[Path]:
    """Return what the desktop shows as icons: every entry of ``~/Desktop``."""
    return sorted((session.home / "Desktop").iterdir())


def launcher_program(entry: Path) -> str:
    """Return the program a ``.desktop`` launcher's Exec line runs (its first word)."""
    parser = configparser.RawConfigParser(interpolation=None, strict=False)
    parser.read(entry, encoding="utf-8")
    return shlex.split(parser["Desktop Entry"]["Exec"])[0]


def expected_windows(session: Session) -> list[str]:
    """Return the window class each desktop icon should open, one per icon: the local software
    source's window for a launcher's program (local-source.yaml), the file manager's for a
    folder, xmessage's for the "Storage use" view. Raises AssertionError for a launcher whose
    program the source does not provide or that does not exist on this host: a broken icon is
    found before anything is clicked."""
    windows = {program.cvmfs_path: program.window for program in load_source()}
    expected = []
    for item in desktop_items(session):
        if item.suffix != ".desktop":
            expected.append(FOLDER_WINDOW)
            continue
        program = launcher_program(item)
        if program.endswith("/" + STORAGE_VIEW_PROGRAM):
            expected.append(STORAGE_VIEW_WINDOW)
            continue
        assert os.path.isfile(program), f"{item.name} points at {program}, which does not exist"
        assert program in windows, f"{item.name} runs {program}, which the local software " \
            "source (cvmfs/local-source.yaml) does not provide"
        expected.append(windows[program])
    return expected


def open_every_icon(session: Session, expected: list[str],
                    double_click: Callable[[int, int], None],
                    shown: Callable[[list[str]], None] | None = None,
                    timeout: float = 40.0) -> list[str]:
    """Double-click every icon (``double_click(x, y)`` at its screen position), wait for the
    window it opens, check it is one of the ``expected`` classes, and close it again;
    ``shown(classes)`` is called while it is open (e.g. to take a screenshot). A double-click
    that shows no window and starts no program within ``RETRY_SECONDS`` is made again (up to
    ``ATTEMPTS`` in all), as a person would.

    Returns the classes opened, in icon order. Raises AssertionError when an icon opens no
    window within ``timeout`` seconds, a window that was not expected (an error dialog instead
    of the application), or when the windows opened are not exactly ``expected``.
    """
    display, cookie = session.display, session.xauthority
    opened: list[str] = []
    remaining = Counter(expected)
    for x, y in icon_centres(session, len(expected)):
        before = client_windows(display, cookie)
        processes = session_pids(session.machine_id)
        clicks = 0
        while clicks < ATTEMPTS:
            double_click(x, y)
            clicks += 1
            after = wait_for_windows(display, cookie, appeared(before), timeout=RETRY_SECONDS)
            if set(after) - set(before) or session_pids(session.machine_id) - processes:
                break  # a window, or a program starting (silx takes ~15 s): the click counted
            # neither: the double-click did not reach the desktop as one (its two clicks
            # arrived too far apart on a loaded host); a person double-clicks again
        after = wait_for_windows(display, cookie, appeared(before), timeout=timeout)
        new = {wid: name for wid, name in after.items() if wid not in before}
        assert new, f"double-clicking the icon at ({x}, {y}) {clicks} times opened no window " \
            f"in {timeout} s"
        opened.extend(new.values())
        time.sleep(1.0)  # a person sees the window before closing it
        if shown is not None:
            shown(list(new.values()))
        for _ in range(5):  # and clicks the close button again if it was still starting
            for window_id in new:
                close_window(display, cookie, window_id)
            gone = wait_for_windows(display, cookie, closed(new), timeout=2)
            if closed(new)(gone):
                break
        assert not set(new) & set(gone), f"{new} did not close"
        remaining.subtract(new.values())
        unexpected = [name for name, left in remaining.items() if left < 0]
        assert not unexpected, f"the icon at ({x}, {y}) opened {list(new.values())}, " \
            f"not one of {sorted(expected)}"
    assert sorted(opened) == sorted(expected), (opened, expected)
    return opened


def x_double_click(session: Session, x: int, y: int) -> None:
    """Double-click button 1 at (x, y) on the session's screen through XTest."""
    with x_display(session.display, session.xauthority) as connection:
        xtest.fake_input(connection, X.MotionNotify, x=x, y=y)
        connection.sync()
        time.sleep(0.3)
        for _ in range(2):
            for event in (X.ButtonPress, X.ButtonRelease):
                xtest.fake_input(connection, event, 1)
                connection.sync()
                time.sleep(0.03)
