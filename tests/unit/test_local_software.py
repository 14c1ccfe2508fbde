"""The embedded default's software source (cvmfs/local-source.yaml) and what a host can run.

The source file must agree with the catalogue and the registry; :func:`build` writes programs
that run the Debian program named and nothing for a missing one; :func:`unavailable_reason`
names, for a person, the applications whose programs are not there.
"""

from __future__ import annotations

import os
import stat
import subprocess
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from daaas.catalogue import DEFAULT_DIRECTORY, load_catalogue
from daaas.catalogue.cli import catalogue_group
from daaas.cvmfs.local_source import (
    Program,
    SourceError,
    build,
    load_source,
    repositories,
    script,
)
from daaas.cvmfs.registry import load_registry
from daaas.portal.providers.local.software import (
    AvailabilityCache,
    missing_applications,
    runnable,
    unavailable_reason,
)
from tests.support.environments import make_environment

SOURCE = load_source()
CATALOGUE = load_catalogue(DEFAULT_DIRECTORY)
#: The environments the embedded default offers from Debian packages alone
LOCAL_ENVIRONMENTS = ("base-desktop", "hdf5-viewers")


def test_the_source_ships_every_program_of_the_local_environments() -> None:
    shipped = {program.cvmfs_path for program in SOURCE}
    for name in LOCAL_ENVIRONMENTS:
        commands = {app.command for app in CATALOGUE.environments[name].applications}
        assert commands <= shipped, f"{name}: not in local-source.yaml: {commands - shipped}"


def test_the_source_names_registered_repositories_and_debian_packages() -> None:
    registry = load_registry()
    assert registry.unknown(repositories(SOURCE)) == []
    setup = (Path(__file__).resolve().parents[2] / ".ci" / "setup.sh").read_text()
    run_packages = setup.split('RUN_PACKAGES="', 1)[1].split('"', 1)[0].split()
    assert {program.package for program in SOURCE} <= set(run_packages)


@pytest.mark.parametrize(("entry", "message"), [
    ({"run": [], "package": "x", "window": "X"}, "'run' must be a list"),
    ({"run": ["/usr/bin/xterm"], "package": "x", "window": "X"}, "'run' must be a list"),
    ({"run": ["xterm"], "window": "X"}, "'package' and 'window'"),
])
def test_a_bad_entry_is_refused_naming_it(tmp_path: Path, entry: dict[str, object],
                                          message: str) -> None:
    path = tmp_path / "source.yaml"
    path.write_text(yaml.safe_dump({"repositories": {"sw.example.org": {"bin/x": entry}}}))
    with pytest.raises(SourceError, match=message) as raised:
        load_source(path)
    assert "sw.example.org/bin/x" in str(raised.value)


def test_a_path_leaving_its_repository_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "source.yaml"
    path.write_text("repositories:\n  sw.example.org:\n    ../../etc/x: "
                    "{run: [xterm], package: xterm, window: XTerm}\n")
    with pytest.raises(SourceError, match="relative"):
        load_source(path)


def test_build_writes_runnable_programs_and_nothing_for_a_missing_one(tmp_path: Path) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    echo = bin_dir / "say"
    echo.write_text('#!/bin/sh\necho "said: $*"\n')
    echo.chmod(0o755)
    programs = [Program("sw.example.org", "bin/hello", ("say", "--loud"), "say-pkg", "Say"),
                Program("sw.example.org", "bin/gone", ("not-installed",), "gone-pkg", "Gone")]
    root = tmp_path / "source"
    (root / "sw.example.org" / "bin").mkdir(parents=True)
    (root / "sw.example.org" / "bin" / "gone").write_text("stale")
    old_umask = os.umask(0o077)  # as under `daaas serve`
    try:
        built = build(root, programs, search_path=str(bin_dir))
    finally:
        os.umask(old_umask)

    assert [p.path for p in built.written] == ["bin/hello"]
    assert [p.path for p in built.missing] == ["bin/gone"]
    hello = root / "sw.example.org" / "bin" / "hello"
    assert not (root / "sw.example.org" / "bin" / "gone").exists()
    for path in (root, root / "sw.example.org", root / "sw.example.org" / "bin", hello):
        assert stat.S_IMODE(path.stat().st_mode) == 0o755, path
    ran = subprocess.run([str(hello), "a b"], capture_output=True, text=True, check=True)
    assert ran.stdout == "said: --loud a b\n"
    assert hello.read_text() == script(programs[0], str(echo))


def test_a_missing_program_is_named_for_a_person() -> None:
    environment = make_environment(name="sw", applications=[
        {"name": "Viewer", "command": "/cvmfs/nowhere.example.org/bin/viewer",
         "icon": "utilities-terminal", "category": "Science"},
        {"name": "Shell", "command": "/cvmfs/nowhere.example.org/bin/shell", "terminal": True,
         "icon": "utilities-terminal", "category": "Science"}])

    assert unavailable_reason(environment) == (
        "Viewer and Shell are not installed on this server (the software repository "
        "nowhere.example.org is not available here).")
    assert AvailabilityCache().reason(environment) == unavailable_reason(environment)


def test_a_program_only_the_portal_may_run_does_not_count(tmp_path: Path) -> None:
    private = tmp_path / "private"
    private.write_text("#!/bin/sh\n")
    private.chmod(0o700)
    assert runnable(str(private), any_account=False) is (os.access(private, os.X_OK))
    assert not runnable(str(private), any_account=True)  # desktops run as their users
    assert not runnable(str(tmp_path), any_account=False)  # a folder is no program
    assert runnable("sh", any_account=True)


def test_the_shipped_catalogue_environments_are_all_checked() -> None:
    dawn = CATALOGUE.environments["dawn"]
    assert ("DAWN", "/cvmfs/dawn.diamond.ac.uk/dawn-2.34/dawn") in missing_applications(dawn)


def test_catalogue_check_host_says_per_environment_whether_it_runs_here() -> None:
    result = CliRunner().invoke(catalogue_group, ["check", "--host"])

    assert result.exit_code == 0, result.output  # not available is no catalogue problem
    lines = result.output.splitlines()
    by_name = {line.split(":", 1)[0]: line for line in lines[1:-1]}
    assert sorted(by_name) == sorted(CATALOGUE.environments)
    assert by_name["dawn"].startswith("dawn: not available on this host: DAWN ")
    for name, environment in CATALOGUE.environments.items():
        reason = unavailable_reason(environment)
        assert by_name[name] == f"{name}: " + (
            "runs on this host" if reason is None else f"not available on this host: {reason}")
    available = sum(unavailable_reason(e) is None for e in CATALOGUE.environments.values())
    assert lines[-1] == (f"on this host: {available} available, "
                         f"{len(CATALOGUE.environments) - available} not available")
