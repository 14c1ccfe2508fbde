"""No page view or API GET asks ICAT once a user's experiments were observed (issue 19): every
GET route, visited as a user and as an administrator, with the portal on the ICAT backend
pointed at a fake ICAT that answers over real HTTP and records every request
(tests/integration/icat_fake.py).

A user's first sign-in (and a token made with ``daaas tokens create``) asks ICAT about the
user and records the answer; the worker asks again right after each later sign-in and every
``icat_refresh_seconds`` while the user is active (:mod:`daaas.portal.observers`); the pages
read what was recorded. While nothing is recorded for a user (a token used before its user
ever signed in) a view answers that the experiments are not read yet, and the worker records
the user at its next look (a launch with an experiment, an action, asks at once).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from flask import Flask
from sqlalchemy import update

from daaas.portal import create_app
from daaas.portal.cli import main
from daaas.portal.db import unit_of_work
from daaas.portal.experiments.observed import ObservedExperiments
from daaas.portal.observers import Observers
from tests.integration.icat_fake import Account, FakeIcat, entity
from tests.support.routes import fill, get_routes
from tests.support.web import bearer, sign_in

NOW = datetime.now(UTC).replace(microsecond=0)
MX_ID, NEW_ID = 5101, 5102
NOT_VISITED = {"/static/<path:filename>"}


def investigation(entity_id: int, visit: str, users: list[str]) -> dict[str, Any]:
    """One investigation on I03 as ICAT's REST search answers it, ``users`` its members."""
    def date(moment: datetime) -> str:
        return f"{moment:%Y-%m-%dT%H:%M:%S}.000Z"

    return entity(entity_id, name=visit.split("-")[0], visitId=visit, title=f"ICAT {visit}",
                  startDate=date(NOW - timedelta(days=1)), endDate=date(NOW + timedelta(days=5)),
                  facility=entity(1, name="DLS", fullName="Diamond Light Source"),
                  investigationInstruments=[entity(703, instrument=entity(3, name="I03",
                                                                           fullName="I03"))],
                  investigationUsers=[entity(500 + n, role="experimenter", user=entity(
                      n, name=name, fullName=name)) for n, name in enumerate(users)],
                  datasets=[])


@pytest.fixture
def icat() -> Iterator[FakeIcat]:
    server = FakeIcat([investigation(MX_ID, "MX50001-1", ["scientist"])],
                      scientists={"I03": ["admin"]})
    server.start()
    yield server
    server.stop()


@pytest.fixture
def app(settings_override: dict[str, Any], icat: FakeIcat, tmp_path: Path) -> Iterator[Flask]:
    account = Account()
    credentials = tmp_path / "icat.toml"
    credentials.write_text(f'plugin = "{account.plugin}"\nusername = "{account.username}"\n'
                           f'password = "{account.password}"\n', encoding="utf-8")
    os.chmod(credentials, 0o600)
    application = create_app({
        **settings_override, "provider": "memory", "experiments_backend": "icat",
        "icat_url": icat.url, "icat_credentials_file": str(credentials),
        "icat_cache_seconds": 0})  # nothing kept in memory: every read is the database's
    yield application
    application.extensions["daaas"].engine.dispose()


def worker_look(app: Flask) -> None:
    """What the worker does after a cycle (a fresh set of looks, so all are due)."""
    rt = app.extensions["daaas"]
    Observers(rt.session_factory, rt.settings).run_due()


def experiment_ids(app: Flask, headers: dict[str, str]) -> set[int]:
    answer = app.test_client().get("/api/v1/experiments", headers=headers)
    assert answer.status_code == 200, answer.get_json()
    return {e["id"] for e in answer.get_json()["experiments"]}


def test_no_page_or_api_get_asks_icat(app: Flask, icat: FakeIcat) -> None:
    clients = {}
    for username, password in (("scientist", "scientist-demo"), ("admin", "admin-demo-pass")):
        clients[username] = app.test_client()
        sign_in(clients[username], username, password)
    # A first sign-in asks ICAT once about the user (an action, not a view) and records it.
    assert len(icat.searches()) == 4 and {"'scientist'", "'admin'"} <= {
        q.split("u.name = ")[1].split(" ")[0] for q in icat.searches()}
    icat.requests.clear()
    worker_look(app)  # recorded after the sign-in: not due
    assert icat.searches() == []

    asking: dict[str, list[str]] = {}
    visited: dict[str, list[str]] = {}
    values = {"investigation_id": str(MX_ID), "username": "scientist", "root_key": "storage"}
    for username, client in clients.items():
        api = bearer(app, username)
        for rule in get_routes(app):
            url = fill(rule, values)
            if rule in NOT_VISITED or url is None:
                continue
            before = len(icat.requests)
            assert client.get(url).status_code != 500, url
            if rule.startswith("/api/"):
                assert app.test_client().get(url, headers=api).status_code != 500, url
            if icat.requests[before:]:
                asking[rule] = [f"{r.method} {r.path}" for r in icat.requests[before:]]
            visited.setdefault(username, []).append(rule)
    assert asking == {}, asking
    assert {"/analysis", "/experiments", "/experiments/<id:investigation_id>",
            "/api/v1/experiments/<id:investigation_id>"} <= set(visited["scientist"])
    assert len(visited["admin"]) >= 30
    page = clients["scientist"].get(f"/experiments/{MX_ID}").get_data(as_text=True)
    assert "MX50001-1" in page and icat.requests == []


