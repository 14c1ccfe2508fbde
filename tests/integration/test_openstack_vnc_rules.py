"""Per-machine VNC security groups: made with the machine, attached to its server, deleted after
it, swept at start-up, and never left behind by a refused launch.

The test cloud runs no Neutron (its stand-in answers empty lists), so Nova, Glance and Neutron
are faked at the HTTP edge, as in test_openstack_floating.py: a real HTTP server answering what
openstacksdk sends, with the bodies of their API references (compute: servers create/list/
show/delete, flavors; image: images by name; networking: networks, security-groups create/
list/delete with Neutron's default egress rules, security-group-rules create). It behaves as
the services do where it matters here: Nova refuses a server naming a security group Neutron
does not have, Neutron refuses to delete a group a server still uses (409 SecurityGroupInUse)
and to create one over quota (409 OverQuota). The provider is the real one on a real
openstacksdk connection (clouds.yaml with ``auth_type: none`` and endpoint overrides), built
from the portal's settings. Every request is recorded, so the tests count the cloud calls.
"""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from daaas.portal.config import load_settings
from daaas.portal.providers import PROVIDERS, CapacityExhausted, LaunchSpec
from daaas.portal.providers.openstack import OpenStackProvider
from daaas.portal.providers.openstack.cloud import MACHINE_KEY
from tests.support.environments import make_environment
from tests.support.fake_cloud import JsonHandler, fake_cloud

PROJECT = uuid.uuid4().hex
FIXED, PROXY = "10.0.0.5", "192.0.2.10"
FLAVOR, IMAGE, NETWORK = "m1.small", "daaas-base-desktop", "private"
VNC_PASSWORD = "Vnc-secret-7"
USER_DATA = b"#cloud-config\nruncmd:\n  - echo daaas-test\n"


class Cloud:
    """What the fake cloud holds, and every request it was sent ("METHOD /service/path?query")."""

    def __init__(self) -> None:
        self.servers: dict[str, dict[str, Any]] = {}
        self.groups: dict[str, dict[str, Any]] = {}
        self.flavor = {"id": str(uuid.uuid4()), "name": FLAVOR, "vcpus": 1, "ram": 2048,
                       "disk": 10, "extra_specs": {}, "os-flavor-access:is_public": True}
        self.image = {"id": str(uuid.uuid4()), "name": IMAGE, "status": "active",
                      "visibility": "public", "tags": []}
        self.network = {"id": str(uuid.uuid4()), "name": NETWORK, "status": "ACTIVE",
                        "project_id": PROJECT}
        self.group_quota = 10
        self.refuse_servers = False  # Nova answers 403 quota exceeded to a server create
        self.server_bodies: list[dict[str, Any]] = []
        self.requests: list[str] = []

    def add_group(self, name: str, description: str) -> dict[str, Any]:
        """Create a security group as Neutron does (with its two default egress rules)."""
        group_id = str(uuid.uuid4())
        group = {"id": group_id, "name": name, "description": description,
                 "project_id": PROJECT, "tenant_id": PROJECT, "stateful": True, "tags": [],
                 "security_group_rules": [
                     _rule(group_id, direction="egress", ethertype=ethertype)
                     for ethertype in ("IPv4", "IPv6")]}
        self.groups[group_id] = group
        return group

    def calls(self, service: str) -> list[str]:
        """Return the recorded requests to ``service`` (compute, image, network)."""
        return [r for r in self.requests if r.split(" ", 1)[1].startswith(f"/{service}")]

    def vnc_rules(self, group: dict[str, Any]) -> list[tuple[str, str, int, int, str, str]]:
        return [(r["direction"], r["protocol"], r["port_range_min"], r["port_range_max"],
                 r["remote_ip_prefix"], r["ethertype"])
                for r in group["security_group_rules"] if r["direction"] == "ingress"]


def _rule(group_id: str, **fields: Any) -> dict[str, Any]:
    rule = {"id": str(uuid.uuid4()), "security_group_id": group_id, "protocol": None,
            "port_range_min": None, "port_range_max": None, "remote_ip_prefix": None,
            "remote_group_id": None, "description": "", "project_id": PROJECT,
            "tenant_id": PROJECT}
    rule.update(fields)
    return rule


