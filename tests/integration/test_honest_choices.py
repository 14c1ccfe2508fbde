"""Honest choices on the Analysis page (issue 14, points 3, 5 and 8): sizes in words, GPU sizes
and environments that cannot start here disabled with the reason (and refused by the API), the
machine limit not counting failed machines, a refused launch shown in place, and the polish
(title, favicon, Jobs tab, reasons as written, copy button).

The provider is a test double registered under its own name (never the project's code
patched); the capacity the cards show is the one the real reconciler records.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from daaas.catalogue import Environment
from daaas.portal.analysis.choices import without_hpc
from daaas.portal.config import ConfigError, load_settings
from daaas.portal.db import unit_of_work
from daaas.portal.machines import service
from daaas.portal.machines.models import Machine
from daaas.portal.machines.reconciler import Reconciler
from daaas.portal.machines.states import State
from daaas.portal.providers import PROVIDERS, Capacity
from tests.support.providers import InMemoryProvider
from tests.support.web import bearer, csrf_from, sign_in

REASON = "DAWN is not installed on this server (says a test double)."


class GpuHost(InMemoryProvider):
    """A provider with ``gpus_total`` GPUs of which ``gpus`` are free; DAWN cannot run on it."""

    name = "gpu-host"
    gpus_total: int | None = 0

    def capacity(self) -> Capacity:
        """Return the double's capacity with the total number of GPUs. Raises nothing."""
        known = super().capacity()
        return Capacity(gpus_free=known.gpus_free, sessions_free=known.sessions_free,
                        sessions_total=known.sessions_total, gpus_total=self.gpus_total)

    def unavailable_reason(self, environment: Environment) -> str | None:
        """Return a reason for DAWN only. Raises nothing."""
        return REASON if environment.name == "dawn" else None


