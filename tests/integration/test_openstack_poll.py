"""The OpenStack poll reads Nova's server listing as JSON, a page of 1,000 at a time.

Nova is faked at the HTTP edge (tests.support.fake_cloud) with 2,500 servers of the portal's
tag (and some of another's), paginated as Nova does (``limit``, ``marker``, a ``next`` link
while more follow); the provider is the real one on a real openstacksdk connection.
"""

from __future__ import annotations

import time
import uuid
from pathlib import Path
from typing import Any

import pytest

from daaas.portal.providers import ProviderState
from daaas.portal.providers.openstack import OpenStackProvider
from daaas.portal.providers.openstack.cloud import MACHINE_KEY
from tests.support.fake_cloud import JsonHandler, fake_cloud

SERVERS = 2500
STATUSES = ["ACTIVE", "BUILD", "SHELVED_OFFLOADED", "ERROR"]


class Nova:
    """The servers the fake holds (in id order, as Nova pages them) and the requests made."""

    def __init__(self, tag: str) -> None:
        self.servers: list[dict[str, Any]] = []
        for index in range(SERVERS + 100):
            self.servers.append({
                "id": f"{index:08d}-0000-0000-0000-000000000000",
                "status": STATUSES[index % len(STATUSES)], "OS-EXT-STS:task_state": None,
                "tags": [tag if index < SERVERS else "someone-else"],
                "metadata": {MACHINE_KEY: uuid.uuid5(uuid.NAMESPACE_OID, str(index)).hex},
                "fault": {"code": 500, "message": "No valid host was found."},
                "addresses": {}, "flavor": {"original_name": "m1.small"}, "name": "x"})
        self.requests: list[str] = []


class Handler(JsonHandler):
    cloud: Nova

    def _route(self, method: str) -> None:
        path, query, _ = self._request()
        path = path.removeprefix("/compute/v2.1")
        self.cloud.requests.append(f"{method} {self.path}")
        if method == "GET" and path in ("", "/compute"):
            self._versions("compute")
        elif method == "GET" and path == "/servers/detail":
            tags = set(query.get("tags", "").split(",")) - {""}
            matching = [s for s in self.cloud.servers if tags <= set(s["tags"])]
            after = query.get("marker")
            if after:
                matching = [s for s in matching if s["id"] > after]
            limit = int(query.get("limit", "1000"))
            page, rest = matching[:limit], matching[limit:]
            links = [{"rel": "next", "href": "next"}] if rest else []
            self._answer(200, {"servers": page, "servers_links": links})
        else:
            self._answer(404, {"itemNotFound": {"code": 404, "message": "not here"}})


def test_the_poll_reads_every_page_of_the_listing_as_json(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    probe = Nova("")
    with fake_cloud(Handler, probe, tmp_path, monkeypatch, ("compute",)):
        provider = OpenStackProvider("fake", network="none", access_mode="direct",
                                     delete_timeout=10)
        nova = Nova(provider.server_tag)
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
