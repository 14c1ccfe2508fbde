"""The real ``daaas`` command: every error is one line on stderr and a non-zero exit.

Each case runs the console script of the venv the tests run in, as a user would, in a folder
outside the checkout; a traceback or a second line fails the case.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flask.testing import FlaskClient

from daaas.portal import create_app
from tests.support.web import sign_in

DAAAS = Path(sys.executable).with_name("daaas")


def daaas(*args: str, cwd: Path, stdin: str = "",
          **settings: str) -> subprocess.CompletedProcess[str]:
    """Run the installed ``daaas`` command with only ``settings`` as its DAAAS_ environment."""
    assert DAAAS.exists(), f"{DAAAS} is missing: install the project (pip install -e .)"
    env = {key: value for key, value in os.environ.items() if not key.startswith("DAAAS_")}
    env.update(settings)
    return subprocess.run([str(DAAAS), *args], cwd=cwd, env=env, input=stdin,
                          capture_output=True, text=True, timeout=120)


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A working folder with a migrated database (var/), a broken TOML file and a plain file."""
    path = tmp_path_factory.mktemp("cli")
    upgraded = daaas("db", "upgrade", cwd=path, DAAAS_VAR_DIR=str(path / "var"))
    assert upgraded.returncode == 0, upgraded.stderr
    (path / "broken.toml").write_text("port = [\n", encoding="utf-8")
    (path / "plain-file").write_text("not a folder\n", encoding="utf-8")
    (path / "empty.sqlite").touch()
    return path


