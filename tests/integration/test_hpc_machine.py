"""The portal without a cluster or with a broken one, and analysis machines as submit hosts:
Slurm client settings in user-data with no credential, a per-user JWT for the bootstrap
exchange that really works with sbatch on the cluster."""

from __future__ import annotations

import secrets
import shutil
import socket
import subprocess
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from flask import Flask, render_template
from flask.testing import FlaskClient

from daaas.contextualisation import context_from_parts, render_user_data
from daaas.portal import create_app
from daaas.portal.auth.service import get_user
from daaas.portal.bootstrap.userdata import account, site_settings
from daaas.portal.config import DEFAULT_CATALOGUE_DIR, ConfigError, load_settings
from daaas.portal.db import unit_of_work, utcnow
from daaas.portal.hpc.machine import (
    JWT_PATH,
    SUBMIT_CONFIG_PATH,
    client_settings,
    secret_files,
)
from daaas.portal.hpc.models import HpcJob
from daaas.portal.hpc.service import recorded_jobs
from daaas.portal.machines.models import Machine
from tests.support.hpc import hpc_settings, observe, portal_user, slurm_cluster
from tests.support.web import api_token, sign_in


@pytest.fixture
def settings_override(settings_override: dict[str, Any]) -> dict[str, Any]:
    """The conftest's settings on the in-memory provider: these tests launch environments
    (CCP4, Mantid) whose software a local desktop on this host lacks, and the local provider
    refuses those launches (Provider.unavailable_reason)."""
    return {**settings_override, "provider": "memory"}


def _bearer(app: Flask, username: str = "scientist") -> dict[str, str]:
    return {"Authorization": f"Bearer {api_token(app, username)}"}


def test_no_cluster_configured_is_said_plainly(app: Flask, client: FlaskClient) -> None:
    headers = _bearer(app)
    answer = client.get("/api/v1/jobs", headers=headers)
    assert answer.status_code == 503
    assert answer.get_json()["error"] == {
        "code": "hpc_not_configured",
        "message": "This portal has no HPC cluster configured, so jobs cannot be submitted "
                   "from here. Ask the facility's support if you need one."}
    assert client.post("/api/v1/jobs", json={"script": "#!/bin/sh\n"},
                       headers=headers).status_code == 503
    offer = client.get("/api/v1/hpc", headers=headers).get_json()
    assert offer["configured"] is False and "no HPC cluster" in offer["message"]
    sign_in(client, "scientist", "scientist-demo")
    page = client.get("/jobs").get_data(as_text=True)
    assert 'id="hpc-not-configured"' in page and "no HPC cluster configured" in page
    assert "<form class=\"panel\"" not in page


def _configured(settings_override: dict[str, Any], tmp_path: Path, **extra: Any) -> Flask:
    key = tmp_path / "jwt.key"
    key.write_bytes(secrets.token_bytes(32))
    return create_app({**settings_override, "hpc_slurmrestd_url": "http://127.0.0.1:9",
                       "hpc_jwt_key_file": str(key), "hpc_cluster": "nowhere", **extra})


def test_an_unreachable_cluster_is_said_plainly(settings_override: dict[str, Any],
                                                tmp_path: Path) -> None:
    app = _configured(settings_override, tmp_path, hpc_timeout_seconds=5)
    client, headers = app.test_client(), _bearer(app)
    answer = client.post("/api/v1/jobs", json={"script": "#!/bin/sh\n"}, headers=headers)
    assert answer.status_code == 503  # a submission asks the cluster at once
    reason = "The HPC cluster 'nowhere' cannot be reached right now. Try again in a few minutes"
    assert answer.get_json()["error"]["message"].startswith(reason)
    _machine(app, "scientist")  # the worker looks at the jobs of users with a machine
    _machine(app, "neutron")
    assert observe(app) == 2  # and notes why it could not, for both
    for who in ("scientist", "neutron"):
        listed = client.get("/api/v1/jobs", headers=_bearer(app, who))
        assert listed.status_code == 200 and listed.get_json()["problem"].startswith(reason)
    sign_in(client, "scientist", "scientist-demo")
    page = client.get("/jobs")
    assert page.status_code == 200  # the page still offers the forms, and says what is wrong
    assert 'id="cluster-problem"' in page.get_data(as_text=True)
    app.extensions["daaas"].engine.dispose()


