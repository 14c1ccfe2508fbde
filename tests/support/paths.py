"""Where the checkout is and where tests put what a person would look at (screenshots, logs)."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


OUTPUT = Path(os.environ.get("DAAAS_TEST_OUTPUT", ROOT / "test-output"))


def passable(folder: Path) -> Path:
    """Let other accounts pass through ``folder`` and every folder above it up to the temporary
    folder (o+x, no listing); return ``folder``.

    pytest makes its folders 0700. When the tests run as root, local desktops run as their
    users' own accounts and must reach their homes and storage in a var_dir below it.
    """
    if os.geteuid() == 0:
        for each in (folder, *folder.parents):
            if each == Path(tempfile.gettempdir()):
                break
            each.chmod(each.stat().st_mode | 0o001)
    return folder
