"""The embedded default's software source for tests, as ``daaas serve`` provides it, and the
windows of a local desktop read with python-xlib."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from Xlib import X, protocol
from Xlib import error as xerror
from Xlib.xobject.drawable import Window

from daaas.cvmfs.local_source import Built, provide, unmount
from daaas.portal.config import Settings
from daaas.portal.providers.local.start import x_display

#: Where ``daaas serve`` builds the source by default (the ``local_software_dir`` setting)
SOFTWARE_DIR = Path(Settings.model_fields["local_software_dir"].default)


@contextmanager
def local_software() -> Iterator[Built]:
    """Build the local software source and mount it at /cvmfs as ``daaas serve`` does (same
    folder, so a portal on this host finds it its own). Afterwards unmount only what this
    call mounted. Skips without root (bind mounts need it)."""
    if os.geteuid() != 0:
        pytest.skip("the local software source is mounted at /cvmfs by root")
    built, mounts = provide(SOFTWARE_DIR)
    try:
        yield built
    finally:
        unmount(SOFTWARE_DIR, [name for name, outcome in mounts.items() if outcome == "mounted"])


def client_windows(display: int, xauthority: Path) -> dict[int, str]:
    """Return {window id: WM_CLASS class, or the title when it sets no class, "" while it has
    neither} of every window the window manager manages."""
    with x_display(display, xauthority) as connection:
        root = connection.screen().root
        listed = root.get_full_property(connection.intern_atom("_NET_CLIENT_LIST"),
                                        X.AnyPropertyType)
        windows = {}
        for window_id in (listed.value if listed else []):
            window = connection.create_resource_object("window", window_id)
            try:
                wm_class = window.get_wm_class()
                windows[int(window_id)] = wm_class[1] if wm_class else \
                    str(window.get_wm_name() or "")
            except xerror.BadWindow:
                continue  # closed since the list was read
        return windows


def close_window(display: int, xauthority: Path, window_id: int) -> None:
    """Ask the window manager to close a window (EWMH _NET_CLOSE_WINDOW), as its close
    button does."""
    with x_display(display, xauthority) as connection:
        root = connection.screen().root
        window: Window = connection.create_resource_object("window", window_id)
        event = protocol.event.ClientMessage(
            window=window, client_type=connection.intern_atom("_NET_CLOSE_WINDOW"),
            data=(32, [X.CurrentTime, 2, 0, 0, 0]))
        root.send_event(event, event_mask=X.SubstructureRedirectMask | X.SubstructureNotifyMask)
        connection.flush()


def wait_for_windows(display: int, xauthority: Path, condition: Callable[[dict[int, str]], bool],
                     timeout: float) -> dict[int, str]:
    """Poll :func:`client_windows` until ``condition(windows)`` holds or ``timeout`` passes;
    return the last list."""
    deadline = time.monotonic() + timeout
    while True:
        windows = client_windows(display, xauthority)
        if condition(windows) or time.monotonic() > deadline:
            return windows
        time.sleep(0.1)


def appeared(before: dict[int, str]) -> Callable[[dict[int, str]], bool]:
    """A condition for :func:`wait_for_windows`: a window not in ``before`` is there, and
    every such window has a class or title by which it is known."""
    return lambda now: bool(set(now) - set(before)) and all(
        name for window, name in now.items() if window not in before)


def closed(shown: dict[int, str]) -> Callable[[dict[int, str]], bool]:
    """A condition for :func:`wait_for_windows`: none of the windows ``shown`` is left."""
    return lambda now: not set(shown) & set(now)
