"""Machine lifetimes: the policy at launch, extensions (at once, beyond the policy, by an
administrator's approval), warnings and expiry in the reconciler with a controllable clock,
and the outbox's e-mail written to the embedded Maildir (real SQLite and PostgreSQL, the
in-memory provider double)."""

from __future__ import annotations

import email
import email.policy
import mailbox
from datetime import datetime, timedelta
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import update

from daaas.portal import create_app
from daaas.portal.auth.models import User
from daaas.portal.db import unit_of_work, utcnow
from daaas.portal.machines.models import Machine
from daaas.portal.notifications.mail import MailError
from tests.support.machines import ManualClock as Clock
from tests.support.machines import launch, machine, on_the_page, outbox, ready_while_watched
from tests.support.machines import policy_worker as worker
from tests.support.web import bearer, csrf_from, sign_in

H = timedelta(hours=1)


@pytest.fixture
def app(settings_override: dict[str, Any]) -> Flask:
    """A portal on the memory provider, warning 48 h and 2 h before expiry, with the demo
    users given e-mail addresses (no idle stop: the clock jumps hours without a desktop)."""
    application = create_app({**settings_override, "provider": "memory", "idle_stop": False,
                              "expiry_warning_hours": "48, 2",
                              "public_url": "https://daaas.example.org/"})
    with unit_of_work(application.extensions["daaas"].session_factory) as db:
        for name in ("scientist", "neutron", "admin"):
            db.execute(update(User).where(User.username == name)
                       .values(email=f"{name}@example.org"))
    return application


def maildir(app: Flask) -> list[EmailMessage]:
    """The messages in the embedded Maildir (var_dir/mail), decoded."""
    path = Path(app.extensions["daaas"].settings.var_dir) / "mail"
    if not path.exists():
        return []
    box = mailbox.Maildir(path, create=False)
    return [email.message_from_bytes(box.get_bytes(key), _class=EmailMessage,
                                     policy=email.policy.default) for key in box.iterkeys()]




def set_expiry(app: Flask, machine_id: str, when: datetime) -> None:
    with unit_of_work(app.extensions["daaas"].session_factory) as db:
        db.execute(update(Machine).where(Machine.id == machine_id).values(expires_at=when))


def test_a_launch_lives_the_initial_lifetime_and_the_api_says_how_long(app: Flask) -> None:
    machine_id = launch(app, environment="ccp4")
    row = machine(app, machine_id)
    assert row.expires_at - row.created_at == 72 * H
    body = app.test_client().get(f"/api/v1/machines/{machine_id}",
                                 headers=bearer(app, "scientist")).get_json()
    assert body["lifetime"] == {
        "expires_at": row.expires_at.isoformat(),
        "latest_end": (row.created_at + 336 * H).isoformat(), "extension": "auto",
        "extension_hours": 24.0, "can_extend": False, "extension_pending": False,
        "idle_stop_at": None, "keep_running_until": None, "keep_running_limit": None}
    assert body["links"]["extend"] == f"/api/v1/machines/{machine_id}/extend"


def test_extend_within_the_policy_then_409_beyond_it(app: Flask) -> None:
    clock = Clock()
    machine_id = launch(app, environment="ccp4")
    worker(app, clock).run_once()
    client, auth = app.test_client(), bearer(app, "scientist")
    before = machine(app, machine_id).expires_at
    answer = client.post(f"/api/v1/machines/{machine_id}/extend", headers=auth)
    assert answer.status_code == 200, answer.get_json()
    after = datetime.fromisoformat(answer.get_json()["expires_at"])
    assert after - before == 24 * H
    assert "life extended by 1 day" in machine(app, machine_id).events[-1].message
    created = machine(app, machine_id).created_at
    set_expiry(app, machine_id, created + 330 * H)
    assert client.post(f"/api/v1/machines/{machine_id}/extend",
                       headers=auth).status_code == 200
    assert machine(app, machine_id).expires_at == created + 336 * H  # not 354: the maximum
    refused = client.post(f"/api/v1/machines/{machine_id}/extend", headers=auth)
    assert refused.status_code == 409
    assert "already lives as long as its policy allows (14 days" in \
        refused.get_json()["error"]["message"]
    events = [e.message for e in machine(app, machine_id).events if "extended" in e.message]
    assert len(events) == 2


