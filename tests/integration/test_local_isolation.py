"""Isolation (issue 12): every local desktop runs as its user's own account, reaches its own
storage and experiment data and nothing else, and listens on no TCP port.

The portal here is set up as ``daaas serve`` sets it up (migrated SQLite database and a
generated secret key in var_dir, demo users and experiments), running as root. What a user
could do from a shell in their desktop is tried by a probe started exactly as the session
starts its programs: with the credentials (uids, gids, groups) and environment read from the
session's running desktop process in /proc, through setpriv with no capabilities.
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest
from flask import Flask

from daaas.portal import migrate
from daaas.portal.app import create_app
from daaas.portal.auth.service import get_user
from daaas.portal.config import load_settings, secure_var_dir
from daaas.portal.db import make_engine, make_session_factory, unit_of_work
from daaas.portal.demo import create_demo_users
from daaas.portal.experiments.demo import create_demo_experiments
from daaas.portal.experiments.service import snapshot
from daaas.portal.storage import files
from daaas.portal.storage.service import storage_area
from tests.integration.process_scan import session_processes
from tests.support.machines import delete_now, launch_ready

pytestmark = [
    pytest.mark.skipif(not Path("/usr/bin/Xvnc").exists() and not os.environ.get("CI"),
                       reason="TigerVNC (Xvnc) not installed"),
    pytest.mark.skipif(os.geteuid() != 0, reason="desktops under users' own accounts need a "
                       "portal running as root (a non-root portal: test_single_user_mode)"),
]

#: Tries each read and write named on the command line; prints {name: "ok" or the error}.
PROBE = r"""
import json, os, socket, sys
reads, writes, displays = (json.loads(arg) for arg in sys.argv[1:4])
results = {}
def attempt(name, action):
    try:
        action()
        results[name] = "ok"
    except OSError as error:
        results[name] = error.strerror
def read(path):
    if os.path.isdir(path):
        os.listdir(path)
    else:
        open(path, "rb").read(1)
def write(path):
    with open(os.path.join(path, "probe.txt"), "w") as out:
        out.write("x")
def x_connect(display):  # an X11 connection set-up with no cookie: byte 0 of the answer
    with socket.socket(socket.AF_UNIX) as sock:
        sock.connect(f"/tmp/.X11-unix/X{display}")
        sock.sendall(b"l\0\x0b\0\0\0\0\0\0\0\0\0")
        if sock.recv(1) != b"\0":
            raise PermissionError(0, "X server accepted a client without a cookie")
        raise PermissionError(13, "Permission denied")
for name, path in reads.items():
    attempt("read " + name, lambda: read(path))
for name, path in writes.items():
    attempt("write " + name, lambda: write(path))
for name, display in displays.items():
    attempt("X " + name, lambda: x_connect(display))
print(json.dumps(results))
"""


@pytest.fixture
def portal(tmp_path: Path) -> Iterator[Flask]:
    """A portal set up as ``daaas serve`` does, on SQLite and a secret key file in var_dir."""
    settings = {"var_dir": str(tmp_path / "var")}
    umask = os.umask(0o077)  # as `daaas serve` sets it: modes are given on purpose, not by luck
    loaded = load_settings(settings)
    secure_var_dir(loaded)
    migrate.upgrade(make_engine(loaded.effective_database_url))
    with unit_of_work(make_session_factory(make_engine(loaded.effective_database_url))) as db:
        create_demo_users(db, loaded)
        create_demo_experiments(db, loaded)
    application = create_app(settings)
    try:
        yield application
    finally:
        application.extensions["daaas"].engine.dispose()
        os.umask(umask)


def run_in_session(machine_id: str, *command: str) -> subprocess.CompletedProcess[str]:
    """Run ``command`` as the session's desktop runs: same ids, groups, environment, HOME."""
    desktop = next(p for p in session_processes(machine_id) if p.name == "pcmanfm")
    process = psutil.Process(desktop.pid)
    uid, gid = process.uids().real, process.gids().real
    groups = next(line.split(":")[1].split() for line in
                  Path(f"/proc/{desktop.pid}/status").read_text().splitlines()
                  if line.startswith("Groups:"))
    env = process.environ()
    return subprocess.run(
        ["setpriv", f"--reuid={uid}", f"--regid={gid}", f"--groups={','.join(groups)}",
         "--inh-caps=-all", "--bounding-set=-all", "--no-new-privs", "--", *command],
        env=env, cwd=env["HOME"], capture_output=True, text=True, timeout=30, check=False)


