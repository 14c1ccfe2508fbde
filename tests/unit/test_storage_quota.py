"""Quota reservations (portal.storage.quota) on a real folder: what one upload reserves the
next one cannot have, at once or from many threads; reservations end with their upload, and
one left by a dead process is dropped with its temporary file."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from daaas.portal.auth.models import User
from daaas.portal.config import Settings, load_settings
from daaas.portal.storage.files import QuotaExceeded
from daaas.portal.storage.quota import GROW, Upload, UploadTooLarge, reserve_upload

GIB, MIB, KIB = 1024**3, 1024**2, 1024
ALICE = User(id=7, username="alice", uid=20001, gid=20001)


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return load_settings({"var_dir": str(tmp_path / "var"), "storage_quota_gb": 1}, environ={})


@pytest.fixture
def home(settings: Settings) -> Path:
    """alice's storage with a sparse file that leaves exactly 1 MiB of the quota."""
    path = settings.var_path / "storage" / "alice"
    path.mkdir(parents=True)
    with open(path / "big.bin", "wb") as big:
        big.truncate(GIB - MIB)
    return path


def names(home: Path) -> list[str]:
    return sorted(p.name for p in home.iterdir())


def test_a_reservation_holds_its_bytes_until_it_ends(settings: Settings, home: Path) -> None:
    first = reserve_upload(settings, ALICE, home, 700 * KIB)
    with pytest.raises(QuotaExceeded, match="Not enough room"):
        reserve_upload(settings, ALICE, home, 700 * KIB)
    assert len(names(home)) == 2  # big.bin and the first upload's temporary file only
    first.write(b"a" * (700 * KIB))
    first.finish(home / "a.bin", home)
    assert names(home) == ["a.bin", "big.bin"]
    rest = reserve_upload(settings, ALICE, home, MIB - 700 * KIB)
    rest.abandon()
    with pytest.raises(QuotaExceeded):
        reserve_upload(settings, ALICE, home, MIB - 700 * KIB + 1)
    assert names(home) == ["a.bin", "big.bin"]
    assert list((settings.var_path / "quota" / "7").iterdir()) == []


def test_many_threads_at_once_get_no_more_than_the_room(settings: Settings,
                                                        home: Path) -> None:
    many = home / "many"  # a storage with many files: measuring it takes a while
    many.mkdir()
    for i in range(3000):
        (many / str(i)).touch()
    barrier = threading.Barrier(16)

    def try_once(_i: int) -> Upload | None:
        barrier.wait(10)
        try:
            return reserve_upload(settings, ALICE, home, 300 * KIB)
        except QuotaExceeded:
            return None

    with ThreadPoolExecutor(16) as pool:
        got = [u for u in pool.map(try_once, range(16)) if u is not None]
    assert len(got) == 3  # 3 x 300 KiB fit in 1 MiB, a fourth does not
    for upload in got:
        upload.abandon()
    assert names(home) == ["big.bin", "many"]


def test_a_body_of_unknown_length_reserves_as_it_goes(settings: Settings, home: Path) -> None:
    upload = reserve_upload(settings, ALICE, home, None)
    assert upload.reserved == MIB  # the room left, less than GROW
    assert GROW > MIB
    upload.write(b"x" * (MIB - 10))
    with pytest.raises(QuotaExceeded):
        upload.write(b"x" * 11)
    upload.abandon()
    assert names(home) == ["big.bin"]


def test_larger_than_the_whole_quota_is_its_own_refusal(settings: Settings, home: Path) -> None:
    with pytest.raises(UploadTooLarge, match="larger than your whole storage quota"):
        reserve_upload(settings, ALICE, home, GIB + 1)


def test_a_dead_process_reservation_is_dropped_with_its_file(settings: Settings,
                                                             home: Path) -> None:
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)
    temp = home / ".upload-left.part"
    temp.write_bytes(b"partial")
    ledger = settings.var_path / "quota" / "7"
    ledger.mkdir(parents=True)
    (ledger / "old.json").write_text(json.dumps({"bytes": MIB, "temp": str(temp),
                                                 "pid": int(dead.stdout)}))
    upload = reserve_upload(settings, ALICE, home, MIB)  # the whole room: the old one is gone
    upload.abandon()
    assert names(home) == ["big.bin"]
    assert list(ledger.iterdir()) == []


def test_another_hosts_reservation_is_kept(settings: Settings, home: Path) -> None:
    temp = home / ".upload-elsewhere.part"
    temp.write_bytes(b"")
    ledger = settings.var_path / "quota" / "7"
    ledger.mkdir(parents=True)
    (ledger / "far.json").write_text(json.dumps({"bytes": 600 * KIB, "temp": str(temp),
                                                 "pid": 999_999_999, "host": "other-host"}))
    with pytest.raises(QuotaExceeded):  # its process is not ours to judge: still reserved
        reserve_upload(settings, ALICE, home, 600 * KIB)
    assert (ledger / "far.json").exists() and temp.exists()
