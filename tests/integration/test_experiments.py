"""Experiments: ICAT-core embedded catalogue, binding sessions, provenance, import files; a
site's own experiments backend chosen by the setting."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from daaas.portal import create_app
from daaas.portal.config import Settings
from daaas.portal.db import unit_of_work
from daaas.portal.errors import InvalidInput, NotFound
from daaas.portal.experiments.backends import (
    EXPERIMENT_BACKENDS,
    ExperimentBackend,
    InvestigationInfo,
    Member,
)
from daaas.portal.experiments.importer import import_experiments, read_file
from tests.support.web import assert_matches, bearer, csrf_from, sign_in


@pytest.fixture
def settings_override(settings_override: dict[str, Any]) -> dict[str, Any]:
    """The conftest's settings on the in-memory provider: these tests launch environments
    (CCP4, Mantid) whose software a local desktop on this host lacks, and the local provider
    refuses those launches (Provider.unavailable_reason)."""
    return {**settings_override, "provider": "memory"}


def my_experiments(app: Flask, client: FlaskClient, username: str) -> list[dict[str, object]]:
    body = client.get("/api/v1/experiments", headers=bearer(app, username)).get_json()
    assert_matches(body, "ExperimentList")
    return list(body["experiments"])


def experiment_id(app: Flask, client: FlaskClient, username: str, visit: str) -> int:
    return next(int(e["id"]) for e in my_experiments(app, client, username)  # type: ignore[call-overload]
                if e["visit_id"] == visit)


def test_members_see_their_experiments_current_first(app: Flask, client: FlaskClient) -> None:
    visits = [e["visit_id"] for e in my_experiments(app, client, "scientist")]
    assert visits == ["MX31850-12", "MG30512-3"]
    neutron = my_experiments(app, client, "neutron")
    assert [e["visit_id"] for e in neutron] == ["RB2410357-1", "RB2410999-1"]
    assert neutron[0]["current"] is True and neutron[1]["current"] is False
    data = Path(str(my_experiments(app, client, "scientist")[0]["data_path"]))
    assert sorted(p.name for p in data.iterdir()) == ["xtal1", "xtal2"]
    assert (data / "xtal1" / "xtal1_0001.cbf").is_file()
    admin = [e["visit_id"] for e in my_experiments(app, client, "admin")]
    assert admin == ["MX31850-12"]  # instrument scientist of I03


def test_member_binds_and_the_experiment_page_shows_the_session(app: Flask,
                                                                client: FlaskClient) -> None:
    mx = experiment_id(app, client, "scientist", "MX31850-12")
    headers = bearer(app, "scientist")
    launched = client.post("/api/v1/machines", json={"environment": "ccp4", "experiment": mx},
                           headers=headers)
    assert launched.status_code == 202, launched.get_json()
    machine = launched.get_json()
    assert machine["experiment"]["visit_id"] == "MX31850-12"
    assert machine["experiment"]["data_path"].endswith("/i03/" + machine["experiment"][
        "data_path"].split("/i03/")[1])
    page = client.get(f"/api/v1/experiments/{mx}", headers=headers).get_json()
    assert_matches(page, "Experiment")
    assert [s["id"] for s in page["sessions"]] == [machine["id"]]
    sign_in(client, "scientist", "scientist-demo")
    html = client.get(f"/experiments/{mx}").get_data(as_text=True)
    assert f'data-machine="{machine["id"]}"' in html and "daaas-ccp4" in html
    machine_page = client.get(f"/machines/{machine['id']}").get_data(as_text=True)
    assert "MX31850-12" in machine_page and "read-only" in machine_page


def test_non_member_cannot_list_bind_or_see(app: Flask, client: FlaskClient) -> None:
    mx = experiment_id(app, client, "scientist", "MX31850-12")
    headers = bearer(app, "neutron")
    assert all(e["id"] != mx for e in my_experiments(app, client, "neutron"))
    assert client.get(f"/api/v1/experiments/{mx}", headers=headers).status_code == 404
    refused = client.post("/api/v1/machines", json={"environment": "mantid", "experiment": mx},
                          headers=headers)
    assert refused.status_code == 403
    assert "not a member of experiment MX31850-12" in refused.get_json()["error"]["message"]
    assert client.get("/api/v1/machines", headers=headers).get_json()["machines"] == []
    sign_in(client, "neutron", "neutron-demo")
    token = csrf_from(client, "/analysis")
    form = client.post("/machines", data={"environment": "mantid", "experiment": str(mx),
                                          "csrf_token": token})
    assert form.status_code == 403
    assert client.get(f"/experiments/{mx}").status_code == 404  # as for a missing one


def test_environment_must_serve_the_instrument(app: Flask, client: FlaskClient) -> None:
    mx = experiment_id(app, client, "admin", "MX31850-12")
    refused = client.post("/api/v1/machines", json={"environment": "mantid", "experiment": mx},
                          headers=bearer(app, "admin"))
    assert refused.status_code == 400
    assert "does not serve I03" in refused.get_json()["error"]["message"]


def test_launch_form_offers_only_served_experiments(app: Flask, client: FlaskClient) -> None:
    sign_in(client, "scientist", "scientist-demo")
    page = client.get("/analysis").get_data(as_text=True)
    ccp4 = page.split('data-environment="ccp4"')[1].split("</form>")[0]
    assert "MX31850-12 (current)" in ccp4 and "MG30512-3" not in ccp4
    assert "MG30512-3" in page.split('data-environment="tomography-gpu"')[1].split("</form>")[0]


def test_import_file_is_idempotent_and_errors_name_the_field(app: Flask, tmp_path: Path) -> None:
    source = tmp_path / "experiments.yaml"
    source.write_text("""