def test_only_the_owner_extends_and_not_a_deleted_machine(app: Flask) -> None:
    machine_id = launch(app, environment="ccp4")
    worker(app, Clock()).run_once()
    client = app.test_client()
    assert client.post(f"/api/v1/machines/{machine_id}/extend",
                       headers=bearer(app, "neutron")).status_code == 404
    assert client.post(f"/api/v1/machines/{machine_id}/extend",
                       headers=bearer(app, "admin")).status_code == 403
    client.delete(f"/api/v1/machines/{machine_id}", headers=bearer(app, "scientist"))
    gone = client.post(f"/api/v1/machines/{machine_id}/extend", headers=bearer(app, "scientist"))
    assert gone.status_code == 409 and "deleting" in gone.get_json()["error"]["message"]


def admin_client(app: Flask) -> FlaskClient:
    client = app.test_client()
    sign_in(client, "admin", "admin-demo-pass")
    return client


def test_approval_flow_pending_then_approved_or_refused_and_the_owner_is_told(
        app: Flask) -> None:
    clock = Clock()
    reconciler = worker(app, clock)
    machine_id = launch(app, environment="tomography-gpu")
    reconciler.run_once()
    client, auth = app.test_client(), bearer(app, "scientist")
    before = machine(app, machine_id).expires_at
    asked = client.post(f"/api/v1/machines/{machine_id}/extend", headers=auth)
    assert asked.status_code == 202
    assert asked.get_json()["lifetime"]["extension_pending"] is True
    assert client.post(f"/api/v1/machines/{machine_id}/extend",
                       headers=auth).status_code == 202  # the same request, not a second
    assert machine(app, machine_id).expires_at == before
    admin = admin_client(app)
    page = admin.get("/admin/extensions").get_data(as_text=True)
    assert page.count('data-request="') == 1 and machine_id in page
    row = page.split('<tr data-request="')[1].split("</tr>")[0]
    assert f"· {machine(app, machine_id).flavor}</span>" in row  # environment and flavor
    lifetimes = admin.get("/admin/lifetimes").get_data(as_text=True)
    assert lifetimes.split('<tr data-request="')[1].split("</tr>")[0] == row  # one table
    for shown in (page, lifetimes):
        label = shown.split('id="extension-requests" aria-labelledby="')[1].split('"')[0]
        assert f'id="{label}"' in shown
    assert app.test_client().get("/admin/extensions", headers=auth).status_code == 403
    request_id = int(page.split('data-request="')[1].split('"')[0])
    token = csrf_from(admin, "/admin/extensions")
    done = admin.post(f"/admin/extensions/{request_id}",
                      data={"csrf_token": token, "decision": "approve", "reason": ""})
    assert done.status_code == 303
    assert machine(app, machine_id).expires_at - before == 12 * H
    assert "approved by admin" in machine(app, machine_id).events[-1].message
    again = admin.post(f"/admin/extensions/{request_id}",
                       data={"csrf_token": token, "decision": "refuse"})
    assert again.status_code == 409  # decided once

    client.post(f"/api/v1/machines/{machine_id}/extend", headers=auth)
    page = admin.get("/admin/extensions").get_data(as_text=True)
    second = int(page.split('data-request="')[1].split('"')[0])
    admin.post(f"/admin/extensions/{second}", data={
        "csrf_token": token, "decision": "refuse", "reason": "The A100s are booked for I12."})
    assert machine(app, machine_id).expires_at - before == 12 * H
    assert "extension refused by admin: The A100s are booked" in \
        machine(app, machine_id).events[-1].message

    reconciler.run_once()  # the worker sends the outbox
    mails = {m["Subject"]: m for m in maildir(app)}
    approved = mails[f"Extension of '{machine(app, machine_id).name}' approved"]
    refused = mails[f"Extension of '{machine(app, machine_id).name}' refused"]
    assert approved["To"] == refused["To"] == "scientist@example.org"
    assert f"https://daaas.example.org/machines/{machine_id}" in approved.get_content()
    assert "The A100s are booked for I12." in refused.get_content()


