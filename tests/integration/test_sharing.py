"""Shared desktops through the web: members and roles, 404 for everyone else, invitations by
username and by one-time link, Shared with me, the e-mail to the invitee, revocation and the
events and audit rows each change leaves."""

from __future__ import annotations

import re
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import select

from daaas.portal.audit.models import AuditEvent
from daaas.portal.db import unit_of_work
from daaas.portal.experiments.models import IcatUser, Investigation, InvestigationUser
from daaas.portal.machines.models import AccessToken, Machine
from daaas.portal.notifications.models import Notification
from tests.support.access import make_machine
from tests.support.sharing import Person, events


@pytest.fixture
def settings_override(settings_override: dict[str, Any]) -> dict[str, Any]:
    return {**settings_override, "provider": "memory"}


def token_roles(app: Flask, machine_id: str) -> list[str]:
    with unit_of_work(app.extensions["daaas"].session_factory) as db:
        return list(db.scalars(select(AccessToken.role).where(
            AccessToken.machine_id == machine_id).order_by(AccessToken.id)))


def test_non_members_get_404_members_get_the_desktop_as_their_role(app: Flask) -> None:
    machine_id = make_machine(app, "scientist")
    owner, guest = Person(app, "scientist"), Person(app, "neutron")
    for response in (guest.client.get(f"/machines/{machine_id}"),
                     guest.client.get(f"/machines/{machine_id}/desktop"),
                     guest.api("GET", f"/machines/{machine_id}"),
                     guest.api("POST", f"/machines/{machine_id}/access"),
                     guest.api("GET", f"/machines/{machine_id}/desktop-status"),
                     guest.api("GET", f"/machines/{machine_id}/sharing"),
                     guest.api("POST", f"/machines/{machine_id}/members",
                               {"username": "neutron", "role": "user"})):
        assert response.status_code == 404, response.request.path
    assert owner.api("POST", f"/machines/{machine_id}/members",
                     {"username": "neutron", "role": "viewer"}).status_code == 201
    page = guest.client.get(f"/machines/{machine_id}/desktop")
    assert page.status_code == 200
    text = page.get_data(as_text=True)
    assert "shared this desktop with you as a viewer" in text
    assert 'id="share-toggle"' in text and ">People" in text
    assert guest.api("POST", f"/machines/{machine_id}/access").status_code == 201
    assert guest.api("GET", f"/machines/{machine_id}/desktop-status").status_code == 200
    assert token_roles(app, machine_id) == ["viewer"]
    sharing = guest.api("GET", f"/machines/{machine_id}/sharing").get_json()
    assert sharing["role"] == "viewer" and sharing["links"] == []
    assert sharing["owner_away"] is None
    # a member cannot delete, stop, extend, rename nor share the machine
    assert guest.api("DELETE", f"/machines/{machine_id}").status_code == 404
    assert guest.api("POST", f"/machines/{machine_id}/stop").status_code == 404
    assert guest.api("POST", f"/machines/{machine_id}/members",
                     {"username": "admin", "role": "user"}).status_code == 403
    assert guest.api("POST", f"/machines/{machine_id}/links",
                     {"kind": "view"}).status_code == 403
    assert owner.api("POST", f"/machines/{machine_id}/access").status_code == 201
    assert token_roles(app, machine_id) == ["viewer", "owner"]


def test_shared_with_me_and_the_invitees_email(app: Flask) -> None:
    machine_id = make_machine(app, "scientist")
    owner, guest = Person(app, "scientist"), Person(app, "neutron")
    assert "Shared with me" not in guest.client.get("/analysis").get_data(as_text=True)
    owner.api("POST", f"/machines/{machine_id}/members", {"username": "neutron", "role": "user"})
    page = guest.client.get("/analysis").get_data(as_text=True)
    assert "Shared with me" in page
    assert f'href="/machines/{machine_id}/desktop"' in page
    [shared] = guest.api("GET", "/shared").get_json()["machines"]
    assert shared == {"machine_id": machine_id, "name": shared["name"], "owner": "scientist",
                      "role": "user", "state": "ready",
                      "desktop_url": f"/machines/{machine_id}/desktop"}
    assert shared["name"] and shared["name"] in page
    assert owner.api("GET", "/shared").get_json()["machines"] == []
    with unit_of_work(app.extensions["daaas"].session_factory) as db:
        mail = db.scalars(select(Notification).where(Notification.kind == "shared")).one()
        assert mail.subject.startswith("Dr Ada Crystal shared a desktop with you")
        assert "as user" in mail.body and "do not get their storage" in mail.body


def test_roles_change_and_members_are_removed_with_events_and_audit(app: Flask) -> None:
    machine_id = make_machine(app, "scientist")
    owner, guest = Person(app, "scientist"), Person(app, "neutron")
    base = f"/machines/{machine_id}"
    assert owner.api("POST", f"{base}/members",
                     {"username": "nobody", "role": "user"}).status_code == 400
    assert owner.api("POST", f"{base}/members",
                     {"username": "scientist", "role": "user"}).status_code == 400
    assert owner.api("POST", f"{base}/members",
                     {"username": "neutron", "role": "owner"}).status_code == 400
    owner.api("POST", f"{base}/members", {"username": "neutron", "role": "viewer"})
    reply = owner.api("POST", f"{base}/members", {"username": "neutron", "role": "user"})
    assert [m["role"] for m in reply.get_json()["members"]] == ["user"]
    guest.api("POST", f"{base}/access")  # an unused token, deleted on removal
    assert owner.api("DELETE", f"{base}/members/neutron").status_code == 204
    assert token_roles(app, machine_id) == []
    assert guest.client.get(f"{base}/desktop").status_code == 404
    assert owner.api("DELETE", f"{base}/members/neutron").status_code == 404
    messages = events(app, machine_id)
    assert "shared with neutron as viewer by scientist" in messages
    assert "neutron is now user (was changed by scientist)" in messages
    assert "neutron removed from the members by scientist" in messages
    with unit_of_work(app.extensions["daaas"].session_factory) as db:
        actions = set(db.scalars(select(AuditEvent.action).where(
            AuditEvent.target == f"machine {machine_id}")))
    assert {"sharing.invite", "sharing.role", "sharing.revoke"} <= actions


