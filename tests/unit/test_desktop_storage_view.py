"""The local desktop's "Storage use" view: an icon whose window tells the space used in the
user's storage, counted as the portal counts it, against the quota (the file manager and df
show the host disk's free space instead)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from daaas.portal.providers import SessionMount
from daaas.portal.providers.local.desktop import (
    STORAGE_VIEW_LAUNCHER,
    write_storage_view,
)

GIB = 1024**3


def run_view(home: Path, launcher: Path, tmp_path: Path) -> list[str]:
    """Run the launcher's program as the desktop would, with a stand-in xmessage on PATH that
    records its arguments; return them."""
    program = next(line.split("=", 1)[1] for line in launcher.read_text().splitlines()
                   if line.startswith("Exec="))
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    xmessage = bin_dir / "xmessage"
    xmessage.write_text('#!/bin/sh\nfor a in "$@"; do printf "%s\\0" "$a"; done\n')
    xmessage.chmod(0o755)
    done = subprocess.run([program], env={"HOME": str(home),
                                          "PATH": f"{bin_dir}:/usr/bin:/bin"},
                          capture_output=True, check=True)
    return done.stdout.decode().split("\0")[:-1]


def test_the_view_shows_used_quota_and_left(tmp_path: Path) -> None:
    home = tmp_path / "home"
    storage = home / "storage"
    (storage / "run1").mkdir(parents=True)
    (storage / "run1" / "frames.h5").write_bytes(b"x" * 3 * 1024**2)
    (storage / "notes.txt").write_bytes(b"y" * 512 * 1024)
    mounts = [SessionMount("storage", str(storage), False, "your storage", quota_bytes=GIB),
              SessionMount("experiment-MX1", str(tmp_path), True, "experiment MX1")]

    launcher = write_storage_view(home, mounts)

    assert launcher == home / "Desktop" / STORAGE_VIEW_LAUNCHER
    assert os.access(launcher, os.X_OK) and "Name=Storage use" in launcher.read_text()
    argv = run_view(home, launcher, tmp_path)
    assert argv[:5] == ["-title", "My storage", "-center", "-buttons", "Close:0"]
    text = argv[5]
    assert "My storage (~/storage)" in text
    assert "3.5MiB used of your 1.0GiB quota (0 %)" in text
    assert "1020.5MiB left" in text  # 1024 MiB - 3.5 MiB
    assert "not your quota" in text


def test_a_storage_over_its_quota_has_nothing_left(tmp_path: Path) -> None:
    home = tmp_path / "home"
    (home / "storage").mkdir(parents=True)
    (home / "storage" / "big").write_bytes(b"z" * 2048)
    launcher = write_storage_view(home, [SessionMount("storage", "", False, quota_bytes=1024)])
    assert launcher is not None
    text = run_view(home, launcher, tmp_path)[5]
    assert "2.0KiB used of your 1.0KiB quota (200 %)\n0.0B left" in text, text


def test_no_quota_no_view(tmp_path: Path) -> None:
    assert write_storage_view(tmp_path, [SessionMount("experiment-MX1", "", True)]) is None
    assert not (tmp_path / "Desktop").exists()
