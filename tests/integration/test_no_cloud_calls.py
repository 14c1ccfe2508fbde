"""Page views and API GETs make no cloud call (issue 19): every GET route the portal has,
visited as a user and as an administrator, with the OpenStack provider pointed at a fake cloud
that counts every HTTP request it receives (compute, Placement, anything). The reconciler is
the only one that asks the cloud; the admin pages read the capacity and orphans it recorded.

Routes with a parameter are visited with a real value where the test has one (a machine id,
a user name); the others are listed in :data:`NOT_VISITED`. No GET may ask the cloud: a
ready machine's address (the SSH command, the RDP offer and the .rdp download) is the one the
worker recorded when it saw the machine ready.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from daaas.portal import create_app
from daaas.portal.machines.models import Machine
from daaas.portal.machines.reconciler import Reconciler
from tests.support.environments import make_environment
from tests.support.fake_cloud import JsonHandler, fake_cloud
from tests.support.routes import fill, get_routes
from tests.support.scale import add_machines
from tests.support.web import bearer, sign_in

ORPHAN = "f" * 32


class Cloud:
    """Every request the fake cloud received, and the servers it runs (one an orphan)."""

    def __init__(self) -> None:
        self.requests: list[str] = []
        self.machines: list[str] = [ORPHAN]  # the portal's machines are added by the test


class CountingHandler(JsonHandler):
    """Answers what openstacksdk needs for a version document, a server list (one orphan
    server carrying the portal's tag), limits and Placement; records every request."""

    cloud: Cloud

    def _route(self, method: str) -> None:
        self.cloud.requests.append(f"{method} {self.path}")
        path = self.path.split("?")[0].rstrip("/")
        if path == "/compute/v2.1":
            self._versions("compute")
        elif path == "/compute/v2.1/servers/detail":
            tag = next((p.split("=", 1)[1] for p in self.path.split("?", 1)[-1].split("&")
                        if p.startswith("tags=")), "")
            self._answer(200, {"servers": [{
                "id": f"{n:08d}-0000-0000-0000-000000000000", "name": f"daaas-{machine[:8]}",
                "status": "ACTIVE", "tags": [t for t in tag.split(",") if t] + [
                    f"daaas-machine-{machine}"], "metadata": {"daaas_machine_id": machine},
                "addresses": {"science": [{"version": 4, "addr": f"10.0.0.{n + 10}",
                                           "OS-EXT-IPS:type": "fixed"}]}}
                for n, machine in enumerate(self.cloud.machines)]})
        elif path.endswith("/resource_providers"):
            self._answer(200, {"resource_providers": []})
        elif path == "/compute/v2.1/limits":
            self._answer(200, {"limits": {"absolute": {
                "maxTotalInstances": 10, "totalInstancesUsed": 2, "maxTotalCores": 40,
                "totalCoresUsed": 8, "maxTotalRAMSize": 100000, "totalRAMUsed": 1000}}})
        else:
            self._answer(404, {"itemNotFound": {"code": 404, "message": "not here"}})


#: Routes not visited: no value to give their parameter in this test, or not a page (files).
NOT_VISITED = {"/static/<path:filename>"}


@pytest.fixture
def cloud(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Cloud]:
    state = Cloud()
    with fake_cloud(CountingHandler, state, tmp_path, monkeypatch, ("compute",)):
        yield state


@pytest.fixture
def app(settings_override: dict[str, Any], cloud: Cloud) -> Iterator[Flask]:
    application = create_app({**settings_override, "provider": "openstack",
                              "openstack_cloud": "fake", "openstack_network": "none",
                              "openstack_gpu_static_free": 2})
    yield application
    application.extensions["daaas"].engine.dispose()


def recorded_hosts(factory: sessionmaker[Session], ids: list[str]) -> dict[str, str]:
    """Return the host the worker recorded for each of ``ids`` that has one."""
    with factory() as db:
        return {m.id: m.address["host"] for m in db.scalars(
            select(Machine).where(Machine.id.in_(ids))) if m.address}


def test_no_page_or_api_get_asks_the_cloud(app: Flask, cloud: Cloud) -> None:
    rt = app.extensions["daaas"]
    environment = make_environment(applications=[], protocols=["novnc", "rdp", "ssh"])
    ids = add_machines(rt.session_factory, environment, ["scientist", "admin"], 4,
                       provider="openstack")
    cloud.machines += ids
    Reconciler(rt.session_factory, rt.provider, secret_key="k", ready_timeout_seconds=600,
               settings=rt.settings).run_once()
    assert any("limits" in r for r in cloud.requests), cloud.requests  # the worker asked
    addresses = recorded_hosts(rt.session_factory, ids)
    assert sorted(addresses.values()) == sorted(f"10.0.0.{n + 11}" for n in range(len(ids)))
    cloud.requests.clear()
    Reconciler(rt.session_factory, rt.provider, secret_key="k", ready_timeout_seconds=600,
               settings=rt.settings).run_once()
    # the next cycle asks for no address again: one listing (the poll), capacity and orphans
    assert [r for r in cloud.requests if "servers/detail" in r and "daaas-machine-" in r] == []
    cloud.requests.clear()

    visited: dict[str, list[str]] = {}
    asking: dict[str, list[str]] = {}
    for username, password, mine in (("scientist", "scientist-demo", ids[0]),
                                     ("admin", "admin-demo-pass", ids[1])):
        client = app.test_client()
        sign_in(client, username, password)
        api = app.test_client()
        values = {"machine_id": mine, "username": "scientist"}
        for rule in get_routes(app):
            url = fill(rule, values)
            if rule in NOT_VISITED or url is None:
                continue
            before = len(cloud.requests)
            assert client.get(url).status_code != 500, url
            if rule.startswith("/api/"):
                assert api.get(url, headers=bearer(app, username)).status_code != 500, url
            if cloud.requests[before:]:
                asking[rule] = cloud.requests[before:]
            visited.setdefault(username, []).append(url)
    assert asking == {}, asking
    assert "/admin/machines" in visited["admin"] and "/analysis" in visited["scientist"]
    assert len(visited["admin"]) >= 30, visited

    # The machine page's SSH command and the .rdp download use the address the worker recorded.
    client = app.test_client()
    sign_in(client, "scientist", "scientist-demo")
    page = client.get(f"/machines/{ids[0]}").get_data(as_text=True)
    assert f"scientist@{addresses[ids[0]]}" in page, page
    rdp = client.get(f"/machines/{ids[0]}/rdp")
    assert rdp.status_code == 200 and \
        f"full address:s:{addresses[ids[0]]}:3389" in rdp.get_data(as_text=True)
    assert cloud.requests == []

    # The admin page shows what the worker recorded, with its age.
    client = app.test_client()
    sign_in(client, "admin", "admin-demo-pass")
    before = len(cloud.requests)
    page = client.get("/admin/machines").get_data(as_text=True)
    assert cloud.requests[before:] == []
    assert f"<code>{ORPHAN}</code>" in page and 'id="orphans-age"' in page
    assert re.search(r"Capacity as of \d+ s ago", page), re.findall(r"capacity-age.*", page)
    assert '<dd id="sessions-free">8 of 10</dd>' in page  # the limits the worker read
