"""HPC jobs against a real single-node Slurm through slurmrestd with JWT authentication.

Each test submits as a Unix user of the test cluster through the portal's API or pages, with
a token the portal minted for that user; Slurm runs the job as that user.
"""

from __future__ import annotations

import os
import secrets
import subprocess
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from daaas.portal import create_app
from daaas.portal.auth.service import create_token, create_user, get_user
from daaas.portal.config import ConfigError, Settings, load_settings
from daaas.portal.db import unit_of_work, utcnow
from daaas.portal.experiments.importer import import_experiments, parse
from daaas.portal.hpc import service
from daaas.portal.hpc.backend import HPC_BACKENDS, HpcBackend, JobInfo, JobSpec
from daaas.portal.hpc.errors import HpcNotConfigured, HpcTokenRejected
from daaas.portal.hpc.slurm import SlurmRestBackend
from tests.support.access import make_machine
from tests.support.hpc import (
    PASSWORD,
    SlurmCluster,
    hpc_settings,
    observe,
    portal_user,
    slurm_cluster,
    wait_for,
)
from tests.support.web import api_token, assert_matches, csrf_from, sign_in

HELLO = "#!/bin/bash\necho \"hello from $(id -un) in job $SLURM_JOB_ID\"\n"


@pytest.fixture
def cluster() -> SlurmCluster:
    """The running test cluster (skipped locally, failed in CI, when missing)."""
    return slurm_cluster()


@pytest.fixture
def settings_override(settings_override: dict[str, Any], cluster: SlurmCluster) -> dict[str, Any]:
    """The conftest's settings, pointed at the test cluster, on the in-memory provider (a Mantid
    machine's software is not on this host, and the local provider refuses it)."""
    return {**hpc_settings(settings_override, cluster), "provider": "memory"}


@pytest.fixture
def alice(app: Flask, cluster: SlurmCluster) -> dict[str, str]:
    """Bearer headers of the first Unix user of the cluster."""
    return portal_user(app, cluster.users[0])


def test_submit_runs_to_completion_and_output_is_read(client: FlaskClient,
                                                      alice: dict[str, str],
                                                      cluster: SlurmCluster) -> None:
    created = client.post("/api/v1/jobs", json={"script": HELLO, "name": "hello"}, headers=alice)
    assert created.status_code == 201, created.get_json()
    job = created.get_json()
    assert_matches(job, "Job")
    assert job["cluster"] == cluster.name and job["origin"] == "portal"
    assert job["output_path"] == f"/home/{cluster.users[0]}/daaas-job-{job['id']}.out"
    done = wait_for(client, alice, job["id"], {"COMPLETED"})
    assert done["exit_code"] == 0 and done["final"] and done["ended_at"]
    output = client.get(f"/api/v1/jobs/{job['id']}/output", headers=alice).get_json()
    assert_matches(output, "JobOutput")
    assert output["available"], output["message"]
    assert output["text"] == f"hello from {cluster.users[0]} in job {job['id']}\n"
    listing = client.get("/api/v1/jobs", headers=alice).get_json()
    assert_matches(listing, "JobList")
    assert job["id"] in [j["id"] for j in listing["jobs"]]


def _experiment_of(app: Flask, client: FlaskClient, headers: dict[str, str],
                   user: str) -> tuple[int, str]:
    """Import an experiment of ``user`` whose two datasets lie in the user's home; return its
    id and data folder."""
    visit = f"RB{secrets.randbelow(10**7):07d}-1"
    folder = Path(f"/home/{user}/{visit}")
    for run in ("run_1", "run_2"):
        (folder / run).mkdir(parents=True, exist_ok=True)
    with unit_of_work(app.extensions["daaas"].session_factory) as db:
        import_experiments(db, parse({
            "facilities": [{"name": "ISIS", "instruments": [{"name": "WISH"}]}],
            "users": [{"name": user}],
            "investigations": [{"facility": "ISIS", "name": visit[:-2], "visit_id": visit,
                                "title": "HPC test beamtime", "instruments": ["WISH"],
                                "users": [{"name": user, "role": "principal_experimenter"}],
                                "datasets": [{"name": run, "location": str(folder / run)}
                                             for run in ("run_1", "run_2")]}]}, "test"))
    found = client.get("/api/v1/experiments", headers=headers).get_json()["experiments"]
    return next(int(e["id"]) for e in found if e["visit_id"] == visit), str(folder)


