"""A portal that does not run as root cannot start desktops under each user's own account: it
refuses local launches, unless the administrator turns on single-user mode
(``local_single_user_mode``), in which every desktop runs as the portal's own account.

The portal's local provider runs here in a child process as ``nobody`` (setpriv), as a portal
started by a non-root account would.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.browser import free_port
from tests.support.paths import ROOT

pytestmark = [
    pytest.mark.skipif(not Path("/usr/bin/Xvnc").exists() and not os.environ.get("CI"),
                       reason="TigerVNC (Xvnc) not installed"),
    pytest.mark.skipif(os.geteuid() != 0, reason="starts the portal's provider as nobody"),
]
NOBODY = 65534

#: Launches a desktop for each user named on the command line, as the portal's worker does;
#: prints {user: "ready as uid N" or the refusal (person's message | log message)}.
PORTAL = r"""
import json, sys, psutil
from daaas.portal.providers.errors import ProviderError
from daaas.portal.providers.local import LocalProvider
from tests.support.local import spec
var_dir, single_user, users = sys.argv[1], sys.argv[2] == "on", sys.argv[3:]
provider = LocalProvider(var_dir=var_dir, single_user_mode=single_user)
outcome = {"notices": provider.notices()}
for number, user in enumerate(users):
    machine_id = f"m-{user}"
    launch = spec(machine_id)
    launch = type(launch)(**{**launch.__dict__, "username": user, "uid": 20100 + number,
                             "gid": 20100 + number})
    try:
        provider.launch(launch)
        uids = {p.uids().real for p in psutil.process_iter()
                if (p.environ() if p.uids().real == psutil.Process().uids().real else {})
                .get("DAAAS_MACHINE_ID") == machine_id}
        outcome[user] = f"ready as uid {sorted(uids)}"
    except ProviderError as error:
        outcome[user] = f"{error.user_message} | {error.log_message}"
    finally:
        provider.delete(machine_id)
print(json.dumps(outcome))
"""


def run_portal_as_nobody(tmp_path: Path, single_user: str, *users: str) -> dict[str, str]:
    var_dir = tmp_path / "var"
    var_dir.mkdir()
    os.chown(var_dir, NOBODY, NOBODY)
    done = subprocess.run(
        ["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups", "--",
         sys.executable, "-c", PORTAL, str(var_dir), single_user, *users],
        cwd=ROOT, env={"PATH": os.environ["PATH"], "PYTHONPATH": str(ROOT), "HOME": "/tmp"},
        capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    outcome: dict[str, str] = json.loads(done.stdout.splitlines()[-1])
    return outcome


def test_a_portal_not_running_as_root_refuses_local_launches(tmp_path: Path) -> None:
    outcome = run_portal_as_nobody(tmp_path, "off", "alice", "bob")
    for user in ("alice", "bob"):
        assert outcome[user].startswith(
            "Desktops cannot be started on this server: the portal does not run as root"), \
            outcome
        assert "local_single_user_mode" in outcome[user]
    assert outcome["notices"] == [
        "Local desktops are refused: the portal runs as nobody, not root, so it cannot start "
        "desktops under each user's own account. Run it as root, or set "
        "local_single_user_mode = true on a one-person workstation."]


def test_single_user_mode_runs_every_desktop_as_the_portal_and_says_so(tmp_path: Path) -> None:
    outcome = run_portal_as_nobody(tmp_path, "on", "alice", "bob")
    assert outcome["alice"] == outcome["bob"] == f"ready as uid [{NOBODY}]", outcome
    assert len(outcome["notices"]) == 1
    assert outcome["notices"][0].startswith("Local desktops run in single-user mode: every "
                                            "desktop runs as the portal's own account (nobody)")


@pytest.mark.parametrize(("mode", "says"), [
    ("false", "WARNING: Local desktops are refused: the portal runs as nobody, not root"),
    ("true", "WARNING: Local desktops run in single-user mode: every desktop runs as the "
             "portal's own account (nobody)")])
def test_serve_says_so_at_start(tmp_path: Path, mode: str, says: str) -> None:
    var_dir = tmp_path / "var"
    var_dir.mkdir()
    os.chown(var_dir, NOBODY, NOBODY)
    env = {"PATH": os.environ["PATH"], "HOME": "/tmp", "DAAAS_VAR_DIR": str(var_dir),
           "DAAAS_PORT": str(free_port()), "DAAAS_START_WEBSOCKIFY": "false",
           "DAAAS_EMBEDDED_WORKER": "false", "DAAAS_LOCAL_SINGLE_USER_MODE": mode}
    serve = subprocess.Popen(
        ["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups", "--",
         str(Path(sys.executable).with_name("daaas")), "serve"],
        cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        assert serve.stdout is not None
        seen = []
        for line in serve.stdout:
            seen.append(line)
            if line.startswith("WARNING:") or "daaas portal:" in line:
                break
        assert any(line.startswith(says) for line in seen), "".join(seen)
    finally:
        serve.terminate()
        serve.wait(30)