def test_a_cluster_that_does_not_answer_is_waited_for_once_per_look(
        settings_override: dict[str, Any], tmp_path: Path) -> None:
    with socket.create_server(("127.0.0.1", 0)) as silent:  # accepts, never answers
        port = silent.getsockname()[1]
        app = _configured(settings_override, tmp_path, hpc_timeout_seconds=1,
                          hpc_slurmrestd_url=f"http://127.0.0.1:{port}")
        try:
            for who in ("scientist", "neutron", "admin"):
                _machine(app, who)
            started = time.monotonic()
            assert observe(app) == 3
            assert time.monotonic() - started < 2.5  # one timeout, not one per user
            listed = app.test_client().get("/api/v1/jobs", headers=_bearer(app, "admin"))
            assert "cannot be reached right now" in listed.get_json()["problem"]
        finally:
            app.extensions["daaas"].engine.dispose()


def test_a_partition_not_offered_is_refused_before_slurm(settings_override: dict[str, Any],
                                                         tmp_path: Path) -> None:
    catalogue = tmp_path / "environments"
    shutil.copytree(Path(DEFAULT_CATALOGUE_DIR), catalogue)
    with (catalogue / "mantid.yaml").open("a", encoding="utf-8") as entry:
        entry.write("hpc_partitions: [short, long]\n")
    app = _configured(settings_override, tmp_path, hpc_partitions="debug",
                      catalogue_dir=str(catalogue))
    client, headers = app.test_client(), _bearer(app, "neutron")
    answer = client.post("/api/v1/jobs", headers=headers,
                         json={"script": "#!/bin/sh\ntrue\n", "partition": "gpu"})
    assert answer.status_code == 403
    assert answer.get_json()["error"] == {
        "code": "partition_not_allowed",
        "message": "The partition 'gpu' is not offered for jobs submitted here. Choose one "
                   "of: debug."}
    machine = client.post("/api/v1/machines", json={"environment": "mantid"},
                          headers=headers).get_json()["id"]
    offer = client.get(f"/api/v1/hpc?machine={machine}", headers=headers).get_json()
    assert offer["partitions"] == ["short", "long"]
    from_machine = client.post("/api/v1/jobs", headers=headers, json={
        "script": "#!/bin/sh\ntrue\n", "partition": "debug", "machine_id": machine})
    assert from_machine.status_code == 403
    assert from_machine.get_json()["error"]["message"] == (
        "The partition 'debug' is not offered for jobs from Mantid neutron data reduction "
        "machines. Choose one of: short, long.")
    app.extensions["daaas"].engine.dispose()


def test_bad_hpc_settings_stop_start_up_naming_the_key() -> None:
    with pytest.raises(ConfigError, match="hpc_partitions"):
        load_settings({"hpc_partitions": "debug; rm -rf"}, environ={})
    with pytest.raises(ConfigError, match="hpc_work_dir"):
        load_settings({"hpc_work_dir": "/scratch/{user}"}, environ={})


SITE = {"hpc_slurmrestd_url": "https://slurm.example.org:6820", "hpc_cluster": "scarf",
        "hpc_slurmctld_host": "slurmctld.example.org:6817"}


def test_user_data_has_the_slurm_client_settings_and_no_credential(
        app: Flask, settings_override: dict[str, Any], tmp_path: Path) -> None:
    key = tmp_path / "jwt.key"
    key.write_bytes(secrets.token_bytes(32))
    settings = load_settings({**settings_override, **SITE, "hpc_jwt_key_file": str(key)},
                             environ={})
    machine = _machine(app, "scientist")
    site = {**site_settings(settings), "hpc": client_settings(settings)}
    ctx = context_from_parts(account(machine.user), machine.id, machine.environment, site,
                             bootstrap_token="b" * 32)
    text = render_user_data(ctx).decode()
    assert "export DAAAS_HPC_CLUSTER=scarf" in text
    assert "export SLURM_CONF_SERVER=slurmctld.example.org:6817" in text
    assert "export DAAAS_SLURMRESTD_URL=https://slurm.example.org:6820" in text
    files = secret_files(settings, machine, utcnow())
    assert [(f["path"], f["mode"], f["owner"]) for f in files] == [
        (JWT_PATH, "0400", "scientist"), (SUBMIT_CONFIG_PATH, "0400", "scientist")]
    assert files[0]["content"].strip() not in files[1]["content"]  # daaas-submit's: no token
    token = files[0]["content"].strip()
    for secret in (token, token.split(".")[2], key.read_bytes().hex(), str(key)):
        assert secret not in text