def test_each_desktop_runs_as_its_user_and_reaches_only_their_things(portal: Flask) -> None:
    rt = portal.extensions["daaas"]
    var = rt.settings.var_path
    mine = rt.experiments.investigations_for("scientist")[0]
    record = snapshot(mine, rt.settings.experiment_data_path_template)
    with unit_of_work(rt.session_factory) as db:
        alice, bob = get_user(db, "scientist"), get_user(db, "neutron")
        alice_uid, bob_uid = alice.uid, bob.uid
        alice_storage = storage_area(rt.settings, alice).path
        bob_storage = storage_area(rt.settings, bob).path
    # a file uploaded on My Data, the way the page stores it (as root)
    uploaded = files.save_stream(files.Root("storage", "your storage", alice_storage, True), "",
                                 "notes.txt", _Body(b"beamtime notes\n"), 15, 1 << 20)
    (bob_storage / "bob-private.txt").write_text("bob's results\n")
    os.chown(bob_storage / "bob-private.txt", bob_uid, bob_uid)
    alice_id = launch_ready(portal, "scientist", experiment=record)
    bob_id = launch_ready(portal, "neutron")
    try:
        alice_home = var / "sessions" / alice_id / "home"
        bob_home = var / "sessions" / bob_id / "home"
        _assert_session_runs_as(alice_id, alice_uid)
        _assert_session_runs_as(bob_id, bob_uid)
        _assert_no_tcp_listener(alice_id)
        _assert_no_tcp_listener(bob_id)

        reads = {"secret key": str(var / "secret_key"), "database": str(var / "daaas.sqlite"),
                 "B's home": str(bob_home), "B's storage": str(bob_storage),
                 "B's file": str(bob_storage / "bob-private.txt"),
                 "sessions list": str(var / "sessions"),
                 "own storage": str(alice_home / "storage" / uploaded.name),
                 "own experiment": str(alice_home / f"experiment-{mine.visit_id}" / "xtal1"),
                 "own experiment file": str(alice_home / f"experiment-{mine.visit_id}" /
                                            "xtal1" / "xtal1_0001.cbf")}
        writes = {"B's storage": str(bob_storage), "B's home": str(bob_home),
                  "var": str(var), "own storage": str(alice_home / "storage")}
        displays = {"B's display": _display(rt.settings.var_path, bob_id)}
        done = run_in_session(alice_id, "/usr/bin/python3", "-c", PROBE, json.dumps(reads),
                              json.dumps(writes), json.dumps(displays))
        assert done.returncode == 0, done.stderr
        results = json.loads(done.stdout)
        denied = "Permission denied"
        assert results == {
            "read secret key": denied, "read database": denied, "read B's home": denied,
            "read B's storage": denied, "read B's file": denied, "read sessions list": denied,
            "read own storage": "ok", "read own experiment": "ok",
            "read own experiment file": "ok",
            "write B's storage": denied, "write B's home": denied, "write var": denied,
            "write own storage": "ok",
            "X B's display": denied,
        }
        assert (alice_storage / "probe.txt").stat().st_uid == alice_uid
        assert not (bob_storage / "probe.txt").exists()
    finally:
        delete_now(portal, "scientist", alice_id)
        delete_now(portal, "neutron", bob_id)


def test_the_desktop_shell_has_no_way_back_to_root(portal: Flask) -> None:
    """The session's programs hold no capability and cannot gain one (no_new_privs)."""
    machine_id = launch_ready(portal, "scientist")
    try:
        done = run_in_session(machine_id, "/bin/sh", "-c",
                              "grep -E '^(Cap(Inh|Prm|Eff|Bnd|Amb)|NoNewPrivs):' /proc/self/status")
        fields = dict(line.split(":\t") for line in done.stdout.splitlines())
        assert {name: value.strip() for name, value in fields.items()} == {
            "CapInh": "0000000000000000", "CapPrm": "0000000000000000",
            "CapEff": "0000000000000000", "CapBnd": "0000000000000000",
            "CapAmb": "0000000000000000", "NoNewPrivs": "1"}, done.stdout
        desktop = next(p for p in session_processes(machine_id) if p.name == "pcmanfm")
        status = Path(f"/proc/{desktop.pid}/status").read_text()
        assert "NoNewPrivs:\t1" in status and "CapEff:\t0000000000000000" in status
        uid = str(psutil.Process(desktop.pid).uids().real)
        account = subprocess.run(["getent", "passwd", uid], capture_output=True,
                                 text=True, check=True).stdout.split(":")
        assert account[1] == "x" and account[6].strip() == "/usr/sbin/nologin"
        assert account[4] == "daaas portal user"
        shadow = subprocess.run(["getent", "shadow", account[0]], capture_output=True,
                                text=True, check=True).stdout.split(":")
        assert shadow[1].startswith(("!", "*")), "the account has a usable password"
    finally:
        delete_now(portal, "scientist", machine_id)


def _assert_session_runs_as(machine_id: str, uid: int) -> None:
    processes = session_processes(machine_id)
    assert {p.name for p in processes} >= {"Xvnc", "openbox", "pcmanfm"}
    for found in processes:
        ids = psutil.Process(found.pid).uids()
        assert (ids.real, ids.effective, ids.saved) == (uid, uid, uid), (found, ids)
    ps = subprocess.run(["ps", "-o", "uid=", "-p", ",".join(str(p.pid) for p in processes)],
                        capture_output=True, text=True, check=True).stdout.split()
    assert ps and set(ps) == {str(uid)} and "0" not in ps


def _assert_no_tcp_listener(machine_id: str) -> None:
    for found in session_processes(machine_id):
        listening = [c for c in psutil.Process(found.pid).net_connections(kind="inet")
                     if c.status == psutil.CONN_LISTEN]
        assert listening == [], (found, listening)


def _display(var: Path, machine_id: str) -> int:
    state = json.loads((var / "sessions" / machine_id / "state.json").read_text())
    return int(state["display"])


class _Body:
    def __init__(self, data: bytes) -> None:
        self.data = data

    def read(self, size: int = -1) -> bytes:
        chunk, self.data = self.data, b""
        return chunk

