"""The wheel as a user gets it: built outside the checkout, installed in a fresh venv, run.

The checkout's files that git tracks or would track (new files not ignored), as they are in the
working tree with uncommitted edits, are copied to a temporary folder; a wheel is built there
with ``pip wheel``, and a new virtual environment (no system site-packages) installs it with its
dependencies from the index pip is configured with. The tests then run the installed ``daaas``
from a folder outside the checkout, so nothing of the source tree can stand in for a file the
wheel lacks. Which files the wheel must carry is derived from the source tree, not listed by
hand.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from tests.support.paths import ROOT

# Docs for people, read by no code: the one kind of tracked file the wheel need not carry.
NOT_READ_SUFFIXES = (".md",)
SERVE_TIMEOUT = 60.0


def _git(*args: str) -> str:
    return subprocess.run(["git", *args], cwd=ROOT, check=True, capture_output=True,
                          text=True).stdout


def _checkout_state() -> str:
    """Everything git sees in the checkout, ignored files (build/, *.egg-info) included."""
    return _git("status", "--porcelain", "--ignored")


def _tracked() -> list[str]:
    """The files git tracks or would track (new, not ignored), as the working tree has them."""
    listed = _git("ls-files", "-z", "--cached", "--others", "--exclude-standard")
    return sorted({name for name in listed.split("\0") if name})


def _subpackages() -> list[str]:
    """The top-level folders the wheel installs under daaas/: the links in the daaas folder."""
    return sorted(link.name for link in (ROOT / "daaas").iterdir() if link.is_symlink())


def _shipped_sources() -> list[str]:
    """Every tracked file of the subpackages that the code may read, as a wheel path."""
    folders = tuple(f"{name}/" for name in _subpackages())
    return sorted(f"daaas/{name}" for name in _tracked()
                  if name.startswith(folders) and not name.endswith(NOT_READ_SUFFIXES)
                  and (ROOT / name).exists())


def _environments() -> dict[str, bool]:
    """Each shipped environment's name, and whether its file declares it abstract."""
    found = {}
    for path in sorted((ROOT / "catalogue" / "environments").glob("*.yaml")):
        document = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        found[str(document.get("name", path.stem))] = bool(document.get("abstract", False))
    return found


def _copy_tracked(target: Path) -> None:
    """Copy the working tree's tracked files (links kept as links) to ``target``."""
    for name in _tracked():
        source, copy = ROOT / name, target / name
        if not (source.exists() or source.is_symlink()):
            continue  # deleted in the working tree, not yet committed
        copy.parent.mkdir(parents=True, exist_ok=True)
        if source.is_symlink():
            copy.symlink_to(os.readlink(source))
        else:
            shutil.copy2(source, copy)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass(frozen=True)
class Installed:
    """A fresh venv with the wheel installed, and a working folder outside the checkout."""

    wheel: Path
    venv: Path
    work: Path

    def environ(self, **settings: str) -> dict[str, str]:
        """The caller's environment without DAAAS_ settings or Python paths, plus ``settings``."""
        env = {key: value for key, value in os.environ.items()
               if not key.startswith("DAAAS_") and key not in {"PYTHONPATH", "PYTHONHOME",
                                                                "VIRTUAL_ENV"}}
        env["DAAAS_VAR_DIR"] = str(self.work / "var")
        env.update(settings)
        return env

    def daaas(self, *args: str, stdin: str | None = None,
              **settings: str) -> subprocess.CompletedProcess[str]:
        """Run the installed ``daaas`` command in the working folder."""
        return subprocess.run([str(self.venv / "bin" / "daaas"), *args], cwd=self.work,
                              env=self.environ(**settings), input=stdin, capture_output=True,
                              text=True, timeout=120)

    def python(self, code: str) -> subprocess.CompletedProcess[str]:
        """Run ``python -c code`` with the venv's interpreter in the working folder."""
        return subprocess.run([str(self.venv / "bin" / "python"), "-c", code], cwd=self.work,
                              env=self.environ(), capture_output=True, text=True, timeout=120)


@pytest.fixture(scope="module")
def checkout_before() -> str:
    """The checkout's state before the wheel is built."""
    return _checkout_state()


@pytest.fixture(scope="module")
def installed(checkout_before: str,
              tmp_path_factory: pytest.TempPathFactory) -> Iterator[Installed]:
    """Build the wheel from a copy of the tree and install it in a new venv (25-40 s).

    The folder (a 250 MB venv) is removed after the module's tests.
    """
    base = tmp_path_factory.mktemp("packaging")
    assert ROOT not in base.resolve().parents, f"{base} must be outside the checkout"
    source, dist, venv, work = base / "source", base / "dist", base / "venv", base / "work"
    _copy_tracked(source)
    work.mkdir()
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(dist),
                    str(source)], cwd=work, check=True, capture_output=True, timeout=600)
    wheel = next(dist.glob("daaas-*.whl"))
    subprocess.run([sys.executable, "-m", "venv", str(venv)], cwd=work, check=True,
                   capture_output=True, timeout=300)
    subprocess.run([str(venv / "bin" / "python"), "-m", "pip", "install", "-q", str(wheel)],
                   cwd=work, check=True, capture_output=True, timeout=900)
    yield Installed(wheel, venv, work)
    shutil.rmtree(base, ignore_errors=True)


