"""No page view or API GET asks Slurm (issue 19): every GET route, visited as a Unix user of
the real test cluster and as an administrator, with the portal pointed at slurmrestd through a
proxy that counts every request (the answers are Slurm's own).

The jobs list, a job's page, its output and their API read what the worker last observed
(:mod:`daaas.portal.hpc.observer`); submitting (a POST) asks Slurm, and so does the worker's
look, which lists each watched user's jobs in one request whatever their number.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest
from flask import Flask

from daaas.portal import create_app
from daaas.portal.hpc.observer import JobObserver
from tests.support.counting_proxy import CountingProxy, counting_proxy
from tests.support.hpc import PASSWORD, hpc_settings, observe, portal_user, slurm_cluster
from tests.support.routes import fill, get_routes
from tests.support.scale import add_machines
from tests.support.web import bearer, sign_in

#: Routes not visited: not a page (files).
NOT_VISITED = {"/static/<path:filename>"}
SLEEP = "#!/bin/bash\nsleep 120\n"


@pytest.fixture
def slurm() -> Iterator[CountingProxy]:
    with counting_proxy(slurm_cluster().url) as proxy:
        yield proxy


@pytest.fixture
def app(settings_override: dict[str, Any], slurm: CountingProxy) -> Iterator[Flask]:
    settings = hpc_settings(settings_override, slurm_cluster(), provider="memory")
    application = create_app({**settings, "hpc_slurmrestd_url": slurm.url})
    yield application
    application.extensions["daaas"].engine.dispose()


def test_no_page_or_api_get_asks_slurm(app: Flask, slurm: CountingProxy) -> None:
    username = slurm_cluster().users[0]
    headers = portal_user(app, username)
    rt = app.extensions["daaas"]  # a ready machine with its events (the usage pages read them)
    [machine_id] = add_machines(rt.session_factory, rt.catalogue.environments["ccp4"],
                                [username], 1)
    client = app.test_client()
    sign_in(client, username, PASSWORD)
    jobs = [client.post("/api/v1/jobs", json={"script": SLEEP, "name": f"n{n}"},
                        headers=headers).get_json()["id"] for n in range(3)]
    try:
        assert slurm.requests, "the submissions asked Slurm"
        slurm.requests.clear()
        assert observe(app) == 1
        assert slurm.requests == ["GET /slurm/v0.0.38/jobs"]  # one listing for three jobs
        # a second worker's look, due by its own clock, is not repeated within the interval
        assert JobObserver(rt.session_factory, rt.settings).run_due() == 0
        assert len(slurm.requests) == 1
        slurm.requests.clear()

        asking: dict[str, list[str]] = {}
        visited: dict[str, list[str]] = {}
        for who, password, api in ((username, PASSWORD, headers),
                                   ("admin", "admin-demo-pass", bearer(app, "admin"))):
            browser = client if who == username else app.test_client()
            if who != username:
                sign_in(browser, who, password)
            values = {"machine_id": machine_id, "username": username, "job_id": str(jobs[0])}
            for rule in get_routes(app):
                url = fill(rule, values)
                if rule in NOT_VISITED or url is None:
                    continue
                before = len(slurm.requests)
                assert browser.get(url).status_code != 500, url
                if rule.startswith("/api/"):
                    assert app.test_client().get(url, headers=api).status_code != 500, url
                if slurm.requests[before:]:
                    asking[rule] = slurm.requests[before:]
                visited.setdefault(who, []).append(rule)
        assert asking == {}, asking
        assert {"/jobs", "/jobs/<id:job_id>", "/api/v1/jobs/<id:job_id>/output"} <= \
            set(visited[username]) and len(visited["admin"]) >= 30, visited

        # what the pages show is the worker's observation, with its age
        page = client.get("/jobs").get_data(as_text=True)
        assert all(f'data-job="{job}"' in page for job in jobs)
        assert re.search(r'As of <span id="jobs-age-seconds">\d+</span> s ago', page), page
        listed = app.test_client().get("/api/v1/jobs", headers=headers).get_json()
        assert listed["observed_at"] and {j["id"] for j in listed["jobs"]} >= set(jobs)
        assert slurm.requests == []
    finally:
        for job in jobs:
            app.test_client().delete(f"/api/v1/jobs/{job}", headers=headers)
