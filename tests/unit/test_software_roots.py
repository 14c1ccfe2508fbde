"""Software roots: a portal that cannot mount /cvmfs/<repository> (not root) finds a launcher's
program as <root>/<repository>/<path>, says an environment runs only when every program is
found there, writes launchers that name the program found, and ``daaas catalogue check --host``
reports the same; a launcher pointing at nothing is reported as not available."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from daaas.catalogue import DEFAULT_DIRECTORY, Environment
from daaas.catalogue.cli import catalogue_group
from daaas.portal.config import ConfigError, load_settings, parse_software_roots
from daaas.portal.providers.local.desktop import write_launchers
from daaas.portal.providers.local.roots import resolve, resolve_entry, site_roots
from daaas.portal.providers.local.software import unavailable_reason
from tests.support.environments import make_environment

#: A repository no host of these tests has at /cvmfs
REPOSITORY = "sw.roots-test.example.org"
VIEWER = f"/cvmfs/{REPOSITORY}/bin/viewer"


def program(root: Path, command: str, mode: int = 0o755) -> Path:
    """Write an executable ``command`` (a /cvmfs path) under ``root`` as a software root holds
    it; return its path."""
    path = root / Path(command).relative_to("/cvmfs")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("#!/bin/sh\nexec true\n")
    path.chmod(mode)
    return path


def viewer_environment() -> Environment:
    return make_environment(name="viewer", applications=[
        {"name": "Viewer", "command": VIEWER, "icon": "image-x-generic", "category": "Science"}])


def test_a_program_is_found_in_the_first_root_that_holds_it(tmp_path: Path) -> None:
    first, second = tmp_path / "first", tmp_path / "second"
    found = program(second, VIEWER)
    assert resolve(VIEWER, [first, second]) == str(found)
    program(first, VIEWER)
    assert resolve(VIEWER, [first, second]) == str(first / REPOSITORY / "bin" / "viewer")
    assert resolve(f"/cvmfs/{REPOSITORY}/bin/other", [first, second]) == \
        f"/cvmfs/{REPOSITORY}/bin/other"  # found nowhere: unchanged, and reported missing
    assert resolve("/usr/bin/xterm", [first]) == "/usr/bin/xterm"
    assert resolve(VIEWER, []) == VIEWER


def test_a_repository_at_cvmfs_is_used_from_there(tmp_path: Path) -> None:
    present = sorted(path.name for path in Path("/cvmfs").iterdir()) \
        if Path("/cvmfs").is_dir() else []
    if not present:
        pytest.skip("no repository at /cvmfs on this host")
    command = f"/cvmfs/{present[0]}/bin/anything"
    program(tmp_path, command)
    assert resolve(command, [tmp_path]) == command


def test_an_environment_runs_only_when_every_program_is_in_a_root(tmp_path: Path) -> None:
    environment = viewer_environment()
    assert unavailable_reason(environment, any_account=True) == (
        f"Viewer is not installed on this server (the software repository {REPOSITORY} is "
        "not available here).")
    (tmp_path / REPOSITORY).mkdir()
    assert unavailable_reason(environment, True, [tmp_path]) == (
        f"Viewer is not installed on this server ({VIEWER} is missing).")
    program(tmp_path, VIEWER, mode=0o700)  # only the portal's account could run it
    assert unavailable_reason(environment, True, [tmp_path]) is not None
    program(tmp_path, VIEWER)
    assert unavailable_reason(environment, True, [tmp_path]) is None


def test_launchers_name_the_program_found(tmp_path: Path) -> None:
    root = tmp_path / "roots"
    found = program(root, VIEWER)
    [written] = write_launchers(tmp_path / "home", viewer_environment(), [root])
    lines = written.read_text().splitlines()
    assert f"Exec={found}" in lines
    assert not any(line.startswith(("Exec=/cvmfs", "TryExec=/cvmfs")) for line in lines)
    [plain] = write_launchers(tmp_path / "home2", viewer_environment())
    assert f"Exec={VIEWER}" in plain.read_text().splitlines()
    assert resolve_entry("Name=x\nExec=/cvmfs/a.b/c --flag %F\n", [root]) == \
        "Name=x\nExec=/cvmfs/a.b/c --flag %F\n"  # nothing found: unchanged


def test_the_setting_takes_absolute_plain_paths_only(tmp_path: Path) -> None:
    assert parse_software_roots(" /opt/sw : /srv/cvmfs-copy/ ") == \
        (Path("/opt/sw"), Path("/srv/cvmfs-copy"))
    assert load_settings({"software_roots": "/opt/sw"}, environ={}).software_roots == "/opt/sw"
    for bad in ("relative/sw", "/opt/with space", "/opt/../etc", "/opt/%F"):
        with pytest.raises(ConfigError, match="software root"):
            load_settings({"software_roots": bad}, environ={})


def test_a_portal_not_running_as_root_also_searches_its_own_software_source() -> None:
    assert site_roots("/opt/sw", "/var/lib/daaas/cvmfs", as_root=True) == (Path("/opt/sw"),)
    assert site_roots("/opt/sw", "/var/lib/daaas/cvmfs", as_root=False) == \
        (Path("/opt/sw"), Path("/var/lib/daaas/cvmfs"))
    assert site_roots("", "", as_root=False) == ()


def host_report(directory: Path, roots: str) -> dict[str, str]:
    """Run ``daaas catalogue check --host`` on ``directory``; return {environment: its line}."""
    env = {"DAAAS_SOFTWARE_ROOTS": roots, "DAAAS_LOCAL_SOFTWARE_DIR": ""}
    result = CliRunner(env=env).invoke(catalogue_group, ["check", "--host", str(directory)])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()[1:-1]
    return {line.split(":", 1)[0]: line for line in lines}


def test_catalogue_check_host_uses_the_roots_and_reports_a_broken_launcher(
        tmp_path: Path) -> None:
    catalogue = tmp_path / "catalogue"
    shutil.copytree(DEFAULT_DIRECTORY, catalogue / "environments")
    shutil.copytree(DEFAULT_DIRECTORY.parent / "icons", catalogue / "icons")
    (catalogue / "environments" / "broken-desktop.yaml").write_text(
        "name: broken-desktop\nextends: base-desktop\ntitle: Broken desktop\n"
        "applications:\n  - name: Spreadsheet\n"
        "    command: /cvmfs/desktop.daaas.ac.uk/launchers/spreadsheet\n"
        "    icon: x-office-spreadsheet\n    category: Office\n")
    jupyter = "/cvmfs/sft.cern.ch/lcg/views/LCG_105/x86_64-el9-gcc13-opt/bin"
    roots = tmp_path / "roots"
    if os.path.isdir("/cvmfs/sft.cern.ch"):
        pytest.skip("a real sft.cern.ch is mounted here")

    before = host_report(catalogue / "environments", "")
    assert before["jupyter-python"].startswith("jupyter-python: not available on this host: ")
    assert before["broken-desktop"].startswith(
        "broken-desktop: not available on this host: Spreadsheet is not installed")

    for name in ("jupyter-lab", "ipython"):
        program(roots, f"{jupyter}/{name}")
    after = host_report(catalogue / "environments", str(roots))
    assert after["jupyter-python"] == "jupyter-python: runs on this host"
    assert after["broken-desktop"] == before["broken-desktop"]  # still pointing at nothing
