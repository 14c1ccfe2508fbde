"""A portal not running as root cannot bind-mount its software source at /cvmfs: `daaas serve`
still builds it in ``local_software_dir``, and its local provider searches that folder (after
the site's ``software_roots``) for launchers whose /cvmfs/<repository> is not on the host.

Run here as ``nobody`` (setpriv), as a portal started by a non-root account would be; what a
desktop then does with a software root is tested with a real desktop in
tests/integration/test_desktop_icon_check.py.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.paths import ROOT

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="runs the portal as nobody")
NOBODY = 65534
#: Prints the software roots of the local provider the settings build, as the portal does
ROOTS = r"""
import json
from daaas.portal.config import load_settings
from daaas.portal.providers.local import LocalProvider
provider = LocalProvider.from_settings(load_settings())
print(json.dumps([str(root) for root in provider.software_roots]))
"""


def as_nobody(argv: list[str], env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups", "--", *argv],
        cwd=cwd, env={"PATH": os.environ["PATH"], "PYTHONPATH": str(ROOT), "HOME": "/tmp", **env},
        capture_output=True, text=True, timeout=120, check=False)


def test_serve_as_nobody_builds_the_source_and_desktops_search_it(tmp_path: Path) -> None:
    software, var_dir = tmp_path / "software", tmp_path / "var"
    for folder in (software, var_dir):
        folder.mkdir()
        os.chown(folder, NOBODY, NOBODY)
    env = {"DAAAS_VAR_DIR": str(var_dir), "DAAAS_LOCAL_SOFTWARE_DIR": str(software),
           "DAAAS_SOFTWARE_ROOTS": "/srv/site-software", "DAAAS_START_WEBSOCKIFY": "false",
           "DAAAS_EMBEDDED_WORKER": "false", "DAAAS_LOCAL_SINGLE_USER_MODE": "true",
           "DAAAS_LOG_LEVEL": "WARNING"}
    with socket.socket() as taken:  # serve builds the source, then stops: its port is taken
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        served = as_nobody([str(Path(sys.executable).with_name("daaas")), "serve", "--port",
                            str(taken.getsockname()[1])], env, tmp_path)
    assert served.returncode != 0, served.stderr

    terminal = software / "desktop.daaas.ac.uk" / "launchers" / "terminal"
    assert terminal.read_text().endswith('exec /usr/bin/xterm "$@"\n')
    assert terminal.stat().st_uid == NOBODY and terminal.stat().st_mode & 0o777 == 0o755
    assert "could not be built" not in served.stderr

    roots = as_nobody([sys.executable, "-c", ROOTS], env, ROOT)
    assert roots.returncode == 0, roots.stderr[-2000:]
    assert json.loads(roots.stdout) == ["/srv/site-software", str(software)]  # site's first