def test_a_member_may_leave(app: Flask) -> None:
    machine_id = make_machine(app, "scientist")
    owner, guest = Person(app, "scientist"), Person(app, "neutron")
    owner.api("POST", f"/machines/{machine_id}/members", {"username": "neutron", "role": "user"})
    owner.api("POST", f"/machines/{machine_id}/members", {"username": "admin", "role": "user"})
    assert guest.api("DELETE", f"/machines/{machine_id}/members/admin").status_code == 403
    assert guest.api("DELETE", f"/machines/{machine_id}/members/neutron").status_code == 204
    assert guest.client.get(f"/machines/{machine_id}/desktop").status_code == 404


def test_an_invitation_link_works_once(app: Flask) -> None:
    machine_id = make_machine(app, "scientist")
    owner, guest, other = (Person(app, "scientist"), Person(app, "neutron"),
                           Person(app, "admin"))
    made = owner.api("POST", f"/machines/{machine_id}/links", {"kind": "invite", "role": "user"})
    assert made.status_code == 201
    url = made.get_json()["url"]
    path = url[url.index("/share/"):]
    assert owner.api("GET", f"/machines/{machine_id}/sharing").get_json()["links"][0]["kind"] \
        == "invite"
    own = owner.client.get(path).get_data(as_text=True)
    assert "This is your own machine's invitation" in own
    page = guest.client.get(path)
    assert page.status_code == 200 and "Join as user" in page.get_data(as_text=True)
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', page.get_data(as_text=True))
    assert csrf
    joined = guest.client.post(path, data={"csrf_token": csrf.group(1)})
    assert joined.status_code == 302
    assert joined.headers["Location"].endswith(f"/machines/{machine_id}/desktop")
    assert guest.client.get(f"/machines/{machine_id}/desktop").status_code == 200
    assert other.client.get(path).status_code == 404
    again = other.client.post(path, data={"csrf_token": other.csrf})
    assert again.status_code == 404
    assert other.api("GET", f"/machines/{machine_id}/sharing").status_code == 200  # admin
    sharing = owner.api("GET", f"/machines/{machine_id}/sharing").get_json()
    assert [(m["username"], m["role"]) for m in sharing["members"]] == [("neutron", "user")]
    assert sharing["links"] == []
    assert any("invitation link" in m and "used by neutron" in m
               for m in events(app, machine_id))


def test_a_revoked_link_and_a_view_link_without_the_owner(app: Flask) -> None:
    machine_id = make_machine(app, "scientist")
    owner, guest = Person(app, "scientist"), Person(app, "neutron")
    invite = owner.api("POST", f"/machines/{machine_id}/links", {"kind": "invite"}).get_json()
    assert owner.api("DELETE", f"/machines/{machine_id}/links/{invite['id']}").status_code \
        == 204
    assert guest.client.get(invite["url"][invite["url"].index("/share/"):]).status_code == 404
    view = owner.api("POST", f"/machines/{machine_id}/links", {"kind": "view"}).get_json()
    assert view["expires_at"] is None and view["role"] == "viewer"
    path = view["url"][view["url"].index("/share/"):]
    page = guest.client.get(path).get_data(as_text=True)
    assert "through a view-only link" in page
    assert f'data-access-url="/api/v1{path}/access"' in page
    refused = guest.api("POST", f"{path}/access")
    assert refused.status_code == 409 and "not connected" in refused.get_json()["error"]["message"]
    status = guest.api("GET", f"{path}/desktop-status").get_json()
    assert status["state"] == "ready" and "not connected" in status["message"]
    assert guest.api("GET", "/share/nonsense/desktop-status").status_code == 404


def test_the_experiments_other_members_are_suggested(app: Flask) -> None:
    rt = app.extensions["daaas"]
    with unit_of_work(rt.session_factory) as db:
        investigation = db.scalars(select(Investigation).where(
            Investigation.visit_id == "MX31850-12")).one()
        neutron = db.scalars(select(IcatUser).where(IcatUser.name == "neutron")).one()
        db.add(InvestigationUser(investigation_id=investigation.id, user_id=neutron.id))
        experiment_id = investigation.id
    machine_id = make_machine(app, "scientist")
    plain_id = make_machine(app, "scientist")
    with unit_of_work(rt.session_factory) as db:
        machine = db.get(Machine, machine_id)
        assert machine is not None
        machine.experiment_id = experiment_id
    owner, guest = Person(app, "scientist"), Person(app, "neutron")
    base = f"/machines/{machine_id}/sharing/suggestions"
    assert owner.api("GET", base).get_json() == {
        "experiment": "MX31850-12",
        "users": [{"username": "neutron", "display_name": "Dr Ben Neutron"}]}
    assert owner.api("GET", f"/machines/{plain_id}/sharing/suggestions").get_json() == {
        "experiment": "", "users": []}
    assert guest.api("GET", base).status_code == 404
    owner.api("POST", f"/machines/{machine_id}/members", {"username": "neutron", "role": "user"})
    assert owner.api("GET", base).get_json()["users"] == []
    assert guest.api("GET", base).status_code == 403
