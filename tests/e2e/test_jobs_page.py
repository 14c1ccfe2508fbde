"""The Jobs page in a real browser (Debian Chromium) against the real test Slurm (issue 19):
job states are as of the worker's last look and say so ("As of 3 s ago"), the age counts on
while the page polls the API, and a state the worker records reaches the open page without a
reload. Screenshots go to test-output/."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from typing import Any

import pytest
from flask import Flask

from daaas.portal.hpc.slurm import SlurmRestBackend
from tests.support.browser import signed_in_page
from tests.support.hpc import (
    PASSWORD,
    SlurmCluster,
    hpc_settings,
    observe,
    portal_user,
    slurm_cluster,
)
from tests.support.paths import OUTPUT
from tests.support.web import served

pytestmark = pytest.mark.e2e


@pytest.fixture
def cluster() -> SlurmCluster:
    return slurm_cluster()


@pytest.fixture
def settings_override(settings_override: dict[str, Any], cluster: SlurmCluster) -> dict[str, Any]:
    return {**hpc_settings(settings_override, cluster), "provider": "memory"}


@pytest.fixture
def portal(app: Flask, cluster: SlurmCluster) -> Iterator[str]:
    portal_user(app, cluster.users[0])
    with served(app) as base:
        yield base


def age(page: Any) -> int:
    text = str(page.locator("#jobs-age").inner_text())
    found = re.search(r"As of (\d+) s ago", text)
    assert found, text
    return int(found.group(1))


@pytest.mark.parametrize("demo_database_url", ["sqlite"], indirect=True)
def test_job_states_show_their_age(portal: str, app: Flask, browser: Any,
                                   cluster: SlurmCluster) -> None:
    username = cluster.users[0]
    page = signed_in_page(browser, portal, username, PASSWORD)
    page.goto(portal + "/jobs")
    page.fill("#job-name", "age-shown")
    page.fill("#job-script", "#!/bin/bash\nsleep 120\n")
    page.click("#script-form button[type=submit]")
    page.wait_for_url(re.compile(r".*/jobs/\d+$"))
    job_id = int(page.url.rsplit("/", 1)[1])
    try:
        assert "Not checked on the cluster yet" in page.locator("#jobs-age").inner_text()
        observe(app)  # the worker's look
        page.goto(portal + "/jobs")
        row = page.locator(f'tr[data-job="{job_id}"]')
        assert row.count() == 1
        first = age(page)
        page.wait_for_timeout(4000)  # the page polls every 3 s and counts the age on
        assert age(page) > first
        page.screenshot(path=str(OUTPUT / "jobs-as-of.png"), full_page=True)
        SlurmRestBackend(cluster.url, "v0.0.38", cluster.name, cluster.key_file).cancel(
            username, job_id)
        deadline = time.monotonic() + 30
        while "CANCELLED" not in row.locator("td.job-state").inner_text():
            assert time.monotonic() < deadline, row.inner_text()
            observe(app)  # the worker records it; the open page shows it at its next poll
            page.wait_for_timeout(1000)
        page.goto(f"{portal}/jobs/{job_id}")
        assert page.locator("#job-state").inner_text() == "CANCELLED"
        page.screenshot(path=str(OUTPUT / "job-as-of.png"), full_page=True)
    finally:
        page.close()
