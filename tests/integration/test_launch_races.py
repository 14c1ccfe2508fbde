"""Launch limits that hold under truly concurrent requests, on SQLite and PostgreSQL.

The portal is served by a threading werkzeug server on 127.0.0.1 and the requests come from
threads released together by a barrier: identical launches with one Idempotency-Key make one
machine, six launches against a limit of three make three machines and three refusals, and a
launch form sent twice (a double click) makes one machine. The machines stay 'requested'
(no reconciler runs; the provider is the in-memory double), so no desktop starts.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest
import requests
from flask import Flask
from sqlalchemy import func, select

from daaas.portal.auth.service import get_user
from daaas.portal.db import unit_of_work
from daaas.portal.machines.models import LaunchKey, Machine
from tests.support.machines import at_once
from tests.support.web import bearer, browser_signed_in, served

LIMIT = 3


@pytest.fixture
def settings_override(settings_override: dict[str, Any]) -> dict[str, Any]:
    """The in-memory provider (CCP4 cannot run on this host's desktops) and a limit of 3."""
    return {**settings_override, "provider": "memory", "max_machines_per_user": LIMIT}


@pytest.fixture
def server(app: Flask) -> Iterator[str]:
    """The portal served by a threading werkzeug server; yields its base URL."""
    with served(app) as base:
        yield base


def machines_of(app: Flask, username: str) -> list[Machine]:
    with unit_of_work(app.extensions["daaas"].session_factory) as db:
        user = get_user(db, username)
        return list(db.scalars(select(Machine).where(Machine.user_id == user.id)))


def launch(server: str, headers: dict[str, str], body: dict[str, Any],
           browser: requests.Session | None = None) -> requests.Response:
    return (browser or requests).post(f"{server}/api/v1/machines", json=body, headers=headers,
                                      timeout=60)


def test_two_identical_launches_at_once_make_one_machine(app: Flask, server: str) -> None:
    browser, page_headers = browser_signed_in(server)
    headers = {**page_headers, "Idempotency-Key": "same-click-3f1c"}
    answers = at_once(2, lambda _i: launch(server, headers, {"environment": "ccp4"}, browser))
    assert sorted(a.status_code for a in answers) == [200, 202], [a.text for a in answers]
    assert len({a.json()["id"] for a in answers}) == 1
    replayed = next(a for a in answers if a.status_code == 200)
    assert replayed.headers["Idempotent-Replayed"] == "true"
    assert [m.id for m in machines_of(app, "scientist")] == [answers[0].json()["id"]]
    again = launch(server, headers, {"environment": "ccp4"}, browser)
    assert again.status_code == 200 and again.json()["id"] == answers[0].json()["id"]
    # a script's token is the same user: the key is theirs too
    script = launch(server, {**bearer(app, "scientist"), "Idempotency-Key": "same-click-3f1c"},
                    {"environment": "ccp4"})
    assert script.status_code == 200 and script.json()["id"] == answers[0].json()["id"]


def test_six_launches_at_once_with_a_limit_of_three(app: Flask, server: str) -> None:
    browser, headers = browser_signed_in(server)
    answers = at_once(6, lambda i: launch(server, {**headers, "Idempotency-Key": f"k{i}"},
                                          {"environment": "ccp4"}, browser))
    codes = sorted(a.status_code for a in answers)
    assert codes == [202, 202, 202, 409, 409, 409], [a.text for a in answers]
    for refused in (a for a in answers if a.status_code == 409):
        error = refused.json()["error"]
        assert error["code"] == "limit_reached"
        assert f"You already have {LIMIT} machines, the most this site allows" in \
            error["message"]
    assert len(machines_of(app, "scientist")) == LIMIT
    with unit_of_work(app.extensions["daaas"].session_factory) as db:
        assert db.scalar(select(func.count(LaunchKey.id))) == LIMIT  # refused keys not kept


def test_six_launches_at_once_without_keys_also_stop_at_the_limit(app: Flask,
                                                                  server: str) -> None:
    tokens = [bearer(app, "neutron") for _ in range(6)]  # one script's token each
    answers = at_once(6, lambda i: launch(server, tokens[i], {"environment": "mantid"}))
    assert sorted(a.status_code for a in answers) == [202] * LIMIT + [409] * (6 - LIMIT)
    assert len(machines_of(app, "neutron")) == LIMIT


def test_failed_machines_do_not_count_and_a_refused_key_can_be_used_again(
        app: Flask, server: str) -> None:
    token = bearer(app, "scientist")
    made = [launch(server, {**token, "Idempotency-Key": f"a{i}"}, {"environment": "ccp4"})
            for i in range(LIMIT)]
    assert [m.status_code for m in made] == [202] * LIMIT
    refused = launch(server, {**token, "Idempotency-Key": "later"}, {"environment": "ccp4"})
    assert refused.status_code == 409
    with unit_of_work(app.extensions["daaas"].session_factory) as db:
        db.get_one(Machine, made[0].json()["id"]).state = "error"  # as a failed launch ends
    admitted = launch(server, {**token, "Idempotency-Key": "later"}, {"environment": "ccp4"})
    assert admitted.status_code == 202, admitted.text


def test_the_same_key_with_another_body_is_refused(app: Flask, server: str) -> None:
    headers = {**bearer(app, "scientist"), "Idempotency-Key": "key-1"}
    first = launch(server, headers, {"environment": "ccp4"})
    assert first.status_code == 202
    other = launch(server, headers, {"environment": "ccp4", "flavor": "m1.large"})
    assert other.status_code == 422
    assert other.json()["error"]["code"] == "idempotency_key_reused"
    assert "already used for a different launch" in other.json()["error"]["message"]
    # another user's identical key is theirs: a machine of their own
    theirs = launch(server, {**bearer(app, "neutron"), "Idempotency-Key": "key-1"},
                    {"environment": "mantid"})
    assert theirs.status_code == 202 and theirs.json()["id"] != first.json()["id"]
    for bad in ["x" * 201, "has space", "tab\there"]:
        answer = launch(server, {**headers, "Idempotency-Key": bad}, {"environment": "ccp4"})
        assert answer.status_code == 400 and "Idempotency-Key" in answer.json()["error"]["message"]
    assert len(machines_of(app, "scientist")) == 1


def test_a_double_clicked_launch_form_makes_one_machine(app: Flask, server: str) -> None:
    browser = browser_signed_in(server)[0]
    page = browser.get(f"{server}/analysis", timeout=30).text
    form = re.search(r'<form class="launch".*?</form>', page, re.S)
    assert form
    fields = dict(re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)"',
                             form.group(0)))
    assert len(fields["launch_id"]) >= 20
    other = re.findall(r'name="launch_id" value="([^"]+)"', page)
    assert len(set(other)) == len(other) > 1  # one id per card: each card launches its own
    answers = at_once(2, lambda _i: browser.post(f"{server}/machines", data=fields,
                                                 allow_redirects=False, timeout=60))
    assert [a.status_code for a in answers] == [303, 303], [a.text[:300] for a in answers]
    assert answers[0].headers["Location"] == answers[1].headers["Location"]
    assert len(machines_of(app, "scientist")) == 1
    fresh = browser.get(f"{server}/analysis", timeout=30).text
    assert fields["launch_id"] not in fresh  # a new page, new ids: a new launch
