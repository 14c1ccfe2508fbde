"""The real bootstrap agent against the real portal, served over HTTP on 127.0.0.1.

The agent script (contextualisation/agent/daaas-bootstrap) reads the bootstrap.json the portal
rendered into the machine's user-data, with only its paths pointed at test folders; the commands
that need root (chpasswd, systemctl, mount) are scripts on $PATH recording what they were given,
and vncpasswd is the real one when installed. The reconciler then moves the machine on.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import threading
import urllib.error
import urllib.request
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from werkzeug.serving import make_server

from daaas.contextualisation import AGENT_SOURCE
from daaas.portal import create_app
from daaas.portal.machines.secrets import bootstrap_token, rdp_password, vnc_password
from tests.integration.context_support import Cloud, context_row, machine_row, secret_key

STUBS = ("chpasswd", "systemctl", "mount")


@pytest.fixture
def served(settings_override: dict[str, Any]) -> Iterator[Flask]:
    """The portal on a real HTTP server in a thread; its public_url is that server."""
    holder: dict[str, Flask] = {}

    def application(environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        return holder["app"](environ, start_response)  # type: ignore[no-any-return]

    server = make_server("127.0.0.1", 0, application, threaded=True)
    holder["app"] = create_app({**settings_override,
                                "public_url": f"http://127.0.0.1:{server.server_port}"})
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield holder["app"]
    server.shutdown()
    thread.join(timeout=10)
    holder["app"].extensions["daaas"].engine.dispose()


@pytest.fixture
def vm(tmp_path: Path) -> dict[str, Path]:
    """Folders standing in for the VM's /home, /etc/daaas/secrets, /cvmfs, plus stub commands."""
    paths = {name: tmp_path / name for name in ("home", "secrets", "cvmfs", "bin", "log")}
    for path in paths.values():
        path.mkdir()
    for command in STUBS:
        script = paths["bin"] / command
        script.write_text(f'#!/bin/sh\necho "$*" >> "{paths["log"]}/{command}.args"\n'
                          f'cat >> "{paths["log"]}/{command}.stdin"\n')
        script.chmod(0o755)
    if not shutil.which("vncpasswd"):
        fake = paths["bin"] / "vncpasswd"
        fake.write_text("#!/bin/sh\nhead -c 8 | od -An -tx1\n")
        fake.chmod(0o755)
    return paths


def boot(cloud: Cloud, machine_id: str, vm: dict[str, Path],
         repositories: Iterable[str]) -> tuple[subprocess.CompletedProcess[str], Path]:
    """Write the machine's bootstrap.json (paths moved into ``vm``) and run the real agent."""
    document = cloud.document(machine_id)
    home = vm["home"] / document["user"]["name"]
    home.mkdir()
    for repository in repositories:
        (vm["cvmfs"] / repository).mkdir()
    document["user"].update(uid=os.getuid(), gid=os.getgid(), home=str(home))
    document.update(vnc_password_file=str(home / ".vnc" / "passwd"),
                    authorized_keys_file=str(home / ".ssh" / "authorized_keys"),
                    rdp_sign_in_file=str(vm["secrets"] / "rdp-sign-in.json"),
                    secret_dirs=[str(vm["secrets"])], cvmfs_root=str(vm["cvmfs"]),
                    retry={"initial_delay": 0.05, "max_delay": 0.2, "attempts": 4, "timeout": 10})
    config = vm["home"].parent / "bootstrap.json"
    config.write_text(json.dumps(document))
    config.chmod(0o600)
    command = [str(AGENT_SOURCE)] if os.path.exists("/usr/bin/python3") \
        else [sys.executable, str(AGENT_SOURCE)]
    env = {**os.environ, "PATH": f"{vm['bin']}:{os.environ.get('PATH', '/usr/bin:/bin')}"}
    done = subprocess.run([*command, "--config", str(config)], env=env, capture_output=True,
                          text=True, timeout=120)
    return done, home


def recorded(vm: dict[str, Path], name: str) -> str:
    path = vm["log"] / name
    return path.read_text() if path.exists() else ""


def test_the_real_agent_sets_the_machine_up_and_the_portal_makes_it_ready(
        served: Flask, vm: dict[str, Path]) -> None:
    cloud = Cloud(served)
    machine_id, _ = cloud.launch("ccp4")
    document = cloud.document(machine_id)
    assert document["callback_url"].startswith("http://127.0.0.1:")

    done, home = boot(cloud, machine_id, vm, document["cvmfs_repositories"])
    assert done.returncode == 0, done.stderr
    assert "daaas-bootstrap: ready" in done.stderr
    key = secret_key(served)
    for secret in (vnc_password(key, machine_id), rdp_password(key, machine_id),
                   bootstrap_token(key, machine_id)):
        assert secret not in done.stderr + done.stdout

    vnc_file = home / ".vnc" / "passwd"
    expected = subprocess.run([shutil.which("vncpasswd", path=str(vm["bin"]) + os.pathsep
                                            + os.environ.get("PATH", "")) or "vncpasswd", "-f"],
                              input=(vnc_password(key, machine_id) + "\n").encode(),
                              capture_output=True, check=True).stdout
    assert vnc_file.read_bytes() == expected
    assert recorded(vm, "chpasswd.stdin") == ""  # no login password: RDP uses one-time tokens
    enabled = recorded(vm, "systemctl.args").splitlines()
    assert {"enable --now autofs.service --no-reload",
            "enable --now tigervncserver@:1.service --no-reload",
            "enable --now xrdp.service --no-reload",
            "enable --now ssh.service --no-reload"} <= set(enabled)

    row = context_row(served, machine_id)
    assert row["used_at"] is not None and row["reported_status"] == "ready"
    assert machine_row(served, machine_id).state == "provisioning"
    cloud.cycle()
    assert machine_row(served, machine_id).state == "ready"


