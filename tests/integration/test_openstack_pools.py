"""Warm pools on OpenStack (issue 20) against REAL Keystone, Glance and Nova: an environment
gets a pool only when its Glance image says its agent waits for claims, and the hand-over of a
claimed server makes the claimer its owner (nothing is sent into the server). Skipped locally
when DAAAS_TEST_OPENSTACK_CLOUD is unset; in CI they run."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import pytest

from daaas.portal.providers import LaunchSpec, MachineGone, ProviderState
from daaas.portal.providers.openstack import OpenStackProvider
from daaas.portal.providers.openstack.cloud import OWNER_KEY
from daaas.portal.providers.openstack.provider import AGENT_MODES_PROPERTY
from tests.openstack import support
from tests.openstack.support import CPU_FLAVOR, USER_DATA


@pytest.fixture
def provider() -> Iterator[OpenStackProvider]:
    yield from support.provider_fixture()


@pytest.fixture
def images() -> Iterator[dict[str, str]]:
    """Two image records (no data): one saying its agent speaks pool mode, one not."""
    conn = support.admin_connection()
    made: dict[str, Any] = {}
    suffix = uuid.uuid4().hex[:8]
    try:
        for kind, properties in (("pool", {AGENT_MODES_PROPERTY: "session,pool"}),
                                 ("session", {})):
            made[kind] = conn.image.create_image(
                name=f"daaas-pooltest-{kind}-{suffix}", disk_format="raw",
                container_format="bare", allow_duplicates=True, visibility="public",
                **properties)
        yield {kind: image.name for kind, image in made.items()}
    finally:
        for image in made.values():
            conn.image.delete_image(image, ignore_missing=True)


def test_only_an_image_whose_agent_waits_for_claims_gets_a_pool(
        provider: OpenStackProvider, images: dict[str, str]) -> None:
    assert provider.supports_pools
    assert provider.pool_unavailable_reason(
        support.environment(image={"name": images["pool"]})) is None
    reason = provider.pool_unavailable_reason(
        support.environment(image={"name": images["session"]}))
    assert reason is not None and AGENT_MODES_PROPERTY in reason
    missing = provider.pool_unavailable_reason(
        support.environment(image={"name": f"no-such-image-{uuid.uuid4().hex[:6]}"}))
    assert missing is not None and AGENT_MODES_PROPERTY in missing


def test_the_hand_over_makes_the_claimer_the_servers_owner(
        provider: OpenStackProvider) -> None:
    pooled = LaunchSpec(uuid.uuid4().hex, "daaas-pool", 20000, 20000,
                        support.environment(CPU_FLAVOR), "Pw4-vnc!", user_data=USER_DATA,
                        pooled=True)
    provider.launch(pooled)
    support.wait_state(provider, pooled.machine_id, ProviderState.RUNNING)
    [server] = [s for s in support.servers_tagged(provider.server_tag)]
    assert server.metadata[OWNER_KEY] == "daaas-pool"
    provider.personalise(replace(pooled, username="alice", uid=20001, gid=20001, pooled=False))
    provider.personalise(replace(pooled, username="alice", uid=20001, gid=20001, pooled=False))
    [server] = [s for s in support.servers_tagged(provider.server_tag)]
    assert server.metadata[OWNER_KEY] == "alice"  # administrators see whose it is now
    assert server.status == "ACTIVE"  # handed over in place: no rebuild, no reboot
    with pytest.raises(MachineGone):
        provider.personalise(replace(pooled, machine_id=uuid.uuid4().hex))
