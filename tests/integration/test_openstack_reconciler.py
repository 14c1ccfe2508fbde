"""The portal's real code path (request_launch → reconciler → OpenStackProvider) on REAL Nova.

The shipped catalogue's entries boot: ``.ci/openstack.sh`` creates their flavors (tiny) and
images. Skipped locally (with the reason) when DAAAS_TEST_OPENSTACK_CLOUD is unset.
"""

from __future__ import annotations

import base64
import gzip
from collections.abc import Iterator

import pytest
from flask import Flask

from daaas.portal.auth.service import get_user
from daaas.portal.config import resolve_secret_key
from daaas.portal.db import unit_of_work
from daaas.portal.machines import service
from daaas.portal.machines.reconciler import GONE_REASON
from daaas.portal.machines.secrets import bootstrap_token
from daaas.portal.providers import LaunchSpec
from daaas.portal.providers.openstack import OpenStackProvider
from tests.integration.context_support import machine_row
from tests.openstack import support
from tests.openstack.support import run_until, worker
from tests.support.machines import launch


@pytest.fixture
def provider() -> Iterator[OpenStackProvider]:
    yield from support.provider_fixture()


def nova_user_data(machine_id: str) -> bytes:
    conn = support.admin_connection()
    server = next(s for s in support.servers_tagged(f"daaas-machine-{machine_id}"))
    body = conn.compute.get(f"/servers/{server.id}", microversion="2.3").json()["server"]
    raw = base64.b64decode(body["OS-EXT-SRV-ATTR:user_data"])
    return gzip.decompress(raw) if raw[:2] == b"\x1f\x8b" else raw


def test_launch_reaches_contextualising_and_delete_removes_the_server(
        app: Flask, provider: OpenStackProvider) -> None:
    reconciler = worker(app, provider)
    cpu, gpu = launch(app, "scientist", "ccp4"), launch(app, "scientist", "tomography-gpu")
    for machine_id in (cpu, gpu):
        run_until(app, reconciler, machine_id, "contextualising")
        user_data = nova_user_data(machine_id)
        key = resolve_secret_key(app.extensions["daaas"].settings)
        assert bootstrap_token(key, machine_id).encode() in user_data
        assert machine_id.encode() in user_data
    assert {s.flavor["original_name"] for s in support.servers_tagged(provider.server_tag)} \
        == {"m1.xlarge", "g1.a100-1"}
    rt = app.extensions["daaas"]
    with unit_of_work(rt.session_factory) as db:
        service.request_delete(db, get_user(db, "scientist"), cpu)
    run_until(app, reconciler, cpu, "deleted")
    assert [s.metadata["daaas_machine_id"] for s in support.servers_tagged(provider.server_tag)] \
        == [gpu]


def test_server_deleted_behind_the_portal_is_noticed_in_one_cycle(
        app: Flask, provider: OpenStackProvider) -> None:
    reconciler = worker(app, provider)
    machine_id = launch(app)
    run_until(app, reconciler, machine_id, "contextualising")
    support.remove_tagged(f"daaas-machine-{machine_id}")
    reconciler.run_once()
    row = machine_row(app, machine_id)
    assert row.state == "error"
    assert row.events[-1].message == GONE_REASON


def test_worker_killed_after_create_finds_its_server(app: Flask,
                                                     provider: OpenStackProvider) -> None:
    machine_id = launch(app)
    environment = machine_row(app, machine_id).environment
    # the create call of a worker that died before recording it
    support.new_provider(server_tag=provider.server_tag).launch(LaunchSpec(
        machine_id, "scientist", 20000, 20000, environment, "x", user_data=support.USER_DATA))
    run_until(app, worker(app, provider), machine_id, "contextualising")
    assert len(support.servers_tagged(f"daaas-machine-{machine_id}")) == 1


def test_orphan_server_is_removed_at_start_up_and_known_one_adopted(
        app: Flask, provider: OpenStackProvider) -> None:
    reconciler = worker(app, provider)
    machine_id = launch(app)
    run_until(app, reconciler, machine_id, "contextualising")
    orphan = "0" * 32
    provider.launch(LaunchSpec(orphan, "nobody", 1, 1, support.environment(), "x",
                               user_data=support.USER_DATA))
    assert provider.list_machine_ids() == {machine_id, orphan}
    worker(app, provider).adopt()
    assert provider.list_machine_ids() == {machine_id}