facilities:
  - {name: ILL, full_name: Institut Laue-Langevin, instruments: [{name: D19}]}
users: [{name: neutron, full_name: Dr Ben Neutron}]
investigations:
  - facility: ILL
    name: "5-41-1234"
    visit_id: "5-41-1234-1"
    title: Hydrogen positions in a protein crystal
    start_date: 2026-01-10T08:00:00Z
    end_date: 2026-01-14T08:00:00Z
    instruments: [D19]
    users: [{name: neutron, role: principal_experimenter}]
    datasets: [{name: run1, location: /data/ill/d19/5-41-1234, files: [{name: a.nxs, size: 10}]}]
""")
    factory = app.extensions["daaas"].session_factory
    for _ in range(2):
        with unit_of_work(factory) as db:
            assert import_experiments(db, read_file(source))["investigations"] == 1
    found = [i for i in app.extensions["daaas"].experiments.investigations_for("neutron")
             if i.facility == "ILL"]
    assert len(found) == 1 and found[0].data_path("/x") == "/data/ill/d19/5-41-1234"
    bad = tmp_path / "bad.yaml"
    bad.write_text("investigations:\n  - facility: ILL\n    name: x\n    visit_id: y\n")
    with pytest.raises(InvalidInput, match=r"bad\.yaml: field 'investigations\.0\.title'"):
        read_file(bad)


class ProposalSystem(ExperimentBackend):
    """A test double for a site's own proposal system: one investigation, one member."""

    name = "proposals"

    def __init__(self, data_root: str) -> None:
        self.info = InvestigationInfo(
            id=77, facility="TEST", name="P-77", visit_id="P77-1", title="Double's beamtime",
            instruments=("I03",), start_date=None, end_date=None,
            members=(Member("scientist", "Sci Entist", "principal_investigator"),),
            data_locations=(f"{data_root}/p77/raw",))

    @classmethod
    def from_settings(cls, settings: Settings) -> ProposalSystem:
        return cls(str(settings.var_path))

    def investigations_for(self, username: str) -> list[InvestigationInfo]:
        return [self.info] if username == "scientist" else []

    def get(self, investigation_id: int) -> InvestigationInfo:
        if investigation_id != self.info.id:
            raise NotFound("There is no such experiment.")
        return self.info


def test_a_registered_experiments_backend_is_chosen_by_the_setting(
        settings_override: dict[str, Any]) -> None:
    with EXPERIMENT_BACKENDS.registered("proposals", ProposalSystem):
        app = create_app({**settings_override, "experiments_backend": "proposals"})
    try:
        client = app.test_client()
        [listed] = my_experiments(app, client, "scientist")
        assert (listed["id"], listed["visit_id"]) == (77, "P77-1")
        assert str(listed["data_path"]).endswith("/p77/raw")
        assert my_experiments(app, client, "neutron") == []
    finally:
        app.extensions["daaas"].engine.dispose()
