"""daaas-submit, the machine's HPC command, as a real process against the real test Slurm: the
bootstrap exchange of a served portal hands the machine's user their Slurm token and
daaas-submit's settings; run as that Unix user, the command submits a batch script, the job
runs on the cluster as them and its output file appears in their storage (``hpc_work_dir``).
Another user cannot use the files, and Slurm refuses the token for anyone else's name."""

from __future__ import annotations

import json
import os
import pwd
import shutil
import subprocess
import tempfile
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask

from daaas.portal import create_app
from daaas.portal.hpc.machine import JWT_PATH, SUBMIT_CONFIG_PATH
from tests.integration.context_support import Cloud
from tests.support.hpc import hpc_settings, observe, portal_user, slurm_cluster
from tests.support.machines import launch
from tests.support.paths import ROOT
from tests.support.web import served

COMMAND = ROOT / "contextualisation" / "agent" / "daaas-submit"


@pytest.fixture
def app(settings_override: dict[str, Any]) -> Iterator[Flask]:
    cluster = slurm_cluster()
    application = create_app(hpc_settings({**settings_override, "provider": "memory"}, cluster))
    yield application
    application.extensions["daaas"].engine.dispose()


def exchange(app: Flask, username: str) -> dict[str, dict[str, Any]]:
    """Launch a machine for ``username`` and do its bootstrap exchange over HTTP with the
    served portal, as the agent in the VM does; return the delivered files by path."""
    cloud = Cloud(app)
    machine_id = launch(app, username=username, environment="base-desktop")
    cloud.cycle()
    token = cloud.document(machine_id)["token"]
    with served(app) as url:
        request = urllib.request.Request(
            f"{url}/api/v1/context/{machine_id}/bootstrap", method="POST",
            data=json.dumps({"token": token}).encode(),
            headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=30) as response:
            answer = json.load(response)
    return {item["path"]: item for item in answer["files"]}


def install(files: dict[str, dict[str, Any]], folder: Path) -> dict[str, Path]:
    """Write the delivered files as the agent does (owner, mode) into ``folder``, with the
    command itself; return where each is."""
    where = {}
    for path, item in files.items():
        target = folder / Path(path).name
        target.write_text(item["content"])
        account = pwd.getpwnam(item["owner"])
        os.chown(target, account.pw_uid, account.pw_gid)
        target.chmod(int(item["mode"], 8))
        where[path] = target
    shutil.copy(COMMAND, folder / "daaas-submit")
    (folder / "daaas-submit").chmod(0o755)
    script = folder / "job.sh"
    script.write_text("#!/bin/sh\necho \"daaas-submit job of $(id -un) in $(pwd)\"\n")
    script.chmod(0o644)
    return where


def run_as(user: str, folder: Path, where: dict[str, Path], *args: str,
           config: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = {"PATH": "/usr/bin:/bin", "DAAAS_HPC_CONFIG": str(config or where[SUBMIT_CONFIG_PATH]),
           "DAAAS_SLURM_JWT_FILE": str(where[JWT_PATH])}
    return subprocess.run(
        ["runuser", "-u", user, "--", "env", "-i", *(f"{k}={v}" for k, v in env.items()),
         "/usr/bin/python3", str(folder / "daaas-submit"), *args],
        capture_output=True, text=True, timeout=150, check=False)


def test_daaas_submit_runs_a_job_as_the_user_with_output_in_their_storage(app: Flask) -> None:
    cluster = slurm_cluster()
    alice, bob = cluster.users[0], cluster.users[1]
    headers = portal_user(app, alice)
    portal_user(app, bob)
    files = exchange(app, alice)
    config = json.loads(files[SUBMIT_CONFIG_PATH]["content"])
    home = pwd.getpwnam(alice).pw_dir
    assert config["username"] == alice and config["work_dir"] == f"/home/{alice}"
    assert config["slurmrestd_url"] == cluster.url and config["token_file"] == JWT_PATH
    assert "token" not in json.dumps({k: v for k, v in config.items() if k != "token_file"})
    folder = Path(tempfile.mkdtemp(prefix="daaas-submit-", dir="/tmp"))
    folder.chmod(0o755)
    output = Path()
    try:
        where = install(files, folder)
        name = f"submit-{folder.name}"
        done = run_as(alice, folder, where, "--name", name, "--wait", "--timeout", "120",
                      str(folder / "job.sh"))
        assert done.returncode == 0, done.stdout + done.stderr
        assert "COMPLETED" in done.stdout, done.stdout
        output = Path(done.stdout.strip().splitlines()[-1].rsplit("output: ", 1)[1])
        assert output.parent == Path(home) and output.name.startswith(name + "-")
        assert output.read_text() == f"daaas-submit job of {alice} in /home/{alice}\n"
        assert output.stat().st_uid == pwd.getpwnam(alice).pw_uid
        job_id = int(output.stem.rsplit("-", 1)[1])
        observe(app)  # the worker's look at the cluster finds the job submitted elsewhere
        listed = app.test_client().get("/api/v1/jobs", headers=headers).get_json()["jobs"]
        assert [(j["name"], j["origin"]) for j in listed if j["id"] == job_id] == [
            (name, "cluster")]

        # bob cannot read alice's token or settings, so cannot submit with them
        refused = run_as(bob, folder, where, str(folder / "job.sh"))
        assert refused.returncode == 2 and "cannot read" in refused.stderr
        # and alice's token in bob's name is refused by Slurm, not by the command
        forged = folder / "forged.json"
        forged.write_text(json.dumps({**config, "username": bob}))
        os.chown(forged, pwd.getpwnam(alice).pw_uid, -1)
        other = run_as(alice, folder, where, str(folder / "job.sh"), config=forged)
        assert other.returncode == 1 and "Submitted" not in other.stdout, other.stdout
    finally:
        shutil.rmtree(folder, ignore_errors=True)
        if output.name:
            output.unlink(missing_ok=True)