def test_template_job_from_a_machine_bound_to_an_experiment(app: Flask, client: FlaskClient,
                                                            alice: dict[str, str],
                                                            cluster: SlurmCluster) -> None:
    user = cluster.users[0]
    experiment, data = _experiment_of(app, client, alice, user)
    machine = client.post("/api/v1/machines", json={"environment": "mantid",
                                                    "experiment": experiment}, headers=alice)
    assert machine.status_code == 202, machine.get_json()
    machine_id = machine.get_json()["id"]
    offer = client.get(f"/api/v1/hpc?machine={machine_id}", headers=alice).get_json()
    assert_matches(offer, "HpcOffer")
    assert offer["machine"]["experiment_data_path"] == data
    templates = {t["name"]: t for t in offer["templates"]}
    assert {"list-data", "mantid-reduction"} <= set(templates)
    assert "xia2-reprocess" not in templates  # offered on CCP4 machines only
    assert templates["list-data"]["parameters"][0]["default"] == data
    created = client.post("/api/v1/jobs", headers=alice, json={
        "template": "list-data", "parameters": {"folder": data}, "machine_id": machine_id})
    assert created.status_code == 201, created.get_json()
    job = created.get_json()
    assert (job["machine_id"], job["experiment_id"], job["template"]) == (
        machine_id, experiment, "list-data")
    wait_for(client, alice, job["id"], {"COMPLETED"})
    text = client.get(f"/api/v1/jobs/{job['id']}/output", headers=alice).get_json()["text"]
    assert text.startswith(f"Listing of {data} for {user} on ")
    assert "run_1" in text and "run_2" in text
    from_machine = client.get(f"/api/v1/jobs?machine={machine_id}", headers=alice).get_json()
    assert [j["id"] for j in from_machine["jobs"]] == [job["id"]]
    of_experiment = client.get(f"/api/v1/jobs?experiment={experiment}", headers=alice)
    assert [j["id"] for j in of_experiment.get_json()["jobs"]] == [job["id"]]
    with unit_of_work(app.extensions["daaas"].session_factory) as db:
        owner = get_user(db, user)
        recorded = service.recorded_jobs(db, owner, experiment_id=experiment)
        assert [(j.job_id, j.state) for j in recorded] == [(job["id"], "COMPLETED")]
    for page in (f"/machines/{machine_id}", f"/experiments/{experiment}"):
        html = client.get(page, headers=alice).get_data(as_text=True)
        assert f'data-job="{job["id"]}"' in html, page
    bad = client.post("/api/v1/jobs", headers=alice, json={
        "template": "list-data", "parameters": {"folder": "relative/path"}})
    assert bad.status_code == 400 and "Folder" in bad.get_json()["error"]["message"]


def test_cancel_a_running_job(client: FlaskClient, alice: dict[str, str]) -> None:
    job = client.post("/api/v1/jobs", json={"script": "#!/bin/bash\nsleep 300\n"},
                      headers=alice).get_json()
    try:
        wait_for(client, alice, job["id"], {"RUNNING"}, timeout=30)
        cancelled = client.delete(f"/api/v1/jobs/{job['id']}", headers=alice)
        assert cancelled.status_code == 202, cancelled.get_json()
        assert wait_for(client, alice, job["id"], {"CANCELLED"}, timeout=30)["final"]
        again = client.delete(f"/api/v1/jobs/{job['id']}", headers=alice)
        assert again.status_code == 409 and "already ended" in again.get_json()["error"]["message"]
    finally:
        client.delete(f"/api/v1/jobs/{job['id']}", headers=alice)


def test_a_job_of_one_user_is_invisible_to_another(app: Flask, client: FlaskClient,
                                                   alice: dict[str, str],
                                                   cluster: SlurmCluster) -> None:
    bob = portal_user(app, cluster.users[1])
    job = client.post("/api/v1/jobs", json={"script": "#!/bin/bash\nsleep 300\n"},
                      headers=alice).get_json()
    try:
        assert job["id"] not in [j["id"] for j in
                                 client.get("/api/v1/jobs", headers=bob).get_json()["jobs"]]
        for method in ("get", "delete"):
            answer = getattr(client, method)(f"/api/v1/jobs/{job['id']}", headers=bob)
            assert answer.status_code == 404, answer.get_json()
        assert client.get(f"/api/v1/jobs/{job['id']}/output", headers=bob).status_code == 404
        backend = SlurmRestBackend(cluster.url, "v0.0.38", cluster.name, cluster.key_file)
        assert backend.job(cluster.users[1], job["id"]) is None  # Slurm itself hides it
        assert backend.job(cluster.users[0], job["id"]) is not None
        assert wait_for(client, alice, job["id"], {"PENDING", "RUNNING"})["id"] == job["id"]
    finally:
        client.delete(f"/api/v1/jobs/{job['id']}", headers=alice)