class Handler(JsonHandler):
    cloud: Cloud

    def _route(self, method: str) -> None:
        path, query, body = self._request()
        if path in ("/compute/v2.1", "/image", "/network"):  # version discovery
            self._versions(path.split("/")[1])
            return
        self.cloud.requests.append(f"{method} {self.path}")
        if path.startswith("/compute/v2.1"):
            self._compute(method, path.removeprefix("/compute/v2.1"), query, body)
        elif path.startswith("/image/v2"):
            self._image(path.removeprefix("/image/v2"), query)
        elif path.startswith("/network/v2.0"):
            self._network(method, path.removeprefix("/network/v2.0"), query, body)
        else:
            self._answer(404, {"itemNotFound": {"code": 404, "message": "not here"}})

    # -- Nova -----------------------------------------------------------------------------

    def _compute(self, method: str, path: str, query: dict[str, str],
                 body: dict[str, Any]) -> None:
        servers = self.cloud.servers
        server_id = path.removeprefix("/servers/")
        if method == "GET" and path == "/servers/detail":
            wanted = set(query.get("tags", "").split(",")) - {""}
            self._answer(200, {"servers": [s for s in servers.values()
                                           if wanted <= set(s["tags"])]})
        elif method == "POST" and path == "/servers":
            self._create_server(body["server"])
        elif path.startswith("/servers/") and server_id in servers:
            if method == "DELETE":
                del servers[server_id]
                self._answer(204)
            else:
                self._answer(200, {"server": servers[server_id]})
        elif method == "GET" and path == "/flavors/detail":
            self._answer(200, {"flavors": [self.cloud.flavor]})
        elif method == "GET" and path == f"/flavors/{self.cloud.flavor['id']}/os-extra_specs":
            self._answer(200, {"extra_specs": self.cloud.flavor["extra_specs"]})
        else:
            self._answer(404, {"itemNotFound": {"code": 404,
                                                "message": "Instance could not be found."}})

    def _create_server(self, request: dict[str, Any]) -> None:
        self.cloud.server_bodies.append(request)
        if self.cloud.refuse_servers:
            self._answer(403, {"forbidden": {"code": 403, "message": (
                "Quota exceeded for instances: Requested 1, but already used 10 of 10 "
                "instances")}})
            return
        groups = []
        for wanted in request.get("security_groups", []):
            found = [g for g in self.cloud.groups.values()
                     if wanted["name"] in (g["id"], g["name"])]
            if len(found) != 1:  # Nova asks Neutron for the group by name or id
                self._answer(400, {"badRequest": {"code": 400, "message": (
                    f"Security group {wanted['name']} not found for project {PROJECT}.")}})
                return
            groups.append(found[0])
        server = {"id": str(uuid.uuid4()), "name": request["name"], "status": "ACTIVE",
                  "tags": request.get("tags", []), "metadata": request.get("metadata", {}),
                  "security_groups": [{"name": g["name"]} for g in groups],
                  "group_ids": [g["id"] for g in groups],
                  "addresses": {NETWORK: [{"version": 4, "addr": FIXED,
                                           "OS-EXT-IPS:type": "fixed"}]}}
        self.cloud.servers[server["id"]] = server
        self._answer(202, {"server": {"id": server["id"], "links": [],
                                      "security_groups": server["security_groups"]}})

    # -- Glance ---------------------------------------------------------------------------

    def _image(self, path: str, query: dict[str, str]) -> None:
        image = self.cloud.image
        if path == "/images":
            found = [image] if query.get("name", IMAGE) == IMAGE else []
            self._answer(200, {"images": found})
        elif path == f"/images/{image['id']}":
            self._answer(200, image)
        else:
            self._answer(404, {"message": "No image found", "code": "404 Not Found"})

    # -- Neutron --------------------------------------------------------------------------

    def _network(self, method: str, path: str, query: dict[str, str],
                 body: dict[str, Any]) -> None:
        groups = self.cloud.groups
        group_id = path.removeprefix("/security-groups/")
        if method == "GET" and path == "/networks":
            network = self.cloud.network
            found = [network] if query.get("name") == network["name"] \
                or query.get("id") == network["id"] else []
            self._answer(200, {"networks": found})
        elif method == "GET" and path == "/security-groups":
            fields = ("name", "description", "id")
            self._answer(200, {"security_groups": [
                g for g in groups.values()
                if all(g[k] == query[k] for k in fields if k in query)]})
        elif method == "POST" and path == "/security-groups":
            if len(groups) >= self.cloud.group_quota:
                self._neutron_error(409, "OverQuota",
                                    "Quota exceeded for resources: ['security_group'].")
                return
            wanted = body["security_group"]
            self._answer(201, {"security_group": self.cloud.add_group(
                wanted["name"], wanted.get("description", ""))})
        elif method == "DELETE" and path.startswith("/security-groups/"):
            if group_id not in groups:
                self._neutron_error(404, "SecurityGroupNotFound", f"{group_id} not found")
            elif any(group_id in s["group_ids"] for s in self.cloud.servers.values()):
                self._neutron_error(409, "SecurityGroupInUse",
                                    f"Security Group {group_id} in use.")
            else:
                del groups[group_id]
                self._answer(204)
        elif method == "POST" and path == "/security-group-rules":
            self._create_rule(body["security_group_rule"])
        else:
            self._neutron_error(404, "HTTPNotFound", path)

    def _create_rule(self, wanted: dict[str, Any]) -> None:
        group = self.cloud.groups.get(wanted["security_group_id"])
        if group is None:
            self._neutron_error(404, "SecurityGroupNotFound", "no such group")
            return
        rule = _rule(group["id"], **{k: v for k, v in wanted.items()
                                     if k != "security_group_id"})
        group["security_group_rules"].append(rule)
        self._answer(201, {"security_group_rule": rule})

    def _neutron_error(self, status: int, kind: str, message: str) -> None:
        self._answer(status, {"NeutronError": {"type": kind, "message": message, "detail": ""}})