def test_warnings_at_the_configured_times_once_each_then_expiry_keeps_storage(
        app: Flask) -> None:
    clock, reconciler, machine_id = ready_while_watched(app)
    assert machine(app, machine_id).state == "ready"
    storage = Path(app.extensions["daaas"].settings.var_dir) / "storage" / "scientist"
    storage.mkdir(parents=True, exist_ok=True)
    (storage / "results.txt").write_text("keep me")
    end = machine(app, machine_id).expires_at
    clock.now = end - 49 * H
    assert reconciler.run_once().warned == []
    clock.now = end - 47 * H
    assert reconciler.run_once().warned == [machine_id]
    for _ in range(3):
        assert reconciler.run_once().warned == []  # one warning per threshold
    clock.now = end - 90 * timedelta(minutes=1)
    assert reconciler.run_once().warned == [machine_id]
    assert len(maildir(app)) == 2  # sent in the cycles that queued them
    clock.now = end + timedelta(seconds=1)
    reconciler.run_once()
    assert machine(app, machine_id).state in ("deleting", "deleted")
    reconciler.run_once()
    row = machine(app, machine_id)
    assert row.state == "deleted"
    assert any("end of its lifetime (3 days, of a maximum lifetime of 14 days with "
               "extensions); deleted by policy" in e.message
               for e in row.events)
    assert (storage / "results.txt").read_text() == "keep me"
    kinds = [n.kind for n in outbox(app)]
    assert kinds == ["expiry_warning", "expiry_warning", "expired"]
    mails = maildir(app)
    assert len(mails) == 3 and all(m["To"] == "scientist@example.org" for m in mails)
    subjects = sorted(str(m["Subject"]) for m in mails)
    assert any("will be deleted in 1 day 23 hours" in s for s in subjects)
    assert any("will be deleted in 2 hours" in s or "will be deleted in 1 hour" in s
               for s in subjects)
    assert any("has been deleted (lifetime ended)" in s for s in subjects)
    assert all(f"https://daaas.example.org/machines/{machine_id}" in m.get_content()
               for m in mails)


def test_an_extension_moves_the_warnings_to_the_new_end(app: Flask) -> None:
    clock, reconciler, machine_id = ready_while_watched(app)
    end = machine(app, machine_id).expires_at
    clock.now = end - 1 * H
    assert reconciler.run_once().warned == [machine_id]
    app.test_client().post(f"/api/v1/machines/{machine_id}/extend",
                           headers=bearer(app, "scientist"))
    # 25 h left before the new end: its 48 h warning is new, queued once
    assert reconciler.run_once().warned == [machine_id]
    assert reconciler.run_once().warned == []
    assert [n.kind for n in outbox(app)] == ["expiry_warning", "expiry_warning"]
    clock.now = end + 1 * H  # past the old end: not expired, extended
    reconciler.run_once()
    assert machine(app, machine_id).state == "ready"


class FailingMailer:
    """An SMTP server that is down: every send fails."""

    def __init__(self) -> None:
        self.tries = 0

    def send(self, message: EmailMessage) -> None:
        self.tries += 1
        raise MailError("connection refused")


def test_a_failed_send_stays_in_the_outbox_and_a_restarted_worker_sends_it_once(
        app: Flask) -> None:
    clock = Clock()
    machine_id = launch(app, environment="ccp4")
    on_the_page(app)
    down = FailingMailer()
    first = worker(app, clock, down)
    first.run_once()
    clock.now = machine(app, machine_id).expires_at - 1 * H
    first.run_once()
    assert down.tries == 1
    [row] = outbox(app)
    assert row.status == "pending" and row.attempts == 1 and "refused" in row.last_error
    assert maildir(app) == []
    restarted = worker(app, clock)  # the Maildir mailer: delivered
    assert restarted.run_once().mails == 1
    assert restarted.run_once().mails == 0
    assert len(maildir(app)) == 1
    [row] = outbox(app)
    assert row.status == "sent" and row.sent_at is not None


def test_no_address_means_no_mail_but_the_event_is_recorded(app: Flask) -> None:
    with unit_of_work(app.extensions["daaas"].session_factory) as db:
        db.execute(update(User).where(User.username == "scientist").values(email=""))
    clock, reconciler, machine_id = ready_while_watched(app)
    clock.now = machine(app, machine_id).expires_at - 1 * H
    assert reconciler.run_once().warned == [machine_id]
    assert reconciler.run_once().warned == []
    assert [n.status for n in outbox(app)] == ["no_address"]
    assert maildir(app) == []


