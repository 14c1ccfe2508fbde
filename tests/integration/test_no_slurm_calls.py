"""Which page views and API GETs ask Slurm (issue 19): every GET route, visited as a Unix user
of the real test cluster, with the portal pointed at slurmrestd through a proxy that counts
every request (the answers are Slurm's own).

The goal is none. :data:`STILL_ASKS_SLURM` names the routes that still do (the jobs list and
one job: Slurm is asked for their live states on each view), so this test fails the day
another page starts to, and when one of them stops (then take it out of the set).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from flask import Flask

from daaas.portal import create_app
from tests.support.access import make_machine
from tests.support.counting_proxy import CountingProxy, counting_proxy
from tests.support.hpc import PASSWORD, hpc_settings, portal_user, slurm_cluster
from tests.support.routes import fill, get_routes
from tests.support.web import sign_in

#: Routes not visited: not a page (files).
NOT_VISITED = {"/static/<path:filename>"}

#: Routes that still ask Slurm on each view (not yet read from what a worker observed).
STILL_ASKS_SLURM = {"/jobs", "/api/v1/jobs", "/jobs/<id:job_id>", "/api/v1/jobs/<id:job_id>",
                    "/api/v1/jobs/<id:job_id>/output"}


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


def test_which_page_or_api_get_asks_slurm(app: Flask, slurm: CountingProxy) -> None:
    username = slurm_cluster().users[0]
    headers = portal_user(app, username)
    machine_id = make_machine(app, username)
    client = app.test_client()
    sign_in(client, username, PASSWORD)
    values = {"machine_id": machine_id, "username": username, "job_id": "1"}
    asking: dict[str, list[str]] = {}
    visited = []
    for rule in get_routes(app):
        url = fill(rule, values)
        if rule in NOT_VISITED or url is None:
            continue
        before = len(slurm.requests)
        assert client.get(url).status_code != 500, url
        if rule.startswith("/api/"):
            assert app.test_client().get(url, headers=headers).status_code != 500, url
        if slurm.requests[before:]:
            asking[rule] = slurm.requests[before:]
        visited.append(rule)
    assert "/jobs" in visited and "/api/v1/hpc" in visited and len(visited) >= 30, visited
    assert set(asking) == STILL_ASKS_SLURM, asking
