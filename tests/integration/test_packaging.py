"""`pip install .` gives a `daaas` command with every template, migration and data file."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

from tests.conftest import ROOT

NEEDED = [
    "portal/templates/base.html", "portal/templates/access/desktop.html",
    "portal/static/portal.css", "portal/static/access/desktop.js",
    "portal/migrations/env.py", "portal/migrations/script.py.mako",
    "portal/migrations/versions/0001_initial.py", "catalogue/environments/ccp4.yaml",
    "catalogue/icons/ccp4.svg", "contextualisation/agent/daaas-bootstrap",
    "cvmfs/templates/default.local.j2",
]


def test_wheel_has_every_file_and_the_command(tmp_path: Path) -> None:
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps",
                    "-q", "-w", str(tmp_path), str(ROOT)], check=True, capture_output=True)
    wheel = next(tmp_path.glob("daaas-*.whl"))
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        entry_points = archive.read(next(n for n in names if n.endswith("entry_points.txt")))
    missing = [name for name in NEEDED if name not in names]
    assert missing == []
    shipped = {p.relative_to(ROOT).as_posix() for p in (ROOT / "portal" / "migrations" /
                                                         "versions").glob("*.py")}
    assert shipped <= names
    assert b"daaas = portal.cli:main" in entry_points
