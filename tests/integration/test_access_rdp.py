"""RDP: the .rdp file where the environment and the provider offer RDP, and a reason a person
can read where they do not."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from daaas.portal import create_app
from daaas.portal.access.rdp import rdp_file, rdp_unavailable_reason
from daaas.portal.machines.models import Machine
from daaas.portal.providers import ConnectionTarget
from tests.support.access import FixedTarget, make_machine
from tests.support.environments import make_environment
from tests.support.web import sign_in


@pytest.fixture
def settings_override(settings_override: dict[str, Any]) -> dict[str, Any]:
    """The conftest portal, with machines held by the in-memory provider."""
    return {**settings_override, "provider": "memory"}


def test_rdp_file_without_gateway() -> None:
    text = rdp_file("10.0.0.5", 3389, "scientist")
    lines = text.split("\r\n")
    assert text.endswith("\r\n") and "\n" not in text.replace("\r\n", "")
    assert lines[:3] == ["full address:s:10.0.0.5:3389", "username:s:scientist",
                         "prompt for credentials:i:1"]
    assert not any(line.startswith("gateway") for line in lines)


def test_rdp_file_with_gateway() -> None:
    lines = rdp_file("10.0.0.5", 3390, "neutron", gateway="rdgw.facility.example").split("\r\n")
    assert "full address:s:10.0.0.5:3390" in lines
    for line in ("gatewayhostname:s:rdgw.facility.example", "gatewayusagemethod:i:1",
                 "gatewaycredentialssource:i:0", "gatewayprofileusagemethod:i:1"):
        assert line in lines


def test_rdp_file_brackets_ipv6_hosts() -> None:
    assert rdp_file("fd00::5", 3389, "u").startswith("full address:s:[fd00::5]:3389\r\n")


def _machine(protocols: list[str], provider: str = "openstack") -> Machine:
    return Machine(id="m1", environment_name="ccp4", provider=provider, state="ready",
                   environment=make_environment(title="CCP4 crystallography desktop",
                                               protocols=protocols))


def test_reasons_rdp_is_not_offered() -> None:
    no_rdp = ConnectionTarget("127.0.0.1", 5901)
    assert rdp_unavailable_reason(_machine(["novnc"]), None) == (
        "RDP is not offered for CCP4 crystallography desktop: this environment offers only "
        "the browser desktop.")
    assert rdp_unavailable_reason(_machine(["novnc", "rdp"], "local"), no_rdp) == (
        "RDP is not offered for CCP4 crystallography desktop: the local desktop provider "
        "serves the browser desktop only.")
    with_rdp = ConnectionTarget("10.0.0.5", 5901, rdp_port=3389)
    assert rdp_unavailable_reason(_machine(["novnc", "rdp"]), with_rdp) is None
    assert rdp_unavailable_reason(_machine(["novnc", "rdp"]), None) is None


def test_rdp_refused_with_the_reason_where_the_environment_lacks_it(app: Flask,
                                                                   client: FlaskClient) -> None:
    machine_id = make_machine(app, "scientist", protocols=["novnc"])
    sign_in(client, "scientist", "scientist-demo")
    page = client.get(f"/machines/{machine_id}/rdp")
    assert page.status_code == 409
    assert "this environment offers only the browser desktop" in page.get_data(as_text=True)
    api = client.get(f"/api/v1/machines/{machine_id}/rdp")
    assert api.status_code == 409
    assert api.get_json()["error"]["message"].startswith(
        "RDP is not offered for CCP4 crystallography desktop")


def test_rdp_refused_where_the_provider_has_no_rdp(app: Flask, client: FlaskClient) -> None:
    machine_id = make_machine(app, "scientist")
    sign_in(client, "scientist", "scientist-demo")
    response = client.get(f"/api/v1/machines/{machine_id}/rdp")
    assert response.status_code == 409
    assert "the memory provider serves the browser desktop only" in \
        response.get_json()["error"]["message"]


def test_rdp_file_download(settings_override: dict[str, Any]) -> None:
    app = create_app({**settings_override, "rdp_gateway": "rdgw.facility.example"})
    runtime = app.extensions["daaas"]
    app.extensions["daaas"] = dataclasses.replace(
        runtime, provider=FixedTarget(vnc_port=5901, rdp_port=3389, host="10.0.0.5"))
    machine_id = make_machine(app, "scientist")
    client = app.test_client()
    sign_in(client, "scientist", "scientist-demo")
    for path in (f"/machines/{machine_id}/rdp", f"/api/v1/machines/{machine_id}/rdp"):
        response = client.get(path)
        assert response.status_code == 200, response.get_data(as_text=True)
        assert response.mimetype == "application/x-rdp"
        assert response.headers["Content-Disposition"] == \
            f'attachment; filename="ccp4-{machine_id[:8]}.rdp"'
        lines = response.get_data(as_text=True).split("\r\n")
        assert "full address:s:10.0.0.5:3389" in lines and "username:s:scientist" in lines
        assert "gatewayhostname:s:rdgw.facility.example" in lines
    runtime.engine.dispose()


def test_rdp_of_another_users_machine_is_not_found(app: Flask, client: FlaskClient) -> None:
    theirs = make_machine(app, "neutron")
    sign_in(client, "scientist", "scientist-demo")
    assert client.get(f"/machines/{theirs}/rdp").status_code == 404
    assert client.get(f"/api/v1/machines/{theirs}/rdp").status_code == 404


def test_rdp_waits_for_the_machine(app: Flask, client: FlaskClient) -> None:
    machine_id = make_machine(app, "scientist", state="contextualising")
    sign_in(client, "scientist", "scientist-demo")
    response = client.get(f"/api/v1/machines/{machine_id}/rdp")
    assert response.status_code == 409
    assert "not ready yet (contextualising)" in response.get_json()["error"]["message"]