@pytest.fixture
def settings_override(settings_override: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """The test portal on the GpuHost double."""
    with PROVIDERS.registered(GpuHost.name, GpuHost):
        yield {**settings_override, "provider": GpuHost.name}


def host(app: Flask, *, free: int | None, total: int | None) -> GpuHost:
    """Give the portal's provider ``free`` of ``total`` GPUs and let the reconciler record it."""
    rt = app.extensions["daaas"]
    provider = rt.provider
    assert isinstance(provider, GpuHost)
    provider.gpus, provider.gpus_total = free, total
    Reconciler(rt.session_factory, provider, secret_key="k", ready_timeout_seconds=600,
               settings=rt.settings).run_once()
    return provider


def card(page: str, environment: str) -> str:
    """Return the HTML of one environment's card on the Analysis page."""
    start = page.find(f'id="card-{environment}"')
    assert start >= 0, f"no card for {environment}"
    following = [at for at in (page.find('<li class="card', start), page.find("<script", start))
                 if at >= 0]
    return page[start:min(following)]


def analysis(client: FlaskClient, username: str = "scientist",
             password: str = "scientist-demo") -> str:
    sign_in(client, username, password)
    response = client.get("/analysis")
    assert response.status_code == 200
    return response.get_data(as_text=True)


def test_sizes_are_cores_memory_and_gpu_model(app: Flask, client: FlaskClient) -> None:
    host(app, free=2, total=8)
    page = analysis(client)
    ccp4 = card(page, "ccp4")
    assert "4 cores · 16 GiB (m1.large)" in ccp4
    assert "16 cores · 64 GiB (m1.2xlarge)" in ccp4
    assert "8 cores · 64 GiB · NVIDIA L40S (g1.l40s-1)" in ccp4
    tomography = card(page, "tomography-gpu")
    assert "16 cores · 128 GiB · 2 \N{MULTIPLICATION SIGN} NVIDIA A100 (g1.a100-2)" in tomography
    assert "2 of 8 NVIDIA A100 free" in tomography  # live availability, from the reconciler
    assert "disabled" not in tomography.split("<button", 1)[1].split(">", 1)[0]


def test_a_site_describes_its_own_flavours(app: Flask, settings_override: dict[str, Any]
                                           ) -> None:
    settings = load_settings({**settings_override, "flavor_sizes":
                              "m1.large: 6 cores, 22.5 GiB; g1.l40s-1: 12 cores, 96 GiB, 1 L40S"})
    assert settings.flavor_sizes.startswith("m1.large")
    with pytest.raises(ConfigError, match=r"flavor_sizes.*'m1.large: 6 cores' is not"):
        load_settings({**settings_override, "flavor_sizes": "m1.large: 6 cores"})


def test_no_gpu_disables_gpu_sizes_and_gpu_environments(app: Flask, client: FlaskClient) -> None:
    host(app, free=0, total=0)
    page = analysis(client)
    tomography = card(page, "tomography-gpu")
    button = tomography.split("<button", 1)[1].split(">", 1)[0]
    assert "disabled" in button and "This portal&#39;s machines have no GPU." in button
    assert "This portal&#39;s machines have no GPU." in tomography.split('class="launch-note', 1)[1]
    ccp4 = card(page, "ccp4")  # GPU optional: its GPU size is off, the others are not
    gpu_option = re.search(r'<option value="g1.l40s-1"[^>]*>', ccp4)
    assert gpu_option and "disabled" in gpu_option.group(0)
    assert "(not available)" in ccp4 and 'selected' in re.search(
        r'<option value="m1.xlarge"[^>]*>', ccp4).group(0)  # type: ignore[union-attr]
    assert "disabled" not in ccp4.split("<button", 1)[1].split(">", 1)[0]
    assert "GPU sizes cannot be chosen: This portal&#39;s machines have no GPU." in ccp4

    headers = bearer(app, "scientist")
    refused = client.post("/api/v1/machines", json={"environment": "tomography-gpu"},
                          headers=headers)
    assert refused.status_code == 409
    assert "no GPU" in refused.get_json()["error"]["message"]
    gpu_size = client.post("/api/v1/machines", json={"environment": "ccp4",
                                                     "flavor": "g1.l40s-1"}, headers=headers)
    assert gpu_size.status_code == 409
    assert client.post("/api/v1/machines", json={"environment": "ccp4"},
                       headers=headers).status_code == 202


def test_all_gpus_busy_says_so(app: Flask, client: FlaskClient) -> None:
    host(app, free=0, total=4)
    tomography = card(analysis(client), "tomography-gpu")
    assert "All 4 NVIDIA A100 are in use" in tomography


def test_unknown_capacity_disables_nothing(app: Flask, client: FlaskClient) -> None:
    """No worker has read the capacity yet: nothing is disabled for a GPU (the provider's own
    answer decides at launch)."""
    tomography = card(analysis(client), "tomography-gpu")
    assert "disabled" not in tomography.split("<button", 1)[1].split(">", 1)[0]


def test_environment_not_available_here(app: Flask, client: FlaskClient) -> None:
    dawn = card(analysis(client), "dawn")
    assert f"Not available on this portal: {REASON}" in dawn
    assert "disabled" in dawn.split("<button", 1)[1].split(">", 1)[0]
    refused = client.post("/api/v1/machines", json={"environment": "dawn"},
                          headers=bearer(app, "scientist"))
    assert refused.status_code == 409
    assert REASON in refused.get_json()["error"]["message"]


def test_failed_machines_do_not_count_against_the_limit(app: Flask, client: FlaskClient) -> None:
    rt = app.extensions["daaas"]
    headers = bearer(app, "scientist")
    launched = [client.post("/api/v1/machines", json={"environment": "base-desktop"},
                            headers=headers).get_json()["id"]
                for _ in range(rt.settings.max_machines_per_user)]
    over = client.post("/api/v1/machines", json={"environment": "base-desktop"},
                       headers=headers)
    assert over.status_code == 409 and "Delete one" in over.get_json()["error"]["message"]
    page = analysis(client)
    assert re.search(r'<p id="limit-reason" class="notice" role="status" >You already have 3 '
                     r"machines", page)
    assert "disabled" in card(page, "base-desktop").split("<button", 1)[1].split(">", 1)[0]

    with unit_of_work(rt.session_factory) as db:  # one fails at launch, as the reconciler does
        machine = db.get(Machine, launched[0])
        assert machine is not None
        service.transition(db, machine, State.ERROR, "This environment needs a GPU; this "
                           "server has none.")
    again = client.post("/api/v1/machines", json={"environment": "base-desktop"},
                        headers=headers)
    assert again.status_code == 202


def test_a_refused_launch_is_shown_next_to_its_button(app: Flask, client: FlaskClient) -> None:
    rt = app.extensions["daaas"]
    headers = bearer(app, "scientist")
    for _ in range(rt.settings.max_machines_per_user):
        client.post("/api/v1/machines", json={"environment": "base-desktop"}, headers=headers)
    sign_in(client, "scientist", "scientist-demo")
    response = client.post("/machines", data={
        "csrf_token": csrf_from(client, "/analysis"), "environment": "ccp4",
        "flavor": "m1.2xlarge"})
    assert response.status_code == 409
    page = response.get_data(as_text=True)
    assert "<h1>Analysis environments</h1>" in page  # the page, not an error page
    ccp4 = card(page, "ccp4")
    assert re.search(r'class="launch-note error"[^>]*role="alert"[^>]*>You already have 3 '
                     r"machines, the most this site allows", ccp4)
    assert re.search(r'<option value="m1.2xlarge" selected', ccp4)  # the choice is kept
    assert "launch-note error" not in card(page, "base-desktop")
    as_json = client.post("/machines", data={"csrf_token": csrf_from(client, "/analysis"),
                                             "environment": "ccp4"},
                          headers={"Accept": "application/json"})
    assert as_json.status_code == 409 and "Delete one" in as_json.get_json()["error"]["message"]


def test_polish_title_favicon_jobs_tab(app: Flask, client: FlaskClient,
                                       settings_override: dict[str, Any]) -> None:
    page = analysis(client)
    title = re.search(r"<title>(.*?)</title>", page, re.S)
    assert title and title.group(1) == "Analysis · Data Analysis as a Service"
    icon = client.get("/favicon.ico")
    assert icon.status_code == 200 and icon.data[:4] == b"\x00\x00\x01\x00"  # an ICO file
    assert client.get("/static/favicon.svg").status_code == 200
    assert ">Jobs</a>" not in page  # no cluster configured
    assert "HPC" not in card(page, "base-desktop") and "HPC" not in card(page, "jupyter-python")

    from daaas.portal.app import create_app

    with_cluster = create_app({**settings_override,
                               "hpc_slurmrestd_url": "http://127.0.0.1:9/slurm"})
    other = with_cluster.test_client()
    page = analysis(other)
    assert ">Jobs</a>" in page and "sent to the HPC cluster" in card(page, "base-desktop")
    with_cluster.extensions["daaas"].engine.dispose()


def test_without_hpc_keeps_the_other_sentences() -> None:
    text = "A desktop. Heavy work can be sent to the HPC cluster from it. Your storage is there."
    assert without_hpc(text) == "A desktop. Your storage is there."


def test_admin_list_shows_reasons_as_written(app: Flask, client: FlaskClient) -> None:
    rt = app.extensions["daaas"]
    machine_id = client.post("/api/v1/machines", json={"environment": "base-desktop"},
                             headers=bearer(app, "scientist")).get_json()["id"]
    with unit_of_work(rt.session_factory) as db:
        machine = db.get(Machine, machine_id)
        assert machine is not None
        service.transition(db, machine, State.ERROR, "This environment needs a GPU.")
    page = analysis(client, "admin", "admin-demo-pass")
    assert "All machines" in page
    admin = client.get("/admin/machines").get_data(as_text=True)
    row = re.search(rf'<tr data-machine="{machine_id}">.*?</tr>', admin, re.S)
    assert row and '<span class="reason">This environment needs a GPU.</span>' in row.group(0)
    assert re.search(r'<span class="state state-error">error</span>', row.group(0))


def test_new_app_password_has_a_copy_button(app: Flask, client: FlaskClient) -> None:
    sign_in(client, "scientist", "scientist-demo")
    page = client.post("/my-data/-/app-passwords", data={
        "csrf_token": csrf_from(client, "/my-data/"), "name": "laptop"},
        follow_redirects=True).get_data(as_text=True)
    assert 'id="new-app-password-value"' in page
    assert 'data-copy="new-app-password-value"' in page and "copy.js" in page


def test_capacity_file_is_written_by_the_reconciler(app: Flask) -> None:
    host(app, free=3, total=None)
    recorded = Path(app.extensions["daaas"].settings.var_dir) / "capacity.json"
    assert '"gpus_free": 3' in recorded.read_text()


def test_a_cloud_tells_its_gpus_in_all() -> None:
    """OpenStack: the total comes from Placement (the test cloud's host has 2 VGPU), and is
    unknown where Placement is closed to the portal's credential."""
    from tests.openstack import support

    capacity = support.new_provider().capacity()
    assert capacity.gpus_total == 2 and capacity.gpus_free is not None
    assert 0 <= capacity.gpus_free <= 2
    closed = support.new_provider(f"{support.cloud_name()}-quota", gpu_static_free=3)
    assert (closed.capacity().gpus_free, closed.capacity().gpus_total) == (3, None)
