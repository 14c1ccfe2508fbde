"""Support access with support_emergency_access off: an administrator gets the desktop only
after asking and the owner accepting, through the same membership as anyone; the request and
the answer are events and audit rows, and the owner is e-mailed."""

from __future__ import annotations

import re
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import select

from daaas.portal.audit.models import AuditEvent
from daaas.portal.db import unit_of_work
from daaas.portal.notifications.models import Notification
from tests.support.access import make_machine
from tests.support.sharing import Person, events


@pytest.fixture
def settings_override(settings_override: dict[str, Any]) -> dict[str, Any]:
    return {**settings_override, "provider": "memory", "support_emergency_access": False}


def test_an_administrator_asks_and_the_owner_accepts(app: Flask) -> None:
    machine_id = make_machine(app, "scientist")
    owner, admin = Person(app, "scientist"), Person(app, "admin")
    base = f"/machines/{machine_id}"
    assert admin.api("POST", f"{base}/access").status_code == 404
    page = admin.client.get(f"{base}/desktop")
    assert page.status_code == 200 and 'id="ask-support"' in page.get_data(as_text=True)
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', page.get_data(as_text=True))
    assert csrf
    asked = admin.client.post(f"{base}/support", data={"csrf_token": csrf.group(1)})
    assert 'id="support-asked"' in asked.get_data(as_text=True)
    assert admin.api("POST", f"{base}/access").status_code == 404, "not before acceptance"
    [request] = owner.api("GET", f"{base}/sharing").get_json()["support_requests"]
    assert request["username"] == "admin"
    assert owner.api("POST", f"{base}/support-requests/{request['id']}/accept").status_code \
        == 200
    assert admin.api("POST", f"{base}/access").status_code == 201
    assert owner.api("GET", f"{base}/sharing").get_json()["support_requests"] == []
    assert "support access for admin accepted by scientist" in events(app, machine_id)
    with unit_of_work(app.extensions["daaas"].session_factory) as db:
        mail = db.scalars(select(Notification).where(
            Notification.kind == "support_request")).one()
        assert "asks for access to your desktop" in mail.body
        assert db.scalars(select(AuditEvent).where(AuditEvent.action == "sharing.support",
                                                   AuditEvent.admin.is_(True))).first()


def test_the_owner_refuses_and_others_cannot_ask_or_answer(app: Flask) -> None:
    machine_id = make_machine(app, "scientist")
    owner, admin, other = Person(app, "scientist"), Person(app, "admin"), Person(app, "neutron")
    base = f"/machines/{machine_id}"
    assert other.api("POST", f"{base}/support-requests").status_code == 403
    request = admin.api("POST", f"{base}/support-requests").get_json()
    assert admin.api("POST", f"{base}/support-requests").get_json()["id"] == request["id"]
    assert admin.api("POST", f"{base}/support-requests/{request['id']}/accept").status_code \
        == 403, "an administrator cannot accept for the owner"
    assert owner.api("DELETE", f"{base}/support-requests/{request['id']}").status_code == 204
    assert admin.api("POST", f"{base}/access").status_code == 404
    assert "support access for admin refused by scientist" in events(app, machine_id)
