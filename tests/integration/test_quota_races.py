"""Group quotas that hold under truly concurrent launches, on SQLite and PostgreSQL.

Two members of the group 'beamline-i03', whose quota allows 2 NVIDIA A100 GPUs, send four GPU
launches each at once (released together by a barrier, on a threading server): exactly two
machines are recorded and every refusal names the group's GPU quota. Each user's own launch
lock does not serialise the two users; only the group's lock does. A stopped machine holds no
GPU, and starting it again is weighed like a launch.
"""

from __future__ import annotations

import html
import re
import threading
from collections.abc import Iterator
from typing import Any

import pytest
import requests
from flask import Flask
from sqlalchemy import select

from daaas.portal.auth.service import create_user, get_user
from daaas.portal.db import unit_of_work
from daaas.portal.machines import service
from daaas.portal.machines.models import Machine
from daaas.portal.quotas.service import QuotaExceeded
from tests.support.machines import at_once
from tests.support.web import browser_signed_in, served

GROUP = "beamline-i03"
REFUSAL = (f"Launch refused: group '{GROUP}' GPU quota (NVIDIA A100) is 2 and 2 are in use. "
           "Delete or stop a machine, or ask an administrator.")


@pytest.fixture
def settings_override(settings_override: dict[str, Any]) -> dict[str, Any]:
    """The in-memory provider, a machine limit that does not interfere, and the group's
    quota of two A100 GPUs."""
    return {**settings_override, "provider": "memory", "max_machines_per_user": 10,
            "quotas": f"group {GROUP}: gpu:NVIDIA A100=2, vcpus=1000"}


@pytest.fixture
def server(app: Flask) -> Iterator[str]:
    """Two members of the group (scientist and a new user, crystal), then the portal served
    by a threading werkzeug server; yields its base URL."""
    rt = app.extensions["daaas"]
    with unit_of_work(rt.session_factory) as db:
        get_user(db, "scientist").groups = ["diamond-users", GROUP]
        create_user(db, rt.settings, "crystal", "crystal-demo", groups=[GROUP],
                    instruments=["I12"])
    with served(app) as base:
        yield base


def gpu_machines(app: Flask) -> list[Machine]:
    with unit_of_work(app.extensions["daaas"].session_factory) as db:
        return list(db.scalars(select(Machine).where(Machine.flavor == "g1.a100-1")))


def test_two_members_launching_at_once_never_exceed_the_group_gpu_quota(
        app: Flask, server: str) -> None:
    people = [browser_signed_in(server, name) for name in ("scientist", "crystal")]

    def launch(i: int) -> requests.Response:
        browser, headers = people[i % 2]
        return browser.post(f"{server}/api/v1/machines", timeout=60,
                            headers={**headers, "Idempotency-Key": f"gpu-{i}"},
                            json={"environment": "tomography-gpu", "flavor": "g1.a100-1"})

    answers = at_once(8, launch)
    codes = sorted(a.status_code for a in answers)
    assert codes == [202, 202] + [409] * 6, [a.text for a in answers]
    for refused in (a for a in answers if a.status_code == 409):
        assert refused.json()["error"] == {"code": "quota_exceeded", "message": REFUSAL}
    assert len(gpu_machines(app)) == 2


def test_a_stopped_machine_holds_no_gpu_and_starting_it_counts(app: Flask,
                                                               server: str) -> None:
    browser, headers = browser_signed_in(server, "scientist")
    other, other_headers = browser_signed_in(server, "crystal")
    body = {"environment": "tomography-gpu", "flavor": "g1.a100-1"}
    first = browser.post(f"{server}/api/v1/machines", json=body, headers=headers, timeout=60)
    second = other.post(f"{server}/api/v1/machines", json=body, headers=other_headers,
                        timeout=60)
    assert (first.status_code, second.status_code) == (202, 202)
    with unit_of_work(app.extensions["daaas"].session_factory) as db:
        db.get_one(Machine, first.json()["id"]).state = "stopped"  # as a finished stop leaves it
    third = other.post(f"{server}/api/v1/machines", json=body, headers=other_headers,
                       timeout=60)
    assert third.status_code == 202, third.text  # the stopped machine's GPU was free
    start = browser.post(f"{server}/api/v1/machines/{first.json()['id']}/start",
                         headers=headers, timeout=60)
    assert start.status_code == 409, start.text
    assert start.json()["error"]["message"] == REFUSAL.replace("Launch", "Start")
    page = browser.post(f"{server}/machines/{first.json()['id']}/start", timeout=60,
                        headers={"X-CSRF-Token": headers["X-CSRF-Token"]},
                        allow_redirects=False)  # the machine page's Start button
    assert page.status_code == 409
    shown = re.search(r'id="start-error">([^<]*)<', page.text)
    assert shown and html.unescape(shown.group(1)) == REFUSAL.replace("Launch", "Start")
    with unit_of_work(app.extensions["daaas"].session_factory) as db:
        assert db.get_one(Machine, first.json()["id"]).state == "stopped"
        db.get_one(Machine, third.json()["id"]).state = "error"  # a failed launch frees it
    again = browser.post(f"{server}/api/v1/machines/{first.json()['id']}/start",
                         headers=headers, timeout=60)
    assert again.status_code == 202, again.text


def test_a_members_launch_waits_for_the_other_members_uncommitted_one(app: Flask) -> None:
    """The group's lock, step by step: scientist's launch takes the group's last GPU and
    holds its transaction open; crystal's launch (another user: another launch lock) waits
    for it, then is refused. Without the group's lock it would count one GPU in use, not two,
    and be admitted."""
    rt = app.extensions["daaas"]
    with unit_of_work(rt.session_factory) as db:
        get_user(db, "scientist").groups = ["diamond-users", GROUP]
        crystal = create_user(db, rt.settings, "crystal", "crystal-demo", groups=[GROUP],
                              instruments=["I12"])
        service.launch(db, rt.settings, rt.catalogue, crystal, "tomography-gpu", "g1.a100-1")
    admitted, release, done = threading.Event(), threading.Event(), threading.Event()
    outcome: list[BaseException | None] = []

    def first() -> None:
        with unit_of_work(rt.session_factory) as db:
            service.launch(db, rt.settings, rt.catalogue, get_user(db, "scientist"),
                           "tomography-gpu", "g1.a100-1")
            admitted.set()
            release.wait(20)

    def second() -> None:
        try:
            with unit_of_work(rt.session_factory) as db:
                service.launch(db, rt.settings, rt.catalogue, get_user(db, "crystal"),
                               "tomography-gpu", "g1.a100-1")
            outcome.append(None)
        except BaseException as exc:  # the refusal is what is looked for
            outcome.append(exc)
        done.set()

    holder = threading.Thread(target=first)
    holder.start()
    assert admitted.wait(20)
    waiter = threading.Thread(target=second)
    waiter.start()
    assert not done.wait(1.0), f"the second launch did not wait: {outcome}"
    release.set()
    holder.join(20)
    waiter.join(20)
    assert isinstance(outcome[0], QuotaExceeded), outcome
    assert outcome[0].user_message == REFUSAL
    assert len(gpu_machines(app)) == 2
