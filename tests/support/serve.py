"""A real `daaas serve` on the local provider for browser tests (the e2e fixtures)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from daaas.portal.providers.local.desktop import detach
from tests.support.browser import free_port
from tests.support.paths import ROOT, passable


@contextmanager
def served_portal(tmp_path_factory: pytest.TempPathFactory,
                  settings: dict[str, str] | None = None) -> Iterator[str]:
    """Run `daaas serve` (local provider) on free ports with ``settings`` as DAAAS_* variables
    on top of the test defaults; yield its URL, stop it and detach its mounts on exit."""
    if not Path("/usr/bin/Xvnc").exists() and not os.environ.get("CI"):
        pytest.skip("TigerVNC (Xvnc) not installed")
    var_dir = passable(tmp_path_factory.mktemp("portal")) / "var"
    port = free_port()
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("DAAAS_")},
           "DAAAS_PORT": str(port), "DAAAS_WEBSOCKIFY_PORT": str(free_port()),
           "DAAAS_VAR_DIR": str(var_dir), "DAAAS_RECONCILE_INTERVAL_SECONDS": "0.5",
           **(settings or {})}
    log = (var_dir.parent / "serve.log").open("w")
    process = subprocess.Popen([sys.executable, "-c", "from daaas.portal.cli import main; main()",
                                "serve"], cwd=ROOT, env=env, stdout=log,
                               stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_for_http(url, process)
        yield url
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(30)
        detach(var_dir)  # a failed test may leave a session's read-only experiment mount
        log.close()
        print((var_dir.parent / "serve.log").read_text()[-3000:])


def _wait_for_http(url: str, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        assert process.poll() is None, "daaas serve stopped"
        try:
            urllib.request.urlopen(url + "/sign-in", timeout=2)
            return
        except OSError:
            time.sleep(0.3)
    raise AssertionError("daaas serve did not answer within 90 s")
