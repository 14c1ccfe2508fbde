"""The tests' real NFS server (tests/support/nfs.py: NFS-Ganesha in user space, NFSv4 only)
proven with a real user-space NFS client from the host (libnfs-utils: nfs-cat, nfs-ls, nfs-cp):
a read-only export serves its files and refuses writes, a read-write export squashed to its
folder's owner lands writes in the host folder owned by that account, and nothing is left
running afterwards."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.nfs import Export, NfsServer, rpc_null

OWNER = 4711  # the account the read-write folder belongs to (a VM user's uid)


def _require() -> None:
    reason = NfsServer.unavailable() or (
        None if shutil.which("nfs-cp") else "libnfs-utils (nfs-cp) is not installed")
    if reason:
        if os.environ.get("CI") and os.geteuid() == 0:  # as the other root-only tests: skip
            pytest.fail(f"CI must run the NFS tests: {reason}")
        pytest.skip(reason)


def nfs(*args: str) -> subprocess.CompletedProcess[str]:
    """Run a libnfs-utils command; return its result (never raises on failure)."""
    return subprocess.run(args, capture_output=True, text=True, timeout=60, check=False)


@pytest.fixture()
def folders(tmp_path: Path) -> tuple[Path, Path]:
    data, storage = tmp_path / "data", tmp_path / "storage"
    (data / "run1").mkdir(parents=True)
    (data / "run1" / "frame.cbf").write_text("diffraction\n")
    storage.mkdir(mode=0o700)
    os.chown(storage, OWNER, OWNER)
    tmp_path.chmod(0o755)
    return data, storage


@pytest.fixture()
def server(folders: tuple[Path, Path]) -> Iterator[NfsServer]:
    _require()
    data, storage = folders
    with NfsServer([Export(data, "/data"),
                    Export(storage, "/storage/alice", read_only=False, squash="all",
                           anon_uid=OWNER, anon_gid=OWNER)]) as running:
        yield running


def test_read_only_export_serves_files(server: NfsServer) -> None:
    result = nfs("nfs-cat", server.url("/data/run1/frame.cbf"))
    assert result.returncode == 0, result.stderr + server.log_text(tail=20)
    assert result.stdout == "diffraction\n"
    listing = nfs("nfs-ls", server.url("/data/run1"))
    assert "frame.cbf" in listing.stdout


def test_read_only_export_refuses_writes(server: NfsServer, folders: tuple[Path, Path],
                                         tmp_path: Path) -> None:
    upload = tmp_path / "upload.txt"
    upload.write_text("should not land\n")
    result = nfs("nfs-cp", str(upload), server.url("/data/run1/new.txt", uid=0, gid=0))
    assert result.returncode != 0
    assert "ROFS" in result.stderr, result.stderr
    assert not (folders[0] / "run1" / "new.txt").exists()


def test_read_write_export_lands_writes_as_the_owner(server: NfsServer,
                                                     folders: tuple[Path, Path],
                                                     tmp_path: Path) -> None:
    upload = tmp_path / "result.txt"
    upload.write_text("written over NFS\n")
    as_user = nfs("nfs-cp", str(upload), server.url("/storage/alice/result.txt",
                                                     uid=OWNER, gid=OWNER))
    assert as_user.returncode == 0, as_user.stderr + server.log_text(tail=20)
    # A client's root (or any other uid) is squashed to the folder's owner too.
    as_root = nfs("nfs-cp", str(upload), server.url("/storage/alice/by-root.txt", uid=0, gid=0))
    assert as_root.returncode == 0, as_root.stderr
    for name in ("result.txt", "by-root.txt"):
        landed = folders[1] / name
        assert landed.read_text() == "written over NFS\n"
        assert (landed.stat().st_uid, landed.stat().st_gid) == (OWNER, OWNER)
    # Owners go over the wire as bare numbers (no idmap domain needed in a VM).
    listing = nfs("nfs-ls", server.url("/storage/alice", uid=OWNER, gid=OWNER))
    owners = {line.split()[-1]: (line.split()[2], line.split()[3])
              for line in listing.stdout.splitlines()}
    assert owners == {"result.txt": (str(OWNER), str(OWNER)),
                      "by-root.txt": (str(OWNER), str(OWNER))}, listing.stdout


def test_pseudo_root_shows_only_exports(server: NfsServer) -> None:
    listing = nfs("nfs-ls", server.url("/"))
    names = {line.split()[-1] for line in listing.stdout.splitlines() if line.strip()}
    assert names == {"data", "storage"}, listing.stdout
    # Above an export is the pseudo name space, never the host folder it sits in.
    parent = nfs("nfs-ls", server.url("/storage"))
    assert {line.split()[-1] for line in parent.stdout.splitlines()} == {"alice"}


def test_stop_leaves_nothing(folders: tuple[Path, Path]) -> None:
    _require()
    server = NfsServer([Export(folders[0], "/data")]).start()
    pid, folder, port = server.process.pid, server.folder, server.port  # type: ignore[union-attr]
    assert rpc_null(server.host, port)
    server.stop()
    assert not Path(f"/proc/{pid}").exists() or "zombie" in Path(f"/proc/{pid}/status").read_text()
    assert folder is not None and not folder.exists()
    assert not rpc_null("127.0.0.1", port, timeout=0.5)
    server.stop()  # idempotent


def test_a_killed_test_run_leaves_no_server(folders: tuple[Path, Path]) -> None:
    _require()
    starter = subprocess.Popen(
        [sys.executable, "-c", "import sys, time\n"
         "from pathlib import Path\n"
         "from tests.support.nfs import Export, NfsServer\n"
         f"server = NfsServer([Export(Path({str(folders[0])!r}), '/data')]).start()\n"
         "print(server.process.pid, server.port, flush=True)\n"
         "time.sleep(600)\n"],
        cwd=Path(__file__).resolve().parents[2], stdout=subprocess.PIPE, text=True)
    try:
        assert starter.stdout is not None
        pid, port = (int(x) for x in starter.stdout.readline().split())
        assert rpc_null("127.0.0.1", port)
    finally:
        starter.kill()  # SIGKILL: no stop(), no finally in the starter
        starter.wait()
    deadline = time.monotonic() + 15
    while _alive(pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not _alive(pid), f"ganesha.nfsd {pid} outlived the process that started it"
    assert not rpc_null("127.0.0.1", port, timeout=0.5)


def _alive(pid: int) -> bool:
    """True while ``pid`` runs (a zombie, reaped by init later, does not count)."""
    try:
        return "State:\tZ" not in Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return False


def test_privileged_port_exports_refuse_a_users_own_client(folders: tuple[Path, Path]) -> None:
    _require()
    with NfsServer([Export(folders[0], "/data", privileged_port=True)]) as server:
        as_root = nfs("nfs-cat", server.url("/data/run1/frame.cbf"))
        assert as_root.stdout == "diffraction\n", as_root.stderr  # libnfs binds port < 1024
        as_user = nfs("setpriv", f"--reuid={OWNER}", f"--regid={OWNER}", "--clear-groups",
                      "nfs-cat", server.url("/data/run1/frame.cbf"))
        assert as_user.returncode != 0 and as_user.stdout == ""