def test_unknown_partition_shows_slurms_reason(client: FlaskClient, alice: dict[str, str],
                                               cluster: SlurmCluster) -> None:
    answer = client.post("/api/v1/jobs", json={"script": HELLO, "partition": "nosuch"},
                         headers=alice)
    assert answer.status_code == 422
    error = answer.get_json()["error"]
    assert error["code"] == "job_rejected"
    assert f"Slurm on '{cluster.name}' rejected the job: Invalid partition name specified" \
        in error["message"]


def test_the_form_keeps_the_script_and_shows_slurms_reason(client: FlaskClient,
                                                           alice: dict[str, str],
                                                           cluster: SlurmCluster) -> None:
    sign_in(client, cluster.users[0], PASSWORD)
    token = csrf_from(client, "/jobs")
    answer = client.post("/jobs", data={"csrf_token": token, "script": HELLO + "# mine\n",
                                        "partition": "nosuch"})
    page = answer.get_data(as_text=True)
    assert answer.status_code == 422
    assert "Invalid partition name specified" in page and "# mine" in page
    submitted = client.post("/jobs", data={"csrf_token": token, "script": HELLO})
    assert submitted.status_code == 303
    job_id = int(submitted.headers["Location"].rsplit("/", 1)[1])
    wait_for(client, alice, job_id, {"COMPLETED"})
    shown = client.get(f"/jobs/{job_id}").get_data(as_text=True)
    assert f"hello from {cluster.users[0]} in job {job_id}" in shown
    assert f'data-job="{job_id}"' in client.get("/jobs").get_data(as_text=True)


def test_a_wrong_key_or_an_expired_token_is_refused_plainly(
        settings_override: dict[str, Any], cluster: SlurmCluster, tmp_path: Path) -> None:
    expired = SlurmRestBackend(cluster.url, "v0.0.38", cluster.name, cluster.key_file,
                               clock=lambda: utcnow() - timedelta(hours=1))
    with pytest.raises(HpcTokenRejected) as caught:
        expired.jobs(cluster.users[0])
    assert "expired" in caught.value.user_message
    home = f"/home/{cluster.users[0]}"
    with pytest.raises(HpcTokenRejected):
        expired.submit(cluster.users[0], JobSpec("never-runs", HELLO, home, f"{home}/x-%j.out"))
    wrong = tmp_path / "other.key"
    wrong.write_bytes(secrets.token_bytes(32))
    app = create_app({**settings_override, "hpc_jwt_key_file": str(wrong)})
    try:
        headers = portal_user(app, cluster.users[0])
        answer = app.test_client().post("/api/v1/jobs", json={"script": HELLO},
                                        headers=headers)
        assert answer.status_code == 502
        error = answer.get_json()["error"]
        assert error["code"] == "hpc_token_rejected"
        assert f"The HPC cluster '{cluster.name}' did not accept the sign-in token" \
            in error["message"]
        make_machine(app, cluster.users[0])  # watched by the worker, which notes the refusal
        assert observe(app) == 1
        listed = app.test_client().get("/api/v1/jobs", headers=headers).get_json()
        assert listed["observed_at"] is None and \
            "did not accept the sign-in token" in listed["problem"], listed
    finally:
        app.extensions["daaas"].engine.dispose()


def test_a_user_the_cluster_does_not_know_is_told_and_leaves_no_job(
        app: Flask, client: FlaskClient) -> None:
    headers = {"Authorization": f"Bearer {api_token(app, 'scientist')}"}  # no such Unix account
    answer = client.post("/api/v1/jobs", json={"script": HELLO}, headers=headers)
    assert answer.status_code == 422
    assert answer.get_json()["error"]["message"].startswith(
        f"The HPC cluster '{app.extensions['daaas'].settings.hpc_cluster}' has no account "
        "'scientist' with your user id (20000)")
    assert client.get("/api/v1/jobs", headers=headers).get_json()["jobs"] == []
    conf = os.environ.get("DAAAS_TEST_SLURM_CONF")
    if conf:  # as root on the test cluster: nothing left queued for Slurm's nobody (uid 99)
        queued = subprocess.run(["squeue", "-h", "-t", "PD,R,CF", "-o", "%i %U"],
                                env={**os.environ, "SLURM_CONF": conf}, capture_output=True,
                                text=True, timeout=30, check=True)
        assert [line for line in queued.stdout.splitlines() if line.split()[1] == "99"] == []


