"""OpenStackProvider against REAL Keystone, Glance, Placement and Nova (``.ci/openstack.sh``).

The fake virt driver reports one 64-core/128 GiB host with 2 VGPU; ``x1.huge`` fits no host;
the ``-quota`` cloud is a project limited to 1 core. Skipped locally (with the reason) when
DAAAS_TEST_OPENSTACK_CLOUD is unset; in CI they run.
"""

from __future__ import annotations

import base64
import os
import uuid
from collections.abc import Iterator

import pytest

from daaas.portal.providers import (
    CapacityExhausted,
    LaunchFailed,
    LaunchSpec,
    ProviderState,
    ProviderUnavailable,
)
from daaas.portal.providers.openstack import OpenStackProvider
from daaas.portal.providers.openstack.cloud import BAD_USER_DATA, NO_GPU, NO_HOST, UNREACHABLE
from tests.openstack import support
from tests.openstack.support import CPU_FLAVOR, GPU_FLAVOR, HUGE_FLAVOR, USER_DATA


@pytest.fixture
def provider() -> Iterator[OpenStackProvider]:
    yield from support.provider_fixture()


def spec(flavor: str = CPU_FLAVOR, user_data: bytes | None = USER_DATA,
         image: dict[str, str] | None = None, machine_id: str | None = None) -> LaunchSpec:
    return LaunchSpec(machine_id or uuid.uuid4().hex, "alice", 20000, 20000,
                      support.environment(flavor, image), "Pw4-vnc!", user_data=user_data)


def stored_user_data(server_id: str) -> bytes:
    conn = support.admin_connection()
    body = conn.compute.get(f"/servers/{server_id}", microversion="2.3").json()["server"]
    return base64.b64decode(body["OS-EXT-SRV-ATTR:user_data"])


def the_server(provider: OpenStackProvider, machine_id: str) -> object:
    servers = [s for s in support.servers_tagged(provider.server_tag)
               if s.metadata.get("daaas_machine_id") == machine_id]
    assert len(servers) == 1, servers
    return servers[0]


def test_cpu_and_gpu_launch_reach_active_with_exact_user_data(
        provider: OpenStackProvider) -> None:
    cpu, gpu = spec(CPU_FLAVOR), spec(GPU_FLAVOR, user_data=USER_DATA + b"# gpu\n")
    for launch in (cpu, gpu):
        provider.launch(launch)
    for launch in (cpu, gpu):
        support.wait_state(provider, launch.machine_id, ProviderState.RUNNING)
        server = the_server(provider, launch.machine_id)
        assert server.status == "ACTIVE"  # type: ignore[attr-defined]
        assert stored_user_data(server.id) == launch.user_data  # type: ignore[attr-defined]
        assert server.metadata["daaas_owner"] == "alice"  # type: ignore[attr-defined]
        assert set(server.tags) == {provider.server_tag,  # type: ignore[attr-defined]
                                    f"daaas-machine-{launch.machine_id}"}
    assert the_server(provider, gpu.machine_id).flavor["extra_specs"] == {  # type: ignore
        "resources:VGPU": "1"}


def test_third_gpu_is_refused_up_front_and_leaves_nothing(provider: OpenStackProvider) -> None:
    # both VGPUs free (a previous test's allocation is released just after its delete)
    support.wait_for(lambda: provider.capacity().gpus_free == 2, timeout=30)
    first, second = spec(GPU_FLAVOR), spec(GPU_FLAVOR)
    for launch in (first, second):
        provider.launch(launch)
        support.wait_state(provider, launch.machine_id, ProviderState.RUNNING)
    assert provider.capacity().gpus_free == 0
    third = spec(GPU_FLAVOR)
    with pytest.raises(CapacityExhausted) as caught:
        provider.launch(third)
    assert caught.value.user_message == NO_GPU
    assert len(support.servers_tagged(provider.server_tag)) == 2
    provider.delete(first.machine_id)  # Nova frees the Placement allocation just after
    support.wait_for(lambda: provider.capacity().gpus_free == 1, timeout=30)


def test_flavor_larger_than_any_host_ends_in_error_with_translated_message(
        provider: OpenStackProvider) -> None:
    huge = spec(HUGE_FLAVOR)
    provider.launch(huge)
    status = support.wait_state(provider, huge.machine_id, ProviderState.ERROR)
    assert status.reason == NO_HOST
    assert "No valid host" in status.log_message
    provider.delete(huge.machine_id)
    assert support.servers_tagged(provider.server_tag) == []


