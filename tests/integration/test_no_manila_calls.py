"""No page view or API GET asks Manila (issue 19): every GET route, visited as a user and as an
administrator, with user storage on Manila shares served by a fake Manila API that records every
request (tests/integration/manila_fake.py).

My Data, the quota panel and the machine page show the share's size as last seen by a launch, a
bootstrap exchange or the worker's listing of the portal's shares (:mod:`daaas.portal.observers`).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask

from daaas.portal import create_app
from tests.integration.context_support import Cloud
from tests.integration.manila_fake import ManilaState, manila_cloud
from tests.support.routes import fill, get_routes
from tests.support.web import bearer, sign_in

NOT_VISITED = {"/static/<path:filename>"}


@pytest.fixture
def manila(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[ManilaState]:
    with manila_cloud(tmp_path) as (state, clouds):
        monkeypatch.setenv("OS_CLIENT_CONFIG_FILE", str(clouds))  # openstacksdk's own variable
        yield state


@pytest.fixture
def app(settings_override: dict[str, Any], manila: ManilaState) -> Iterator[Flask]:
    application = create_app({**settings_override, "storage_quota_gb": 20,
                              "storage_backend": "manila", "storage_manila_cloud": "fake"})
    yield application
    application.extensions["daaas"].engine.dispose()


def test_no_page_or_api_get_asks_manila(app: Flask, manila: ManilaState) -> None:
    machine_id, _ = Cloud(app).launch()  # the worker makes the scientist's share
    [share] = manila.shares.values()
    share["size"] = 30  # an administrator extended it since
    manila.requests.clear()

    asking: dict[str, list[tuple[str, str]]] = {}
    visited: dict[str, list[str]] = {}
    for username, password in (("scientist", "scientist-demo"), ("admin", "admin-demo-pass")):
        client = app.test_client()
        sign_in(client, username, password)
        api = bearer(app, username)
        values = {"machine_id": machine_id, "username": "scientist", "root_key": "storage"}
        for rule in get_routes(app):
            url = fill(rule, values)
            if rule in NOT_VISITED or url is None:
                continue
            before = len(manila.requests)
            assert client.get(url).status_code != 500, url
            if rule.startswith("/api/"):
                assert app.test_client().get(url, headers=api).status_code != 500, url
            if manila.requests[before:]:
                asking[rule] = manila.requests[before:]
            visited.setdefault(username, []).append(rule)
    assert asking == {}, asking
    assert {"/my-data/", "/machines/<machine_id>"} <= set(visited["scientist"]), visited
    assert len(visited["admin"]) >= 30

    client = app.test_client()
    sign_in(client, "scientist", "scientist-demo")
    assert "of 20.0 GiB" in client.get("/my-data/").get_data(as_text=True)  # as the launch saw it
    Cloud(app).worker.run_once()  # the worker's cycle lists the portal's shares (one request)
    assert [p for m, p in manila.requests if m == "GET" and "/shares" in p] == [
        "/v2/shares/detail"], manila.requests
    manila.requests.clear()
    assert "of 30.0 GiB" in client.get("/my-data/").get_data(as_text=True)
    assert manila.requests == []