def test_a_new_experiment_shows_after_a_sign_in_or_the_refresh(app: Flask,
                                                               icat: FakeIcat) -> None:
    headers = bearer(app, "scientist")  # a token, its user never signed in
    answer = app.test_client().get("/api/v1/experiments", headers=headers)
    assert answer.status_code == 503  # nothing recorded: the view says so and asks nothing
    assert answer.get_json()["error"]["code"] == "experiments_not_read_yet"
    assert icat.searches() == []
    worker_look(app)  # the worker records the user (active, never observed)
    assert experiment_ids(app, headers) == {MX_ID}
    asked = len(icat.searches())
    assert asked == 2
    icat.investigations.append(investigation(NEW_ID, "MX50002-1", ["scientist"]))
    assert experiment_ids(app, headers) == {MX_ID}  # as recorded; ICAT not asked again
    worker_look(app)  # not due: observed just now, and no sign-in since
    assert experiment_ids(app, headers) == {MX_ID} and len(icat.searches()) == asked

    sign_in(app.test_client(), "scientist", "scientist-demo")  # a sign-in: due at once
    worker_look(app)
    assert experiment_ids(app, headers) == {MX_ID, NEW_ID}
    assert len(icat.searches()) == asked + 2

    icat.investigations.pop()  # taken off the experiment; seen at the next refresh
    rt = app.extensions["daaas"]
    with unit_of_work(rt.session_factory) as db:  # as if observed one refresh interval ago
        db.execute(update(ObservedExperiments).values(
            observed_at=datetime.now(UTC) - timedelta(seconds=rt.settings.icat_refresh_seconds)))
    worker_look(app)  # the user is active (token used now): asked again
    assert experiment_ids(app, headers) == {MX_ID}
    assert len(icat.searches()) == asked + 4


def test_a_first_sign_in_records_the_experiments_and_survives_icat_down(
        app: Flask, icat: FakeIcat) -> None:
    icat.failing = 500  # ICAT fails: the sign-in still works, and records nothing
    client = app.test_client()
    assert sign_in(client, "scientist", "scientist-demo").status_code == 302
    assert client.get("/analysis").status_code == 200
    assert app.extensions["daaas"].experiments.never_observed("scientist")
    icat.failing = None
    icat.requests.clear()
    other = app.test_client()
    assert sign_in(other, "scientist", "scientist-demo").status_code == 302
    assert len(icat.searches()) == 2  # the first look, at this sign-in
    icat.requests.clear()
    assert MX_ID in {e["id"] for e in other.get("/api/v1/experiments").get_json()["experiments"]}
    assert icat.requests == []  # the view read the record


def test_a_token_made_on_the_command_line_comes_with_the_users_experiments(
        app: Flask, icat: FakeIcat, settings_override: dict[str, Any]) -> None:
    rt = app.extensions["daaas"]
    env = {"DAAAS_DATABASE_URL": settings_override["database_url"],
           "DAAAS_VAR_DIR": settings_override["var_dir"], "DAAAS_EXPERIMENTS_BACKEND": "icat",
           "DAAAS_ICAT_URL": icat.url,
           "DAAAS_ICAT_CREDENTIALS_FILE": rt.settings.icat_credentials_file}
    made = CliRunner().invoke(main, ["tokens", "create", "scientist"], env=env)
    assert made.exit_code == 0, made.output
    assert len(icat.searches()) == 2
    icat.requests.clear()
    headers = {"Authorization": f"Bearer {made.output.strip()}"}
    assert experiment_ids(app, headers) == {MX_ID} and icat.requests == []


def test_a_launch_is_an_action_and_asks_about_a_user_never_recorded(app: Flask,
                                                                     icat: FakeIcat) -> None:
    headers = bearer(app, "scientist")  # never signed in, never observed
    launched = app.test_client().post("/api/v1/machines", headers=headers,
                                      json={"environment": "ccp4", "experiment": MX_ID})
    assert launched.status_code == 202, launched.get_json()
    assert len(icat.searches()) == 2
    icat.requests.clear()
    assert experiment_ids(app, headers) == {MX_ID} and icat.requests == []


def test_an_experiment_no_user_is_on_is_not_asked_about(app: Flask, icat: FakeIcat) -> None:
    client = app.test_client()
    sign_in(client, "admin", "admin-demo-pass")
    icat.investigations.append(investigation(NEW_ID, "MX50002-1", ["nobody"]))
    icat.requests.clear()
    assert client.get(f"/experiments/{NEW_ID}").status_code == 404
    assert client.get(f"/api/v1/experiments/{NEW_ID}").status_code == 404
    assert client.get(f"/experiments/{MX_ID}").status_code == 200  # recorded (a user is on it)
    assert icat.requests == []
