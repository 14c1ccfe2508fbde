"""The local software source made visible at /cvmfs/<repository>: read-only bind mounts of the
portal's own folder, made only where no real CVMFS (or anything else) is, removed only if ours.

Mounted under a stand-in CVMFS root in tmp_path here, so the host's /cvmfs is not touched;
tests/integration/test_local_provider_screen.py uses the real /cvmfs.
"""

from __future__ import annotations

import errno
import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient

from daaas.catalogue import Environment
from daaas.cvmfs.local_source import build, load_source, mount, ours, repositories, unmount
from daaas.portal.providers.local import LocalProvider
from tests.support.environments import make_environment, shipped
from tests.support.software import local_software
from tests.support.web import bearer

if os.geteuid() != 0:
    pytest.skip("bind mounts need root", allow_module_level=True)

PROGRAMS = load_source()
NAMES = repositories(PROGRAMS)


@pytest.fixture
def roots(tmp_path: Path) -> Iterator[tuple[Path, Path]]:
    """(the portal's source folder, a stand-in for /cvmfs); everything mounted there is
    unmounted afterwards."""
    source, cvmfs = tmp_path / "source", tmp_path / "cvmfs"
    build(source, PROGRAMS)
    yield source, cvmfs
    for line in reversed(Path("/proc/self/mountinfo").read_text().splitlines()):
        point = line.split()[4]
        if point.startswith(str(tmp_path) + "/"):
            subprocess.run(["umount", point], check=False)


def test_each_repository_is_shown_read_only_where_cvmfs_shows_it(
        roots: tuple[Path, Path]) -> None:
    source, cvmfs = roots
    assert mount(source, NAMES, cvmfs) == {name: "mounted" for name in NAMES}

    terminal = cvmfs / "desktop.daaas.ac.uk" / "launchers" / "terminal"
    assert terminal.read_text().endswith('exec /usr/bin/xterm "$@"\n')
    assert (cvmfs / "desktop.daaas.ac.uk").stat().st_mode & 0o755 == 0o755
    with pytest.raises(OSError) as refused:
        (cvmfs / "desktop.daaas.ac.uk" / "planted").write_text("x")  # even for root
    assert refused.value.errno == errno.EROFS
    # a second start finds its own mounts and keeps them
    assert mount(source, NAMES, cvmfs) == {name: "already mounted" for name in NAMES}
    assert unmount(source, NAMES, cvmfs) == list(NAMES)
    assert not (cvmfs / "desktop.daaas.ac.uk").exists()


def test_a_real_cvmfs_or_a_folder_with_files_is_left_alone(roots: tuple[Path, Path],
                                                           tmp_path: Path) -> None:
    source, cvmfs = roots
    real = tmp_path / "real-cvmfs-repository"
    (real / "bin").mkdir(parents=True)
    (cvmfs / "desktop.daaas.ac.uk").mkdir(parents=True)
    subprocess.run(["mount", "--bind", str(real), str(cvmfs / "desktop.daaas.ac.uk")],
                   check=True)
    (cvmfs / "dawn.diamond.ac.uk" / "someone").mkdir(parents=True)

    outcome = mount(source, NAMES, cvmfs)

    assert outcome["desktop.daaas.ac.uk"].startswith("a real CVMFS (or other) mount is there")
    assert "with files in it" in outcome["dawn.diamond.ac.uk"]
    assert unmount(source, NAMES, cvmfs) == []  # nothing of ours to remove
    assert ours(real, cvmfs / "desktop.daaas.ac.uk")  # the foreign mount is still there
    assert (cvmfs / "dawn.diamond.ac.uk" / "someone").is_dir()


def test_an_autofs_cvmfs_root_is_left_alone(roots: tuple[Path, Path], tmp_path: Path) -> None:
    source, cvmfs = roots
    cvmfs.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "none", str(cvmfs)], check=True)  # like autofs

    outcome = mount(source, NAMES, cvmfs)

    assert all("a mount of its own" in text for text in outcome.values()), outcome
    assert list(cvmfs.iterdir()) == []


