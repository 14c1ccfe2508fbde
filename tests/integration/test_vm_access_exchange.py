"""What a cloud VM gets through the bootstrap exchange for access and data (issue 18): the
user's SSH keys, the RDP sign-in verifier's settings and the experiment's data mounts, and what
the real agent does with them (authorized_keys written, data mounted read-only).

The portal is real (SQLite and PostgreSQL), the machine is launched by the real reconciler with
an experiment snapshot made as a launch makes it; the agent runs as a process against the
portal served over HTTP, with ``mount`` a script on $PATH recording its arguments.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization as ser
from cryptography.hazmat.primitives.asymmetric import ed25519
from flask import Flask
from flask.testing import FlaskClient

from daaas.contextualisation import AGENT_SOURCE
from daaas.portal.access.signin import public_key_pem
from daaas.portal.auth.service import get_user
from daaas.portal.config import resolve_secret_key
from daaas.portal.db import unit_of_work
from daaas.portal.experiments.backends import InvestigationInfo
from daaas.portal.experiments.service import snapshot
from daaas.portal.machines import service
from tests.integration.context_support import Cloud
from tests.support.web import assert_matches, bearer, served

LOCATIONS = ("/archive/MARI/cycle_23_1/RB1234/run1", "/archive/MARI/cycle_23_1/RB1234/run2",
             "/archive/MARI/cycle_23_2/RB1234")


@pytest.fixture
def settings_override(settings_override: dict[str, Any]) -> dict[str, Any]:
    """The conftest portal with experiment data exported by NFS per instrument and cycle."""
    return {**settings_override, "experiment_export": "nfs",
            "experiment_export_location": "/archive/{instrument}/{cycle}",
            "experiment_export_source": "nfs.facility.example:/exports/{instrument}/{cycle}",
            "experiment_export_options": "vers=4.2,sec=sys"}


def add_key(app: Flask, client: FlaskClient, comment: str) -> str:
    line = ed25519.Ed25519PrivateKey.generate().public_key().public_bytes(
        ser.Encoding.OpenSSH, ser.PublicFormat.OpenSSH).decode()
    response = client.post("/api/v1/ssh-keys", json={"public_key": f"{line} {comment}"},
                           headers=bearer(app, "scientist"))
    assert response.status_code == 201
    return line


def launch_for_experiment(app: Flask, cloud: Cloud, environment: str = "ccp4") -> str:
    """Launch a machine bound to an investigation whose datasets lie in two cycles."""
    rt = app.extensions["daaas"]
    info = InvestigationInfo(id=42, facility="ISIS", name="RB1234", visit_id="RB1234-1",
                             title="Spin waves", instruments=("MARI",), start_date=None,
                             end_date=None, members=(), data_locations=LOCATIONS)
    with unit_of_work(rt.session_factory) as db:
        machine = service.request_launch(
            db, rt.settings, rt.catalogue, get_user(db, "scientist"), environment,
            experiment=snapshot(info, rt.settings.experiment_data_path_template))
        machine_id = machine.id
    cloud.cycle()
    return machine_id


def test_the_exchange_delivers_keys_verifier_and_read_only_mounts(app: Flask,
                                                                  client: FlaskClient) -> None:
    keys = [add_key(app, client, "laptop"), add_key(app, client, "desk")]
    cloud = Cloud(app)
    machine_id = launch_for_experiment(app, cloud)
    document = cloud.document(machine_id)
    assert document["authorized_keys_file"] == "/home/scientist/.ssh/authorized_keys"
    user_data = cloud.provider.specs[machine_id].user_data or b""
    assert b"nfs.facility.example" not in user_data and keys[0].split()[1].encode() not in \
        user_data  # data and keys come by the exchange, not in user-data

    response = client.post(f"/api/v1/context/{machine_id}/bootstrap",
                           json={"token": document["token"]})
    assert response.status_code == 200, response.get_data(as_text=True)
    body = response.get_json()
    assert_matches(body, "MachineSecrets")
    assert body["ssh_authorized_keys"] == f"{keys[0]} laptop\n{keys[1]} desk\n"
    assert body["mounts"] == [
        {"fstype": "nfs", "source": "nfs.facility.example:/exports/MARI/cycle_23_1/RB1234",
         "folder": "experiment-RB1234-1-MARI-cycle_23_1", "options": "ro,vers=4.2,sec=sys",
         "label": "experiment RB1234-1"},
        {"fstype": "nfs", "source": "nfs.facility.example:/exports/MARI/cycle_23_2/RB1234",
         "folder": "experiment-RB1234-1-MARI-cycle_23_2", "options": "ro,vers=4.2,sec=sys",
         "label": "experiment RB1234-1"}]
    assert body["rdp_sign_in"] == {
        "machine_id": machine_id, "nonce_dir": "/var/lib/daaas/rdp-nonces",
        "public_key": public_key_pem(resolve_secret_key(app.extensions["daaas"].settings))}
    assert document["rdp_sign_in_file"] == "/etc/daaas/rdp-sign-in.json"


def test_a_machine_without_ssh_or_rdp_gets_neither_keys_nor_verifier(
        app: Flask, client: FlaskClient) -> None:
    add_key(app, client, "laptop")
    cloud = Cloud(app)
    machine_id = launch_for_experiment(app, cloud)
    with app.extensions["daaas"].session_factory.begin() as db:
        from daaas.portal.machines.models import Machine

        row = db.get(Machine, machine_id)
        assert row is not None
        row.environment = row.environment.model_copy(update={"protocols": ("novnc",)})
    body = client.post(f"/api/v1/context/{machine_id}/bootstrap",
                       json={"token": cloud.document(machine_id)["token"]}).get_json()
    assert "ssh_authorized_keys" not in body and "rdp_sign_in" not in body
    assert len(body["mounts"]) == 2  # the data whatever the protocols


def test_the_real_agent_writes_authorized_keys_and_mounts_the_data_read_only(
        app: Flask, client: FlaskClient, tmp_path: Path) -> None:
    key = add_key(app, client, "laptop")
    cloud = Cloud(app)
    machine_id = launch_for_experiment(app, cloud)
    document = cloud.document(machine_id)
    vm = {name: tmp_path / name for name in ("home", "secrets", "bin", "log", "cvmfs")}
    for path in vm.values():
        path.mkdir()
    for command in ("chpasswd", "systemctl", "mount", "vncpasswd"):
        script = vm["bin"] / command
        script.write_text(f'#!/bin/sh\necho "$*" >> "{vm["log"]}/{command}.args"\ncat >/dev/null\n')
        script.chmod(0o755)
    home = vm["home"] / "scientist"
    home.mkdir()
    for repository in document["cvmfs_repositories"]:
        (vm["cvmfs"] / repository).mkdir()
    document["user"].update(uid=os.getuid(), gid=os.getgid(), home=str(home))
    document.update(vnc_password_file=str(home / ".vnc" / "passwd"),
                    authorized_keys_file=str(home / ".ssh" / "authorized_keys"),
                    rdp_sign_in_file=str(vm["secrets"] / "rdp-sign-in.json"),
                    secret_dirs=[str(vm["secrets"])], cvmfs_root=str(vm["cvmfs"]),
                    retry={"initial_delay": 0.05, "max_delay": 0.2, "attempts": 3, "timeout": 10})
    with served(app) as url:
        document["callback_url"] = url
        config = tmp_path / "bootstrap.json"
        config.write_text(json.dumps(document))
        command = [str(AGENT_SOURCE)] if os.path.exists("/usr/bin/python3") \
            else [sys.executable, str(AGENT_SOURCE)]
        env = {**os.environ, "PATH": f"{vm['bin']}:{os.environ.get('PATH', '/usr/bin:/bin')}"}
        done = subprocess.run([*command, "--config", str(config)], env=env, capture_output=True,
                              text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    keys_file = home / ".ssh" / "authorized_keys"
    assert keys_file.read_text() == f"{key} laptop\n"
    assert oct(keys_file.stat().st_mode & 0o777) == "0o600"
    assert oct((home / ".ssh").stat().st_mode & 0o777) == "0o700"
    mounts = (vm["log"] / "mount.args").read_text().splitlines()
    assert mounts == [
        f"-t nfs -o ro,vers=4.2,sec=sys nfs.facility.example:/exports/MARI/{cycle}/RB1234 "
        f"{home}/experiment-RB1234-1-MARI-{cycle}" for cycle in ("cycle_23_1", "cycle_23_2")]
    for cycle in ("cycle_23_1", "cycle_23_2"):
        link = home / "Desktop" / f"Experiment RB1234-1-MARI-{cycle}"
        assert os.readlink(link) == f"../experiment-RB1234-1-MARI-{cycle}"
    verifier = json.loads((vm["secrets"] / "rdp-sign-in.json").read_text())
    assert verifier["machine_id"] == machine_id and "PUBLIC KEY" in verifier["public_key"]