@pytest.fixture
def cloud(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Cloud]:
    state = Cloud()
    with fake_cloud(Handler, state, tmp_path, monkeypatch, ("compute", "image", "network")):
        yield state


def provider(**settings: Any) -> OpenStackProvider:
    """Return the provider the portal builds from these openstack_* settings."""
    chosen = {"provider": "openstack", "openstack_cloud": "fake", "openstack_network": NETWORK,
              "openstack_vnc_proxy_cidr": PROXY, **settings}
    built = PROVIDERS.build(load_settings(chosen, environ={}))
    assert isinstance(built, OpenStackProvider)
    built.delete_timeout = 10
    return built


def spec(machine_id: str | None = None) -> LaunchSpec:
    environment = make_environment(title="Test desktop", image={"name": IMAGE},
                                   flavors={"default": FLAVOR, "allowed": [FLAVOR]})
    return LaunchSpec(machine_id or uuid.uuid4().hex, "alice", 20000, 20000, environment,
                      VNC_PASSWORD, user_data=USER_DATA)


def vnc_groups(cloud: Cloud) -> dict[str, dict[str, Any]]:
    return {g["name"]: g for g in cloud.groups.values() if g["name"].startswith("daaas-vnc-")}


def test_launch_makes_the_vnc_group_and_delete_removes_it_after_the_server(
        cloud: Cloud) -> None:
    openstack = provider()
    launch = spec()
    openstack.launch(launch)

    (group,) = vnc_groups(cloud).values()
    assert group["name"] == f"daaas-vnc-{launch.machine_id}"
    assert group["description"] == "daaas daaas: VNC from the desktop proxy"
    assert cloud.vnc_rules(group) == [("ingress", "tcp", 5901, 5901, f"{PROXY}/32", "IPv4")]
    (server,) = cloud.servers.values()
    assert server["metadata"][MACHINE_KEY] == launch.machine_id
    assert server["group_ids"] == [group["id"]]  # attached at create, by id, and only it
    (sent,) = cloud.server_bodies
    assert sent["security_groups"] == [{"name": group["id"]}]
    # the VNC password reaches the VM through the bootstrap exchange, never through the cloud
    assert base64.b64decode(sent["user_data"]) == USER_DATA
    assert not any(VNC_PASSWORD in json.dumps(body) for body in cloud.server_bodies)
    # the cloud calls of a launch: Neutron adds exactly 3 (find, make the group, its one rule)
    assert cloud.calls("network") == [
        f"GET /network/v2.0/networks/{NETWORK}",
        f"GET /network/v2.0/networks?name={NETWORK}",
        f"GET /network/v2.0/security-groups?description=daaas+daaas%3A+VNC+from+the+desktop"
        f"+proxy&name=daaas-vnc-{launch.machine_id}",
        "POST /network/v2.0/security-groups",
        "POST /network/v2.0/security-group-rules"], cloud.requests
    assert [r.split("?")[0] for r in cloud.calls("compute")][-1] == "POST /compute/v2.1/servers"
    assert len(cloud.requests) == 12, cloud.requests  # 9 without the group: Nova 5, Glance 2

    before = len(cloud.requests)
    openstack.launch(launch)  # a retried launch finds the server: one Nova call, no Neutron
    assert len(cloud.requests) == before + 1 and len(vnc_groups(cloud)) == 1, cloud.requests
    assert openstack.connection_target(launch.machine_id).host == FIXED

    before = len(cloud.requests)
    openstack.delete(launch.machine_id)
    assert cloud.servers == {} and vnc_groups(cloud) == {}, cloud.requests
    deleting = [r.split("?")[0] for r in cloud.requests[before:]]
    assert len(deleting) == 5, deleting  # 3 without the group (find, delete, gone), 2 for it
    server_gone = deleting.index(f"GET /compute/v2.1/servers/{server['id']}")
    assert deleting.index(f"DELETE /compute/v2.1/servers/{server['id']}") < server_gone
    assert deleting[server_gone + 1:] == ["GET /network/v2.0/security-groups",
                                          f"DELETE /network/v2.0/security-groups/{group['id']}"]
    openstack.delete(launch.machine_id)  # gone is success; it looks once more, finds nothing
    assert vnc_groups(cloud) == {}