def _with_broken_launcher() -> Environment:
    base = shipped("base-desktop")
    apps = [app.model_dump() for app in base.applications]
    apps.append({"name": "Spreadsheet", "icon": "x-office-spreadsheet", "category": "Office",
                 "command": "/cvmfs/desktop.daaas.ac.uk/launchers/spreadsheet"})
    return make_environment(name="broken", applications=apps)


def test_an_environment_runs_here_only_if_every_launcher_points_at_a_program(
        tmp_path: Path) -> None:
    provider = LocalProvider(tmp_path / "var")
    with local_software():
        assert provider.unavailable_reason(shipped("base-desktop")) is None
        assert provider.unavailable_reason(shipped("hdf5-viewers")) is None
        assert provider.unavailable_reason(_with_broken_launcher()) == (
            "Spreadsheet is not installed on this server "
            "(/cvmfs/desktop.daaas.ac.uk/launchers/spreadsheet is missing).")
        reason = provider.unavailable_reason(shipped("dawn"))
        assert reason is not None and reason.startswith(
            "DAWN and silx view are not installed on this server")


def test_serve_builds_the_source_and_leaves_a_mount_not_its_own_alone(tmp_path: Path) -> None:
    """`daaas serve` as root builds the source before it listens (here it stops there: the
    port is taken); /cvmfs already shows another folder, so it mounts nothing over it."""
    software = tmp_path / "software"
    env = {key: value for key, value in os.environ.items() if not key.startswith("DAAAS_")}
    env.update(DAAAS_VAR_DIR=str(tmp_path / "var"), DAAAS_LOCAL_SOFTWARE_DIR=str(software),
               DAAAS_START_WEBSOCKIFY="false", DAAAS_EMBEDDED_WORKER="false",
               DAAAS_LOG_LEVEL="WARNING")
    with local_software(), socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        before = cvmfs_mounts()
        result = subprocess.run(
            [str(Path(sys.executable).with_name("daaas")), "serve", "--port",
             str(taken.getsockname()[1])], cwd=tmp_path, env=env, capture_output=True,
            text=True, timeout=120, check=False)
        assert cvmfs_mounts() == before
    assert result.returncode != 0 and len(result.stderr.strip().splitlines()) == 1, \
        result.stderr
    terminal = software / "desktop.daaas.ac.uk" / "launchers" / "terminal"
    assert terminal.read_text().endswith('exec /usr/bin/xterm "$@"\n')
    assert stat_mode(software / "dawn.diamond.ac.uk" / "silx" / "bin" / "silx") == 0o755


def cvmfs_mounts() -> list[str]:
    """The lines of /proc/self/mountinfo of mounts under /cvmfs (other tests mount elsewhere)."""
    return [line for line in Path("/proc/self/mountinfo").read_text().splitlines()
            if line.split()[4].startswith("/cvmfs/")]


def stat_mode(path: Path) -> int:
    return path.stat().st_mode & 0o777


def test_the_demo_experiment_has_a_real_nexus_file_for_silx(app: Flask,
                                                            client: FlaskClient) -> None:
    experiments = client.get("/api/v1/experiments", headers=bearer(app, "scientist")).get_json()
    mx = next(e for e in experiments["experiments"] if e["visit_id"] == "MX31850-12")
    sample = Path(mx["data_path"]) / "xtal1" / "xtal1_master.nxs"
    assert sample.read_bytes()[:8] == b"\x89HDF\r\n\x1a\n"
    assert stat_mode(sample) == 0o644
    read = subprocess.run(  # with the h5py silx view uses
        ["/usr/bin/python3", "-c", "import sys, h5py; f = h5py.File(sys.argv[1]); "
         "print(f['entry'].attrs['NX_class'], f['entry/data/data'].shape)", str(sample)],
        capture_output=True, text=True, check=True)
    assert read.stdout.strip() == "NXentry (4, 64, 64)"
