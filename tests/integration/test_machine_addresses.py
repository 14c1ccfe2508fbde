"""A ready machine's address (issue 19): the worker records it once when it sees the machine
ready, the machine page and the .rdp downloads read it (the provider is not asked per view),
and it is forgotten when the machine leaves ready."""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterator
from typing import Any

import pytest
from flask import Flask

from daaas.portal import create_app
from daaas.portal.machines.models import Machine
from daaas.portal.machines.reconciler import Reconciler
from daaas.portal.providers import ConnectionTarget
from tests.support.access import FixedTarget, make_machine, set_state
from tests.support.web import sign_in


class CountingTarget(FixedTarget):
    """Every machine at 10.0.0.5 (VNC 5901, RDP 3389); counts the address look-ups."""

    def connection_target(self, machine_id: str) -> ConnectionTarget:
        self.calls["connection_target"] += 1
        return super().connection_target(machine_id)


@pytest.fixture
def provider() -> CountingTarget:
    return CountingTarget(vnc_port=5901, rdp_port=3389, host="10.0.0.5")


@pytest.fixture
def app(settings_override: dict[str, Any], provider: CountingTarget) -> Iterator[Flask]:
    application = create_app({**settings_override, "provider": "memory"})
    runtime = application.extensions["daaas"]
    application.extensions["daaas"] = dataclasses.replace(runtime, provider=provider)
    yield application
    runtime.engine.dispose()


def address(app: Flask, machine_id: str) -> dict[str, Any] | None:
    with app.extensions["daaas"].session_factory() as db:
        machine = db.get(Machine, machine_id)
        assert machine is not None
        return machine.address


def test_the_worker_records_the_address_once_and_pages_read_it(app: Flask,
                                                                provider: CountingTarget) -> None:
    rt = app.extensions["daaas"]
    machine_id = make_machine(app, "scientist", state="contextualising",
                              protocols=["novnc", "rdp"])
    worker = Reconciler(rt.session_factory, provider, secret_key="k", ready_timeout_seconds=600)
    client = app.test_client()
    sign_in(client, "scientist", "scientist-demo")
    assert client.get(f"/api/v1/machines/{machine_id}/rdp").status_code == 409

    report = worker.run_once()  # the provider reports it READY: ready, and its address read
    assert report.changed == [machine_id]
    assert address(app, machine_id) == {"host": "10.0.0.5", "vnc_port": 5901, "rdp_port": 3389,
                                        "ssh_port": None, "vnc_socket": None}
    assert provider.calls["connection_target"] == 1
    for path in (f"/machines/{machine_id}/rdp", f"/api/v1/machines/{machine_id}/rdp"):
        response = client.get(path)
        assert response.status_code == 200, response.get_data(as_text=True)
        assert "full address:s:10.0.0.5:3389" in response.get_data(as_text=True)
    page = client.get(f"/machines/{machine_id}").get_data(as_text=True)
    assert 'id="rdp-sign-in-button"' in page and 'id="rdp-reason"' not in page
    worker.run_once()  # idle: the address is not asked again
    assert provider.calls["connection_target"] == 1

    provider.stop_behind_the_portal(machine_id)
    assert worker.run_once().changed == [machine_id]
    assert address(app, machine_id) is None  # a start may bring it back elsewhere


def test_a_ready_machine_without_a_recorded_address_says_so(app: Flask,
                                                             provider: CountingTarget) -> None:
    machine_id = make_machine(app, "scientist", state="contextualising",
                              protocols=["novnc", "rdp", "ssh"])
    set_state(app, machine_id, "ready")  # ready, but the worker has not looked yet
    client = app.test_client()
    sign_in(client, "scientist", "scientist-demo")
    response = client.get(f"/api/v1/machines/{machine_id}/rdp")
    assert response.status_code == 409
    assert "address is not known yet" in response.get_json()["error"]["message"]
    page = client.get(f"/machines/{machine_id}").get_data(as_text=True)
    assert re.search(r'id="rdp-reason">RDP and SSH: [^<]*address is not known yet', page)
    assert 'id="ssh-reason"' not in page  # one line for both
    assert 'id="rdp-sign-in-button"' not in page and 'id="ssh-command"' not in page
    assert provider.calls["connection_target"] == 0