@pytest.fixture
def taken_port() -> Iterator[int]:
    """A port another program listens on."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield int(sock.getsockname()[1])


CASES: list[tuple[str, tuple[str, ...], dict[str, str], str, str]] = [
    # (case, arguments, settings with {dir}, stdin, what the line must say)
    ("ill-typed setting", ("config", "show"), {"DAAAS_PORT": "eighty"}, "",
     "Configuration key 'port' in environment variable DAAAS_PORT"),
    ("unknown setting", ("users", "list"), {"DAAAS_COLOUR": "blue"}, "",
     "Unknown configuration key 'colour'"),
    ("missing configuration file", ("users", "list"), {"DAAAS_CONFIG": "{dir}/none.toml"}, "",
     "none.toml (named by DAAAS_CONFIG) does not exist"),
    ("broken configuration file", ("db", "upgrade"), {"DAAAS_CONFIG": "{dir}/broken.toml"}, "",
     "broken.toml is not valid TOML"),
    ("unknown provider", ("orphans",), {"DAAAS_PROVIDER": "nimbus"}, "",
     "Unknown compute provider 'nimbus'"),
    ("missing registry setting", ("context", "render", "ccp4"),
     {"DAAAS_CVMFS_REGISTRY": "{dir}/none.yaml"}, "", "cvmfs_registry"),
    ("missing registry file", ("catalogue", "check", "--cvmfs-registry", "{dir}/none.yaml"), {},
     "", "cannot read the CVMFS registry: [Errno 2] No such file or directory"),
    ("unreachable database", ("users", "list"),
     {"DAAAS_DATABASE_URL": "sqlite:///{dir}/no-folder/daaas.sqlite"}, "",
     "Cannot use the database: unable to open database file"),
    ("database never migrated", ("tokens", "create", "scientist"),
     {"DAAAS_DATABASE_URL": "sqlite:///{dir}/empty.sqlite"}, "", "run `daaas db upgrade`"),
    ("var_dir under a file", ("db", "upgrade"), {"DAAAS_VAR_DIR": "{dir}/plain-file/var"}, "",
     "plain-file/var. Check that the path exists"),
    ("unknown user: token", ("tokens", "create", "ghost"), {}, "",
     "There is no user called 'ghost'. See `daaas users list`"),
    ("unknown user: password", ("users", "set-password", "ghost", "--password", "-"), {},
     "ghost-password-1\n", "There is no user called 'ghost'"),
    ("unknown user: render", ("context", "render", "ccp4", "--user", "ghost"), {}, "",
     "There is no user called 'ghost'"),
    ("unknown environment: render", ("context", "render", "no-such-env"), {}, "",
     "There is no environment called 'no-such-env'"),
    ("unknown environment: show", ("catalogue", "show", "no-such-env"), {}, "",
     "There is no environment called 'no-such-env'"),
    ("unknown environment: images", ("images", "recipe", "no-such-env"), {}, "",
     "no valid environment 'no-such-env'"),
    ("unknown cloud", ("images", "list", "ccp4", "--cloud", "no-such-cloud"), {}, "",
     "cloud 'no-such-cloud'"),
    ("missing image file", ("images", "upload", "ccp4", "{dir}/none.qcow2"), {}, "",
     "There is no image file"),
    ("no password on stdin", ("users", "add", "dave", "--password", "-"), {}, "",
     "Standard input gave no password for --password -"),
    ("short password on stdin", ("users", "add", "dave", "--password", "-"), {}, "short\n",
     "at least 10 characters"),
]


@pytest.mark.parametrize(("args", "settings", "stdin", "says"),
                         [case[1:] for case in CASES], ids=[case[0] for case in CASES])
def test_an_error_is_one_line_and_a_non_zero_exit(folder: Path, args: tuple[str, ...],
                                                   settings: dict[str, str], stdin: str,
                                                   says: str) -> None:
    env = {"DAAAS_VAR_DIR": str(folder / "var")}
    env.update({key: value.format(dir=folder) for key, value in settings.items()})
    result = daaas(*(arg.format(dir=folder) for arg in args), cwd=folder, stdin=stdin, **env)
    assert_one_error_line(result, says)


def test_serve_on_a_taken_port_is_one_line(tmp_path: Path, taken_port: int) -> None:
    result = daaas("serve", "--port", str(taken_port), cwd=tmp_path,
                   DAAAS_VAR_DIR=str(tmp_path / "var"), DAAAS_LOG_LEVEL="WARNING",
                   DAAAS_START_WEBSOCKIFY="false", DAAAS_EMBEDDED_WORKER="false")
    assert_one_error_line(result, f"The portal cannot listen on 127.0.0.1:{taken_port}")


def assert_one_error_line(result: subprocess.CompletedProcess[str], says: str) -> None:
    """The command failed with exactly one line on stderr, saying ``says``."""
    assert result.returncode != 0, result.stdout
    assert "Traceback" not in result.stderr, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("Error: ") and says in lines[0], lines[0]


def test_password_from_stdin(settings_override: dict[str, Any], client: FlaskClient,
                             tmp_path: Path) -> None:
    env = {"DAAAS_DATABASE_URL": settings_override["database_url"],
           "DAAAS_VAR_DIR": settings_override["var_dir"]}
    added = daaas("users", "add", "carol", "--password", "-", cwd=tmp_path,
                  stdin="carol password one\n", **env)
    assert added.returncode == 0, added.stderr
    assert sign_in(client, "carol", "-").status_code == 401
    assert sign_in(client, "carol", "carol password one").status_code == 302

    changed = daaas("users", "set-password", "carol", "--password", "-", cwd=tmp_path,
                    stdin="carol-password-two\r\n", **env)
    assert changed.returncode == 0, changed.stderr
    assert sign_in(client, "carol", "carol password one").status_code == 401
    assert sign_in(client, "carol", "carol-password-two").status_code == 302


def test_serve_refuses_a_secret_key_others_can_read(tmp_path: Path) -> None:
    var = tmp_path / "var"
    var.mkdir()
    key = var / "secret_key"
    key.write_text("a-key-someone-else-may-have-read\n")
    key.chmod(0o644)
    result = daaas("serve", cwd=tmp_path, DAAAS_VAR_DIR=str(var), DAAAS_LOG_LEVEL="WARNING",
                   DAAAS_START_WEBSOCKIFY="false", DAAAS_EMBEDDED_WORKER="false")
    assert_one_error_line(result, f"The secret key file {key} is open to other users (mode 644)")
    assert f"chmod 600 {key}" in result.stderr
    assert key.stat().st_mode & 0o777 == 0o644, "refused, not silently changed"


def test_the_portal_closes_its_var_dir(settings_override: dict[str, Any]) -> None:
    """var_dir 0711; its database, secret key, logs and experiment data the portal's alone."""
    var = Path(settings_override["var_dir"])
    for folder in ("log", "experiments", "storage", "sessions"):
        (var / folder).mkdir(mode=0o755)
    for name in ("secret_key", "daaas.sqlite", "daaas.sqlite-wal"):
        (var / name).write_text("x")
        (var / name).chmod(0o644)
    create_app({**settings_override, "secret_key": ""})
    modes = {path.name: path.stat().st_mode & 0o777 for path in var.iterdir()}
    assert var.stat().st_mode & 0o777 == 0o711
    assert modes == {"log": 0o700, "experiments": 0o700, "storage": 0o711, "sessions": 0o711,
                     "secret_key": 0o600, "daaas.sqlite": 0o600, "daaas.sqlite-wal": 0o600}