def test_the_wheel_carries_every_file_of_the_tree_the_code_reads(installed: Installed) -> None:
    with zipfile.ZipFile(installed.wheel) as archive:
        names = set(archive.namelist())
        dist_info = next(n.split("/")[0] for n in names if n.endswith(".dist-info/METADATA"))
        metadata = archive.read(f"{dist_info}/METADATA").decode()
        entry_points = archive.read(f"{dist_info}/entry_points.txt").decode()
    expected = _shipped_sources()
    assert len(expected) > 100  # the derivation found the tree
    missing = [name for name in expected if name not in names]
    assert missing == [], f"not in the wheel (setup.py package_data lacks them): {missing}"
    assert f"{dist_info}/licenses/LICENSE" in names
    assert "License-File: LICENSE" in metadata
    assert "daaas = daaas.portal.cli:main" in entry_points
    assert {name.split("/")[0] for name in names} == {"daaas", dist_info}


def test_nothing_generic_is_importable_but_daaas_is(installed: Installed) -> None:
    for name in _subpackages():
        result = installed.python(f"import {name}")
        assert result.returncode != 0, f"`import {name}` works in the fresh venv"
        assert f"No module named '{name}'" in result.stderr
    imports = "; ".join(f"import daaas.{name}" for name in _subpackages())
    result = installed.python(f"{imports}; import daaas; print(daaas.__file__)")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(str(installed.venv))


def test_db_upgrade_and_catalogue_check(installed: Installed) -> None:
    upgraded = installed.daaas("db", "upgrade")
    assert upgraded.returncode == 0, upgraded.stderr
    assert (installed.work / "var" / "daaas.sqlite").is_file()
    checked = installed.daaas("catalogue", "check")
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert f"{len(_environments())} environments valid, 0 invalid" in checked.stdout


@pytest.fixture(scope="module")
def packager(installed: Installed) -> str:
    """An administrator account in the installed portal's database; returns its name."""
    assert installed.daaas("db", "upgrade").returncode == 0
    added = installed.daaas("users", "add", "packager", "--admin", "--password", "-",
                            stdin="packager-password-1\n")
    assert added.returncode == 0, added.stderr
    return "packager"


@pytest.mark.parametrize(("environment", "abstract"), sorted(_environments().items()))
def test_context_render_every_shipped_environment(installed: Installed, packager: str,
                                                  environment: str, abstract: bool) -> None:
    result = installed.daaas("context", "render", environment, "--user", packager)
    assert "Traceback" not in result.stderr
    if abstract:  # a base is never launched, so there is nothing to render: a clean refusal
        assert result.returncode == 1 and len(result.stderr.splitlines()) == 1
        return
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("#cloud-config\n")
    assert f"name: {packager}" in result.stdout


def _processes_using(folder: Path) -> list[str]:
    """The live processes whose command line names something under ``folder``."""
    found = []
    for proc in Path("/proc").iterdir():
        try:
            command = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode()
            state = (proc / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except (OSError, IndexError):
            continue
        if str(folder) in command and state != "Z":
            found.append(f"{proc.name}: {command}")
    return found


def _get(url: str) -> tuple[int, str]:
    with urllib.request.urlopen(url, timeout=5) as response:
        return response.status, response.read().decode()


def _wait_for_page(server: subprocess.Popen[str], url: str) -> tuple[int, str]:
    deadline = time.monotonic() + SERVE_TIMEOUT
    while time.monotonic() < deadline:
        if server.poll() is not None:
            output = server.stdout.read() if server.stdout else ""
            raise AssertionError(f"daaas serve exited with {server.returncode}: {output}")
        try:
            return _get(url)
        except (urllib.error.URLError, ConnectionError):
            time.sleep(0.2)
    raise AssertionError(f"daaas serve did not answer {url} within {SERVE_TIMEOUT:.0f} s")


def test_serve_answers_its_sign_in_page_and_stops_cleanly(installed: Installed) -> None:
    port, proxy_port = _free_port(), _free_port()
    config = installed.work / "serve.toml"
    config.write_text(f'var_dir = "{installed.work / "serve-var"}"\nport = {port}\n'
                      f"websockify_port = {proxy_port}\n", encoding="utf-8")
    env = installed.environ(DAAAS_CONFIG=str(config))
    del env["DAAAS_VAR_DIR"]
    server = subprocess.Popen([str(installed.venv / "bin" / "daaas"), "serve"],
                              cwd=installed.work, env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True)
    try:
        status, page = _wait_for_page(server, f"http://127.0.0.1:{port}/sign-in")
        assert status == 200
        assert 'name="password"' in page
    finally:
        server.send_signal(signal.SIGTERM)
        try:
            output, _ = server.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
            output, _ = server.communicate()
    assert server.returncode == 0, output
    assert "Traceback" not in output
    assert f"daaas portal: http://127.0.0.1:{port}/" in output
    assert _processes_using(installed.venv) == []


def test_the_checkout_is_untouched(installed: Installed, checkout_before: str) -> None:
    assert _checkout_state() == checkout_before