def test_several_proxy_addresses_and_the_configured_groups(cloud: Cloud) -> None:
    cloud.add_group("daaas-rdp", "RDP from the users' networks")
    openstack = provider(openstack_vnc_proxy_cidr=f"{PROXY}, 198.51.100.0/28, 2001:db8::7",
                         openstack_security_groups="daaas-rdp")
    openstack.launch(spec())
    (group,) = vnc_groups(cloud).values()
    assert cloud.vnc_rules(group) == [
        ("ingress", "tcp", 5901, 5901, f"{PROXY}/32", "IPv4"),
        ("ingress", "tcp", 5901, 5901, "198.51.100.0/28", "IPv4"),
        ("ingress", "tcp", 5901, 5901, "2001:db8::7/128", "IPv6")]
    (sent,) = cloud.server_bodies
    assert sent["security_groups"] == [{"name": "daaas-rdp"}, {"name": group["id"]}]


def test_a_launch_nova_refuses_leaves_no_group(cloud: Cloud) -> None:
    cloud.refuse_servers = True
    with pytest.raises(CapacityExhausted) as refused:
        provider().launch(spec())
    assert "quota on the cloud is used up (instances)" in refused.value.user_message
    assert len(cloud.server_bodies) == 1 and cloud.servers == {}
    assert vnc_groups(cloud) == {}, cloud.requests
    assert cloud.requests[-1].startswith("DELETE /network/v2.0/security-groups/")


def test_the_security_group_quota_used_up_refuses_before_any_server(cloud: Cloud) -> None:
    cloud.group_quota = 0
    with pytest.raises(CapacityExhausted) as refused:
        provider().launch(spec())
    assert refused.value.user_message.startswith(
        "Your project's quota on the cloud is used up (security_group).")
    assert cloud.server_bodies == [] and cloud.groups == {}


def test_a_launch_retried_after_a_crash_completes_the_group_it_finds(cloud: Cloud) -> None:
    launch = spec()
    left = cloud.add_group(f"daaas-vnc-{launch.machine_id}",
                           "daaas daaas: VNC from the desktop proxy")  # made, then the crash
    provider().launch(launch)
    assert list(vnc_groups(cloud).values()) == [left]
    assert cloud.vnc_rules(left) == [("ingress", "tcp", 5901, 5901, f"{PROXY}/32", "IPv4")]
    assert cloud.server_bodies[0]["security_groups"] == [{"name": left["id"]}]
    assert "POST /network/v2.0/security-groups" not in cloud.requests


def test_start_up_sweeps_groups_of_unknown_machines_only(cloud: Cloud) -> None:
    openstack = provider()
    known, orphan = spec(), spec()
    openstack.launch(known)
    openstack.launch(orphan)
    marker = "daaas daaas: VNC from the desktop proxy"
    lone = cloud.add_group(f"daaas-vnc-{uuid.uuid4().hex}", marker)  # its server never made
    kept = [cloud.add_group(f"daaas-vnc-{uuid.uuid4().hex}", "daaas other: VNC from the "
                            "desktop proxy"),  # another portal's (server tag "other")
            cloud.add_group("daaas-vnc-by-hand", "made by an administrator")]
    waiting = cloud.add_group(f"daaas-vnc-{uuid.uuid4().hex}", marker)  # a known, queued id

    adopted = openstack.adopt_or_cleanup({known.machine_id, waiting["name"][10:]})
    assert adopted == {known.machine_id}
    assert sorted(vnc_groups(cloud)) == sorted(
        [f"daaas-vnc-{known.machine_id}", waiting["name"], *(g["name"] for g in kept)])
    assert lone["id"] not in cloud.groups
    assert [s["metadata"][MACHINE_KEY] for s in cloud.servers.values()] == [known.machine_id]


def test_without_a_network_or_with_none_no_group_is_made(cloud: Cloud) -> None:
    for settings in ({"openstack_vnc_proxy_cidr": "none"},
                     {"openstack_network": "none", "openstack_vnc_proxy_cidr": ""}):
        openstack = provider(**settings)
        assert openstack.vnc_proxy_cidrs == []
        launch = spec()
        openstack.launch(launch)
        openstack.delete(launch.machine_id)
    assert cloud.groups == {} and cloud.servers == {}
    assert not any("security-group" in r for r in cloud.requests), cloud.requests