def test_the_machine_page_counts_down_and_extends_from_a_form(app: Flask) -> None:
    machine_id = launch(app, environment="ccp4")
    worker(app, Clock()).run_once()
    client = app.test_client()
    sign_in(client, "scientist", "scientist-demo")
    row = machine(app, machine_id)
    page = client.get(f"/machines/{machine_id}").get_data(as_text=True)
    assert f'id="time-left" data-expires-at="{row.expires_at.isoformat()}"' in page
    assert 'data-warn-hours="2.0"' in page and "/static/lifetime.js" in page
    assert 'id="extend-machine"' in page and ">Extend</button>" in page
    token = csrf_from(client, f"/machines/{machine_id}")
    done = client.post(f"/machines/{machine_id}/extend", data={"csrf_token": token})
    assert done.status_code == 303
    assert machine(app, machine_id).expires_at - row.expires_at == 24 * H
    set_expiry(app, machine_id, row.created_at + 336 * H)
    page = client.get(f"/machines/{machine_id}").get_data(as_text=True)
    assert 'id="extend-machine"' not in page  # at the maximum: no button
    refused = client.post(f"/machines/{machine_id}/extend", data={"csrf_token": token})
    assert refused.status_code == 409
    assert 'id="extend-error"' in refused.get_data(as_text=True)
    analysis = client.get("/analysis").get_data(as_text=True)
    assert "/static/lifetime.js" in analysis and 'id="expiry-banner"' in analysis


def test_approval_environments_offer_ask_to_extend_and_show_the_pending_request(
        app: Flask) -> None:
    machine_id = launch(app, environment="tomography-gpu")
    worker(app, Clock()).run_once()
    client = app.test_client()
    sign_in(client, "scientist", "scientist-demo")
    page = client.get(f"/machines/{machine_id}").get_data(as_text=True)
    assert ">Ask to extend</button>" in page
    token = csrf_from(client, f"/machines/{machine_id}")
    client.post(f"/machines/{machine_id}/extend", data={"csrf_token": token})
    page = client.get(f"/machines/{machine_id}").get_data(as_text=True)
    assert 'id="extension-pending"' in page and 'id="extend-machine"' not in page
    listed = client.get("/api/v1/machines").get_json()["machines"]
    assert [m["lifetime"]["extension_pending"] for m in listed] == [True]


def test_the_desktop_page_carries_the_expiry_banner(app: Flask) -> None:
    machine_id = launch(app, environment="ccp4")
    worker(app, Clock()).run_once()
    client = app.test_client()
    sign_in(client, "scientist", "scientist-demo")
    page = client.get(f"/machines/{machine_id}/desktop").get_data(as_text=True)
    end = machine(app, machine_id).expires_at.isoformat()
    assert f'id="expiry-banner" class="desktop-notice expiry" role="alert" ' \
           f'data-expiry-banner="{end}" data-warn-hours="2.0" hidden' in page
    assert "/static/lifetime.js" in page


def test_the_dry_run_shows_what_the_policy_would_do_and_changes_nothing(
        app: Flask, settings_override: dict[str, Any]) -> None:
    from click.testing import CliRunner

    from daaas.portal.cli import main

    clock = Clock()
    worker(app, clock).run_once()
    on_the_page(app)
    past, soon, later = (launch(app, environment=env) for env in ("ccp4", "dawn", "ccp4"))
    worker(app, clock).run_once()
    set_expiry(app, past, utcnow() - 3 * H)
    set_expiry(app, soon, utcnow() + 90 * timedelta(minutes=1))
    env = {"DAAAS_DATABASE_URL": settings_override["database_url"],
           "DAAAS_VAR_DIR": settings_override["var_dir"], "DAAAS_PROVIDER": "memory",
           "DAAAS_SECRET_KEY": "test-secret-key", "DAAAS_EXPIRY_WARNING_HOURS": "2",
           "DAAAS_START_WEBSOCKIFY": "false", "DAAAS_EMBEDDED_WORKER": "false"}
    result = CliRunner().invoke(main, ["machines", "expire", "--dry-run"], env=env)
    assert result.exit_code == 0, result.output
    lines = [line.split("\t") for line in result.output.splitlines() if "\t" in line]
    assert [(line[0], line[1]) for line in lines] == [("delete", past), ("warn", soon)]
    assert "its end passed 3 hours ago" in lines[0][4]
    assert "1 hour left (2 h warning)" in lines[1][4]
    assert "2 action(s) due" in result.output
    assert later not in result.output
    assert machine(app, past).state == "ready" and outbox(app) == []  # nothing done
    refused = CliRunner().invoke(main, ["machines", "expire"], env=env)
    assert refused.exit_code != 0 and "--dry-run" in refused.output


def test_the_extensions_page_lists_machines_ending_soon(app: Flask) -> None:
    soon = launch(app, environment="tomography-gpu")  # a day: within the 48 h warning
    later = launch(app, environment="ccp4")  # three days
    worker(app, Clock()).run_once()
    page = admin_client(app).get("/admin/extensions").get_data(as_text=True)
    listed = page.split('id="ending-soon"')[1]
    assert "Machines ending within 48 hours" in page
    assert f'data-machine="{soon}"' in listed and f'data-machine="{later}"' not in listed
