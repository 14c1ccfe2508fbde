"""The OpenStack poll reads Nova's server listing as JSON, a page of 1,000 at a time.

Nova is faked at the HTTP edge (tests.support.fake_cloud) with 2,500 servers of the portal's
tag (and some of another's), paginated as Nova does (``limit``, ``marker``, a ``next`` link
while more follow); the provider is the real one on a real openstacksdk connection.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from daaas.portal.providers import ProviderState
from daaas.portal.providers.openstack import OpenStackProvider
from daaas.portal.providers.openstack.cloud import MACHINE_KEY
from tests.support.fake_cloud import fake_cloud
from tests.support.fake_nova import Nova, NovaHandler

SERVERS = 2500


def test_the_poll_reads_every_page_of_the_listing_as_json(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    probe = Nova("", 0)
    with fake_cloud(NovaHandler, probe, tmp_path, monkeypatch, ("compute",)):
        provider = OpenStackProvider("fake", network="none", access_mode="direct",
                                     delete_timeout=10)
        nova = Nova(provider.server_tag, SERVERS)
        probe.servers, probe.requests = nova.servers, []
        ids = {s["metadata"][MACHINE_KEY]: s for s in nova.servers}
        asked = [*list(ids)[:SERVERS], "f" * 32]
        started = time.perf_counter()
        statuses = provider.poll(asked)
        elapsed = time.perf_counter() - started
    listings = [r for r in probe.requests if "/servers/detail" in r]
    assert len(listings) == 3, listings  # 1,000 + 1,000 + 500
    assert all(f"tags={provider.server_tag}" in r for r in listings)
    assert "marker=00000999-" in listings[1] and "marker=00001999-" in listings[2]
    assert set(statuses) == set(asked)
    seen = [statuses[mid].state for mid in asked[:4]]
    assert seen == [ProviderState.RUNNING, ProviderState.BUILDING, ProviderState.STOPPED,
                    ProviderState.ERROR]
    assert statuses[asked[3]].reason  # Nova's fault, told to the person
    assert statuses["f" * 32].state is ProviderState.GONE
    outsider = next(mid for mid, s in ids.items() if s["tags"] == ["someone-else"])
    assert outsider not in statuses
    print(f"poll of {SERVERS} servers: {elapsed * 1000:.0f} ms")
