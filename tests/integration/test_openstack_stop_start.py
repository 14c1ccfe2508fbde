"""Stop (shelve) and start (unshelve) against REAL Keystone, Glance, Placement and Nova.

``.ci/openstack.sh`` runs Nova with a fake virt driver reporting 2 VGPU; Nova's default
``shelved_offload_time = 0`` offloads a shelved server at once, which releases its Placement
allocation (the host's cores, memory and VGPU). Skipped locally (with the reason) when
DAAAS_TEST_OPENSTACK_CLOUD is unset.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from flask import Flask

from daaas.portal.auth.service import get_user
from daaas.portal.config import resolve_secret_key
from daaas.portal.db import unit_of_work
from daaas.portal.machines import service
from daaas.portal.machines.secrets import bootstrap_token
from daaas.portal.providers import CapacityExhausted, LaunchSpec, ProviderState
from daaas.portal.providers.openstack import OpenStackProvider
from daaas.portal.providers.openstack.cloud import NO_GPU
from tests.integration.context_support import machine_row
from tests.openstack import support
from tests.openstack.support import CPU_FLAVOR, GPU_FLAVOR, USER_DATA, run_until, worker
from tests.support.machines import launch


@pytest.fixture
def provider() -> Iterator[OpenStackProvider]:
    yield from support.provider_fixture()


def spec(flavor: str = CPU_FLAVOR) -> LaunchSpec:
    return LaunchSpec(uuid.uuid4().hex, "alice", 20000, 20000, support.environment(flavor),
                      "Pw4-vnc!", user_data=USER_DATA)


def server_of(machine_id: str) -> Any:
    servers = support.servers_tagged(f"daaas-machine-{machine_id}")
    assert len(servers) == 1, servers
    return servers[0]


def allocated(server_id: str) -> dict[str, int]:
    """The resources Placement holds for the server (summed over providers), as the admin sees."""
    body = support.admin_connection().placement.get(f"/allocations/{server_id}").json()
    totals: dict[str, int] = {}
    for allocation in body.get("allocations", {}).values():
        for resource, amount in allocation["resources"].items():
            totals[resource] = totals.get(resource, 0) + amount
    return totals


def running(provider: OpenStackProvider, launch_spec: LaunchSpec) -> Any:
    provider.launch(launch_spec)
    support.wait_state(provider, launch_spec.machine_id, ProviderState.RUNNING)
    return server_of(launch_spec.machine_id)


def test_stop_shelves_and_frees_the_vgpu_and_start_makes_it_active(
        provider: OpenStackProvider) -> None:
    support.wait_for(lambda: (provider.capacity().gpus_free or 0) >= 1, timeout=60)
    gpu = spec(GPU_FLAVOR)
    server = running(provider, gpu)
    assert allocated(server.id).get("VGPU") == 1

    provider.stop(gpu.machine_id)
    status = support.wait_state(provider, gpu.machine_id, ProviderState.STOPPED)
    assert "shelved" in status.reason
    assert server_of(gpu.machine_id).status in ("SHELVED", "SHELVED_OFFLOADED")
    support.wait_for(lambda: server_of(gpu.machine_id).status == "SHELVED_OFFLOADED")
    support.wait_for(lambda: allocated(server.id) == {}, timeout=30)  # VGPU, cores, RAM freed
    provider.stop(gpu.machine_id)  # already shelved: success
    assert gpu.machine_id in provider.list_machine_ids()  # kept

    provider.start(gpu)
    provider.start(gpu)  # unshelving already: success
    support.wait_state(provider, gpu.machine_id, ProviderState.RUNNING)
    assert server_of(gpu.machine_id).status == "ACTIVE"
    assert server_of(gpu.machine_id).id == server.id  # the same server, not a new one
    assert allocated(server.id).get("VGPU") == 1


def test_start_without_a_free_gpu_refuses_and_the_server_stays_shelved(
        provider: OpenStackProvider) -> None:
    support.wait_for(lambda: (provider.capacity().gpus_free or 0) >= 1, timeout=60)
    first = spec(GPU_FLAVOR)
    running(provider, first)
    provider.stop(first.machine_id)
    support.wait_for(lambda: server_of(first.machine_id).status == "SHELVED_OFFLOADED")
    support.wait_for(lambda: provider.capacity().gpus_free == 2, timeout=60)
    for _ in range(2):  # take every VGPU
        running(provider, spec(GPU_FLAVOR))
    assert provider.capacity().gpus_free == 0
    with pytest.raises(CapacityExhausted) as refused:
        provider.start(first)
    assert refused.value.user_message == NO_GPU
    assert server_of(first.machine_id).status == "SHELVED_OFFLOADED"


def test_a_shut_off_server_is_stopped_and_start_powers_it_on(
        provider: OpenStackProvider) -> None:
    launch_spec = spec()
    server = running(provider, launch_spec)
    support.admin_connection().compute.stop_server(server.id)
    support.wait_state(provider, launch_spec.machine_id, ProviderState.STOPPED)
    provider.start(launch_spec)
    support.wait_state(provider, launch_spec.machine_id, ProviderState.RUNNING)
    assert server_of(launch_spec.machine_id).status == "ACTIVE"


def test_paused_stays_an_error(provider: OpenStackProvider) -> None:
    launch_spec = spec()
    server = running(provider, launch_spec)
    support.admin_connection().compute.pause_server(server.id)
    status = support.wait_state(provider, launch_spec.machine_id, ProviderState.ERROR)
    assert "paused" in status.reason


def report_ready(app: Flask, machine_id: str) -> None:
    """What the VM's agent does at first boot: trade the token, then report ready."""
    client = app.test_client()
    token = bootstrap_token(resolve_secret_key(app.extensions["daaas"].settings), machine_id)
    answer = client.post(f"/api/v1/context/{machine_id}/bootstrap", json={"token": token})
    assert answer.status_code == 200, answer.get_json()
    reported = client.post(f"/api/v1/context/{machine_id}/status", json={"status": "ready"},
                           headers={"Authorization": f"Bearer {answer.get_json()['report_token']}"})
    assert reported.status_code == 202


def ask(app: Flask, provider: OpenStackProvider, action: str, machine_id: str) -> None:
    with unit_of_work(app.extensions["daaas"].session_factory) as db:
        getattr(service, f"request_{action}")(db, get_user(db, "scientist"), machine_id,
                                              provider)


def test_the_portal_stops_and_starts_a_cloud_machine_and_sees_one_shelved_behind_its_back(
        app: Flask, provider: OpenStackProvider) -> None:
    reconciler = worker(app, provider)
    machine_id = launch(app)
    run_until(app, reconciler, machine_id, "contextualising")
    report_ready(app, machine_id)
    run_until(app, reconciler, machine_id, "ready")

    ask(app, provider, "stop", machine_id)
    run_until(app, reconciler, machine_id, "stopped")
    assert server_of(machine_id).status in ("SHELVED", "SHELVED_OFFLOADED")
    ask(app, provider, "start", machine_id)
    run_until(app, reconciler, machine_id, "ready")  # it reported ready on its first boot
    assert server_of(machine_id).status == "ACTIVE"
    assert machine_row(app, machine_id).events[-1].message == \
        "running again; it was set up before it was stopped"

    support.admin_connection().compute.shelve_server(server_of(machine_id).id)
    support.wait_for(lambda: server_of(machine_id).status == "SHELVED_OFFLOADED")
    reconciler.run_once()  # one cycle
    row = machine_row(app, machine_id)
    assert row.state == "stopped"
    assert "stopped outside the portal" in row.events[-1].message
    assert "shelved_offloaded" in row.events[-1].message