def test_a_cluster_account_with_another_uid_is_not_used(app: Flask, client: FlaskClient,
                                                      cluster: SlurmCluster) -> None:
    with unit_of_work(app.extensions["daaas"].session_factory) as db:
        impostor = create_user(db, app.extensions["daaas"].settings, cluster.users[1], None)
        token = create_token(db, impostor, "t", 1)[1]  # same name as the Unix user, other uid
    headers = {"Authorization": f"Bearer {token}"}
    marker = Path(f"/home/{cluster.users[1]}/impostor-{secrets.token_hex(4)}")
    answer = client.post("/api/v1/jobs", json={"script": f"#!/bin/bash\ntouch {marker}\n"},
                         headers=headers)
    assert answer.status_code == 422
    assert f"has no account '{cluster.users[1]}' with your user id" in \
        answer.get_json()["error"]["message"]
    assert client.get("/api/v1/jobs", headers=headers).get_json()["jobs"] == []
    backend = SlurmRestBackend(cluster.url, "v0.0.38", cluster.name, cluster.key_file)
    assert all(job.final for job in backend.jobs(cluster.users[1]))  # taken back at once
    time.sleep(2)  # a job that had started would have touched the marker within a second
    assert not marker.exists()  # it was submitted on hold and cancelled before it could run


class ListingCluster(HpcBackend):
    """A test double for a site's own batch system: lists one running job for anyone."""

    def __init__(self, cluster: str) -> None:
        self.cluster = cluster

    @classmethod
    def from_settings(cls, settings: Settings) -> ListingCluster:
        return cls(f"{settings.hpc_cluster}-double")

    def submit(self, username: str, spec: JobSpec) -> int:
        raise AssertionError("not submitted in this test")

    def jobs(self, username: str) -> list[JobInfo]:
        return [JobInfo(job_id=4242, name="from-a-terminal", user=username, uid=None,
                        state="RUNNING", reason="", partition="debug", exit_code=None,
                        work_dir="/tmp", output_path="/tmp/out", submitted_at=utcnow(),
                        started_at=utcnow(), ended_at=None)]

    def job(self, username: str, job_id: int) -> JobInfo | None:
        return next((j for j in self.jobs(username) if j.job_id == job_id), None)

    def release(self, username: str, job_id: int) -> None:
        raise AssertionError("not released in this test")

    def cancel(self, username: str, job_id: int) -> None:
        raise AssertionError("not cancelled in this test")


def test_hpc_backend_setting_builds_slurm_or_a_registered_backend(
        settings_override: dict[str, Any], cluster: SlurmCluster) -> None:
    slurm = HPC_BACKENDS.build(load_settings(settings_override, environ={}))
    assert isinstance(slurm, SlurmRestBackend) and slurm.cluster == cluster.name
    assert slurm.url == cluster.url and slurm.key_file == cluster.key_file
    with pytest.raises(HpcNotConfigured):
        HPC_BACKENDS.build(load_settings({**settings_override, "hpc_slurmrestd_url": ""},
                                         environ={}))
    with pytest.raises(ConfigError, match=r"'hpc_backend'.*choose one of: slurm"):
        create_app({**settings_override, "hpc_backend": "pbs"})
    with HPC_BACKENDS.registered("listing", ListingCluster):
        app = create_app({**settings_override, "hpc_backend": "listing"})
        try:
            headers = portal_user(app, cluster.users[0])
            make_machine(app, cluster.users[0])  # its owner's jobs are observed
            assert observe(app) == 1
            body = app.test_client().get("/api/v1/jobs", headers=headers).get_json()
        finally:
            app.extensions["daaas"].engine.dispose()
    [job] = body["jobs"]
    assert (job["id"], job["cluster"], job["origin"]) == (4242, f"{cluster.name}-double",
                                                          "cluster"), body