def test_the_real_agent_reports_a_missing_repository_and_the_machine_shows_why(
        served: Flask, vm: dict[str, Path]) -> None:
    cloud = Cloud(served)
    machine_id, _ = cloud.launch("ccp4")
    done, _ = boot(cloud, machine_id, vm, ["desktop.daaas.ac.uk"])  # ccp4.stfc.ac.uk is absent
    assert done.returncode == 1, done.stderr
    cloud.cycle()
    row = machine_row(served, machine_id)
    assert row.state == "error"
    assert "CVMFS repository ccp4.stfc.ac.uk failed after 3 attempts" in row.error_reason
    assert recorded(vm, "systemctl.args") == ""


def test_a_second_boot_cannot_get_the_secrets_again(served: Flask, vm: dict[str, Path]) -> None:
    cloud = Cloud(served)
    machine_id, _ = cloud.launch("ccp4")
    repositories = cloud.document(machine_id)["cvmfs_repositories"]
    assert boot(cloud, machine_id, vm, repositories)[0].returncode == 0
    shutil.rmtree(vm["home"])
    vm["home"].mkdir()
    again, home = boot(cloud, machine_id, vm, [])
    assert again.returncode == 1
    assert "the portal refused" in again.stderr and "HTTP 403" in again.stderr
    assert not (home / ".vnc" / "passwd").exists()
    cloud.cycle()  # the first report stands: the later 'failed' contradicts it and is refused
    assert machine_row(served, machine_id).state == "ready"


def test_racing_exchanges_get_the_secrets_once(served: Flask) -> None:
    cloud = Cloud(served)
    machine_id, token = cloud.launch("ccp4")
    url = f"{cloud.document(machine_id)['callback_url']}/api/v1/context/{machine_id}/bootstrap"
    start, statuses = threading.Barrier(8), list[int]()

    def attempt() -> None:
        request = urllib.request.Request(url, json.dumps({"token": token}).encode(),
                                         {"Content-Type": "application/json"}, method="POST")
        start.wait()
        try:
            with urllib.request.urlopen(request, timeout=60) as response:
                statuses.append(response.status)
        except urllib.error.HTTPError as refused:
            statuses.append(refused.code)

    threads = [threading.Thread(target=attempt) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=90)
    assert sorted(statuses) == [200] + [403] * 7


def test_a_file_given_to_the_user_can_be_opened_by_them_and_roots_stay_private(
        tmp_path: Path) -> None:
    """The Slurm token and daaas-submit's settings belong to the user inside the root-owned
    secret folder: the user must be able to open them by name (the folder passable, not
    listable) while root's files in the same folder stay 0600 root."""
    import importlib.machinery
    import importlib.util
    import pwd

    loader = importlib.machinery.SourceFileLoader("daaas_bootstrap_agent", str(AGENT_SOURCE))
    spec = importlib.util.spec_from_loader(loader.name, loader)
    assert spec is not None
    agent = importlib.util.module_from_spec(spec)
    loader.exec_module(agent)
    secrets = tmp_path / "etc" / "daaas" / "secrets"
    agent.install_file({"path": str(secrets / "report-token"), "content": "x"}, [str(secrets)])
    assert secrets.stat().st_mode & 0o777 == 0o700  # nothing of the user's: closed
    if os.geteuid() != 0:
        pytest.skip("giving a file to another user needs root")
    user = pwd.getpwnam("nobody")
    agent.install_file({"path": str(secrets / "hpc.json"), "content": "{}", "mode": "0400",
                        "owner": "nobody"}, [str(secrets)])
    assert secrets.stat().st_mode & 0o777 == 0o711
    assert (secrets / "hpc.json").stat().st_uid == user.pw_uid
    assert (secrets / "report-token").stat().st_mode & 0o777 == 0o600
    tmp_path.chmod(0o755)
    (tmp_path / "etc").chmod(0o755)
    (tmp_path / "etc" / "daaas").chmod(0o755)
    read = subprocess.run(["setpriv", f"--reuid={user.pw_uid}", f"--regid={user.pw_gid}",
                           "--clear-groups", "cat", str(secrets / "hpc.json")],
                          capture_output=True, text=True, check=False)
    assert read.returncode == 0 and read.stdout == "{}", read.stderr
    listing = subprocess.run(["setpriv", f"--reuid={user.pw_uid}", f"--regid={user.pw_gid}",
                              "--clear-groups", "ls", str(secrets)],
                             capture_output=True, text=True, check=False)
    assert listing.returncode != 0  # passable, not listable
