"""Floating-IP access mode: allocated once for a machine, released with it.

The test cloud runs no Neutron (its stand-in answers empty lists), so this one path is faked at
the HTTP edge: a real HTTP server answering what openstacksdk sends to Nova and Neutron, with
the bodies of their API references (compute: servers/detail with ``tags``, server GET/DELETE;
networking: networks, ports by ``device_id``, floatingips create/list/delete). The provider is
the real one on a real openstacksdk connection (clouds.yaml with ``auth_type: none`` and
endpoint overrides).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from daaas.portal.providers.openstack import OpenStackProvider
from daaas.portal.providers.openstack.cloud import MACHINE_KEY, machine_tag
from tests.support.fake_cloud import JsonHandler, fake_cloud

MACHINE = uuid.uuid4().hex
FIXED, FLOATING = "10.0.0.5", "203.0.113.10"


class Cloud:
    """What the fake cloud holds, and every request it was sent."""

    def __init__(self) -> None:
        self.server: dict[str, Any] | None = {
            "id": str(uuid.uuid4()), "name": f"daaas-{MACHINE[:8]}", "status": "ACTIVE",
            "tags": ["daaas", machine_tag(MACHINE)], "metadata": {MACHINE_KEY: MACHINE},
            "addresses": {"private": [{"version": 4, "addr": FIXED,
                                       "OS-EXT-IPS:type": "fixed",
                                       "OS-EXT-IPS-MAC:mac_addr": "fa:16:3e:00:00:01"}]}}
        self.port = {"id": str(uuid.uuid4()), "device_id": self.server["id"],
                     "fixed_ips": [{"ip_address": FIXED, "subnet_id": str(uuid.uuid4())}]}
        self.network = {"id": str(uuid.uuid4()), "name": "public", "router:external": True,
                        "status": "ACTIVE"}
        self.floating: dict[str, dict[str, Any]] = {}
        self.requests: list[str] = []


class Handler(JsonHandler):
    cloud: Cloud

    def _route(self, method: str) -> None:
        path, query, body = self._request()
        self.cloud.requests.append(f"{method} {self.path}")
        if path.startswith("/compute"):
            self._compute(method, path.removeprefix("/compute/v2.1"), query)
        elif path.startswith("/network"):
            self._network(method, path.removeprefix("/network/v2.0"), query, body)
        else:
            self._answer(404, {"itemNotFound": {"code": 404, "message": "not here"}})

    def _compute(self, method: str, path: str, query: dict[str, str]) -> None:
        server = self.cloud.server
        if method == "GET" and path in ("", "/compute"):
            self._versions("compute")
        elif method == "GET" and path == "/servers/detail":
            wanted = set(query.get("tags", "").split(",")) - {""}
            found = [server] if server and wanted <= set(server["tags"]) else []
            self._answer(200, {"servers": found})
        elif server and path == f"/servers/{server['id']}":
            if method == "DELETE":
                self.cloud.server = None
                self._answer(204)
            else:
                self._answer(200, {"server": server})
        else:
            self._answer(404, {"itemNotFound": {"code": 404,
                                                "message": "Instance could not be found."}})

    def _network(self, method: str, path: str, query: dict[str, str],
                 body: dict[str, Any]) -> None:
        if method == "GET" and path in ("", "/network"):
            self._versions("network")
        elif method == "GET" and path == "/networks":
            network = self.cloud.network
            matches = [network] if query.get("name", network["name"]) == network["name"] \
                or query.get("id") == network["id"] else []
            self._answer(200, {"networks": matches})
        elif method == "GET" and path == "/ports":
            ports = [self.cloud.port] if query.get("device_id") == self.cloud.port["device_id"] \
                else []
            self._answer(200, {"ports": ports})
        elif method == "POST" and path == "/floatingips":
            self._allocate(body["floatingip"])
        elif method == "GET" and path == "/floatingips":
            found = [ip for ip in self.cloud.floating.values()
                     if all(ip.get(k) == v for k, v in query.items())]
            self._answer(200, {"floatingips": found})
        elif method == "DELETE" and path.startswith("/floatingips/"):
            gone = self.cloud.floating.pop(path.rsplit("/", 1)[1], None)
            self._answer(204 if gone else 404)
        else:
            self._answer(404, {"NeutronError": {"type": "HTTPNotFound", "message": path,
                                                "detail": ""}})

    def _allocate(self, request: dict[str, Any]) -> None:
        ip = {"id": str(uuid.uuid4()), "floating_ip_address": FLOATING,
              "floating_network_id": request["floating_network_id"],
              "port_id": request.get("port_id"), "fixed_ip_address": FIXED,
              "description": request.get("description", ""), "status": "ACTIVE"}
        self.cloud.floating[ip["id"]] = ip
        if self.cloud.server:  # Nova shows it on the server once Neutron associated it
            self.cloud.server["addresses"]["private"].append(
                {"version": 4, "addr": FLOATING, "OS-EXT-IPS:type": "floating"})
        self._answer(201, {"floatingip": ip})


@pytest.fixture
def cloud(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Cloud]:
    state = Cloud()
    with fake_cloud(Handler, state, tmp_path, monkeypatch, ("compute", "network")):
        yield state


def test_floating_ip_is_allocated_once_and_released_with_the_machine(cloud: Cloud) -> None:
    provider = OpenStackProvider("fake", network="none", access_mode="floating",
                                 floating_network="public", delete_timeout=10)
    first = provider.connection_target(MACHINE)
    again = provider.connection_target(MACHINE)
    assert first.host == again.host == FLOATING
    creates = [r for r in cloud.requests if r.startswith("POST") and "floatingips" in r]
    assert len(creates) == 1, cloud.requests
    (ip,) = cloud.floating.values()
    assert ip["port_id"] == cloud.port["id"] and ip["floating_network_id"] == cloud.network["id"]
    assert ip["description"] == f"daaas machine {MACHINE}"

    provider.delete(MACHINE)
    assert cloud.floating == {} and cloud.server is None, cloud.requests


def test_direct_mode_uses_the_fixed_address_and_allocates_nothing(cloud: Cloud) -> None:
    provider = OpenStackProvider("fake", network="none", access_mode="direct", delete_timeout=10)
    assert provider.connection_target(MACHINE).host == FIXED
    assert not any("floatingips" in r for r in cloud.requests), cloud.requests