def test_over_quota_gets_the_quota_message_and_leaves_nothing() -> None:
    for limited in support.provider_fixture(cloud=f"{support.cloud_name()}-quota"):
        with pytest.raises(CapacityExhausted) as caught:
            limited.launch(spec(HUGE_FLAVOR))  # 2 cores > the project's 1
        assert "quota" in caught.value.user_message and "cores" in caught.value.user_message
        assert "403" in caught.value.log_message
        assert support.servers_tagged(limited.server_tag) == []


def test_placement_unreadable_falls_back_to_the_static_figure() -> None:
    cloud = f"{support.cloud_name()}-quota"  # a member-only credential: Placement says 403
    assert support.new_provider(cloud).capacity().gpus_free is None
    assert support.new_provider(cloud, gpu_static_free=3).capacity().gpus_free == 3


def test_refused_user_data_is_translated_and_never_logged(provider: OpenStackProvider) -> None:
    marker = b"SECRET-BOOTSTRAP-" + uuid.uuid4().hex.encode()
    too_big = marker + os.urandom(60000)
    with pytest.raises(LaunchFailed) as caught:
        provider.launch(spec(user_data=too_big))
    error = caught.value
    assert error.user_message == BAD_USER_DATA
    encoded = base64.b64encode(too_big).decode()
    for text in (error.user_message, error.log_message, str(error), repr(error.args)):
        assert encoded[:40] not in text and marker.decode() not in text
    assert "user_data" in error.log_message and "redacted" in error.log_message
    assert error.__cause__ is None and error.__suppress_context__
    assert support.servers_tagged(provider.server_tag) == []


def test_missing_image_and_flavor_are_named(provider: OpenStackProvider) -> None:
    with pytest.raises(LaunchFailed) as no_image:
        provider.launch(spec(image={"name": "no-such-image"}))
    assert "image" in no_image.value.user_message and "no-such-image" in no_image.value.log_message
    with pytest.raises(LaunchFailed) as no_flavor:
        provider.launch(spec(flavor="no.such.flavor"))
    assert "'no.such.flavor'" in no_flavor.value.user_message
    with pytest.raises(LaunchFailed):
        provider.launch(spec(image={"tag": "no-such-tag"}))


def test_image_by_tag_picks_the_tagged_image(provider: OpenStackProvider) -> None:
    launch = spec(image={"tag": "daaas-desktop"})
    provider.launch(launch)
    support.wait_state(provider, launch.machine_id, ProviderState.RUNNING)
    image = support.admin_connection().image.find_image(support.IMAGE)
    assert the_server(provider, launch.machine_id).image["id"] == image.id  # type: ignore


def test_server_deleted_behind_the_portal_is_gone_at_the_next_poll(
        provider: OpenStackProvider) -> None:
    launch = spec()
    provider.launch(launch)
    support.wait_state(provider, launch.machine_id, ProviderState.RUNNING)
    support.remove_tagged(f"daaas-machine-{launch.machine_id}")
    assert provider.poll([launch.machine_id])[launch.machine_id].state is ProviderState.GONE


def test_polling_many_machines_is_one_compute_request(provider: OpenStackProvider) -> None:
    launches = [spec() for _ in range(3)]
    for launch in launches:
        provider.launch(launch)
    for launch in launches:
        support.wait_state(provider, launch.machine_id, ProviderState.RUNNING)
    counter = support.RequestCounter(provider.connection)
    ids = [launch.machine_id for launch in launches] + [uuid.uuid4().hex for _ in range(20)]
    statuses = provider.poll(ids)
    assert counter.count(8774) == 1, counter.urls
    assert sum(s.state is ProviderState.RUNNING for s in statuses.values()) == 3, statuses
    provider.poll(ids[:1])
    assert counter.count(8774) == 2, counter.urls


def test_unknown_or_unreachable_cloud_is_provider_unavailable() -> None:
    with pytest.raises(ProviderUnavailable) as unknown:
        OpenStackProvider("no-such-cloud-in-clouds-yaml").poll(["x"])
    assert "administrators" in unknown.value.user_message
    down = support.new_provider(f"{support.cloud_name()}-unreachable")
    for call in (lambda: down.poll(["x"]), lambda: down.launch(spec()), down.capacity):
        with pytest.raises(ProviderUnavailable) as caught:
            call()
        assert caught.value.user_message == UNREACHABLE