def test_no_cluster_means_no_hpc_in_user_data_and_no_files(app: Flask,
                                                           settings_override: dict[str, Any]
                                                           ) -> None:
    settings = load_settings(settings_override, environ={})
    machine = _machine(app, "scientist")
    assert client_settings(settings) == {}
    assert secret_files(settings, machine, utcnow()) == []


def test_the_machine_token_ends_with_the_machine(app: Flask, settings_override: dict[str, Any],
                                                 tmp_path: Path) -> None:
    key = tmp_path / "jwt.key"
    key.write_bytes(secrets.token_bytes(32))
    settings = load_settings({**settings_override, **SITE, "hpc_jwt_key_file": str(key)},
                             environ={})
    machine = _machine(app, "scientist")
    assert secret_files(settings, machine, machine.expires_at + timedelta(seconds=1)) == []
    off = load_settings({**settings_override, **SITE, "hpc_jwt_key_file": str(key),
                         "hpc_machine_token_hours": 0}, environ={})
    assert secret_files(off, machine, utcnow()) == []
    missing = load_settings({**settings_override, **SITE, "hpc_jwt_key_file": "/nonexistent"},
                            environ={})
    assert secret_files(missing, machine, utcnow()) == []  # logged; the machine still starts


def test_the_machine_token_submits_with_sbatch_as_the_user(settings_override: dict[str, Any],
                                                           tmp_path: Path) -> None:
    cluster = slurm_cluster()
    app = create_app(hpc_settings(settings_override, cluster))
    try:
        portal_user(app, cluster.users[0])
        settings = app.extensions["daaas"].settings
        machine = _machine(app, cluster.users[0])
        token = secret_files(settings, machine, utcnow())[0]["content"].strip()
        hpc = client_settings(settings)
        marker = tmp_path.name
        env = {"PATH": "/usr/bin:/bin", "SLURM_CONF_SERVER": hpc["slurmctld_host"],
               "SLURM_JWT": token}  # what the machine's profile sets: no slurm.conf, no munge
        argv = ["runuser", "-u", cluster.users[0], "--", "env", "-i",
                *(f"{k}={v}" for k, v in env.items()), "sbatch", "--parsable",
                f"--chdir=/home/{cluster.users[0]}", f"--job-name={marker}", "--wrap=true"]
        done = subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False)
        assert done.returncode == 0, done.stderr
        job_id = int(done.stdout.strip().split(";")[0])
        observe(app)  # the worker's look at the cluster finds the job submitted elsewhere
        listed = app.test_client().get("/api/v1/jobs", headers=_bearer(app, cluster.users[0]))
        mine = [j for j in listed.get_json()["jobs"] if j["id"] == job_id]
        assert mine and mine[0]["origin"] == "cluster" and mine[0]["name"] == marker
    finally:
        app.extensions["daaas"].engine.dispose()


def _machine(app: Flask, username: str) -> Machine:
    client = app.test_client()
    created = client.post("/api/v1/machines", json={"environment": "base-desktop"},
                          headers=_bearer(app, username))
    assert created.status_code == 202, created.get_json()
    with unit_of_work(app.extensions["daaas"].session_factory) as db:
        machine = db.get(Machine, created.get_json()["id"])
        assert machine is not None
        machine.user  # noqa: B018  (loaded before the session closes)
        return machine



def test_recorded_jobs_render_for_machine_and_experiment_pages(app: Flask) -> None:
    machine = _machine(app, "scientist")
    with unit_of_work(app.extensions["daaas"].session_factory) as db:
        user = get_user(db, "scientist")
        db.add(HpcJob(user=user, cluster="scarf", slurm_job_id=4242, machine_id=machine.id,
                      experiment_id=7, name="reduce", template="list-data", state="COMPLETED",
                      work_dir="/home/scientist", output_path="/home/scientist/x.out"))
        db.flush()
        by_machine = recorded_jobs(db, user, machine_id=machine.id)
        assert [job.job_id for job in recorded_jobs(db, user, experiment_id=7)] == [4242]
        assert recorded_jobs(db, get_user(db, "neutron"), experiment_id=7) == []
    with app.test_request_context("/"):
        html = render_template("hpc/_recorded.html", hpc_jobs=by_machine)
    assert 'data-job="4242"' in html and "COMPLETED" in html and 'href="/jobs/4242"' in html
