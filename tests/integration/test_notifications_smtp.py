"""E-mail through a REAL SMTP server (aiosmtpd, started here on a free port with STARTTLS,
a certificate made for the test and a login): expiry warnings and the expiry reach the
owner's address with the right subject and a link to the machine; a message decided while
the server was down is sent once by the next worker; a worker killed between the server's
acceptance and the "sent" record sends it again with the same Message-ID (at-least-once, as
docs/admin.md says)."""

from __future__ import annotations

import email
import email.policy
import socket
import ssl
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP as SMTPServer
from aiosmtpd.smtp import AuthResult, Envelope, LoginPassword, Session
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from flask import Flask
from sqlalchemy import update

from daaas.portal import create_app
from daaas.portal.auth.models import User
from daaas.portal.db import unit_of_work
from daaas.portal.notifications.mail import SmtpMailer
from tests.support.machines import ManualClock as Clock
from tests.support.machines import launch, machine, on_the_page, outbox, ready_while_watched
from tests.support.machines import policy_worker as worker

H = timedelta(hours=1)
LOGIN, PASSWORD = "daaas-mailer", "smtp-test-password"


class Inbox:
    """The SMTP server's handler: keeps every message it accepts."""

    def __init__(self) -> None:
        self.envelopes: list[Envelope] = []

    async def handle_DATA(self, server: SMTPServer, session: Session,
                          envelope: Envelope) -> str:
        self.envelopes.append(envelope)
        return "250 Message accepted for delivery"

    def messages(self) -> list[tuple[list[str], EmailMessage]]:
        out = []
        for envelope in self.envelopes:
            raw = envelope.original_content or envelope.content
            assert isinstance(raw, bytes)
            parsed = email.message_from_bytes(raw, _class=EmailMessage,
                                              policy=email.policy.default)
            out.append((list(envelope.rcpt_tos), parsed))
        return out


def authenticate(server: SMTPServer, session: Session, envelope: Envelope, mechanism: str,
                 auth_data: Any) -> AuthResult:
    ok = isinstance(auth_data, LoginPassword) and auth_data.login == LOGIN.encode() \
        and auth_data.password == PASSWORD.encode()
    return AuthResult(success=ok)


def certificate(folder: Path) -> tuple[Path, Path]:
    """A self-signed certificate for localhost (the test's CA too) and its key."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.now(UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - timedelta(minutes=5)).not_valid_after(now + timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost")]), False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), True)
            .sign(key, hashes.SHA256()))
    cert_path, key_path = folder / "smtp.pem", folder / "smtp.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_path, key_path


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


class SmtpServer:
    """aiosmtpd on 127.0.0.1: STARTTLS required, login required after it."""

    def __init__(self, folder: Path) -> None:
        self.cert, key = certificate(folder)
        self.port = free_port()
        self.inbox = Inbox()
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(self.cert, key)
        self.controller = Controller(self.inbox, hostname="127.0.0.1", port=self.port,
                                     server_hostname="localhost", tls_context=context,
                                     require_starttls=True, authenticator=authenticate,
                                     auth_require_tls=True)

    def start(self) -> None:
        self.controller.start()

    def stop(self) -> None:
        self.controller.stop()


@pytest.fixture
def smtp(tmp_path: Path) -> Iterator[SmtpServer]:
    server = SmtpServer(tmp_path)
    yield server
    if getattr(server.controller, "_thread", None) is not None:
        server.stop()


@pytest.fixture
def app(settings_override: dict[str, Any], smtp: SmtpServer) -> Flask:
    application = create_app({
        **settings_override, "provider": "memory", "expiry_warning_hours": "48, 2",
        "idle_stop": False,
        "public_url": "https://daaas.example.org", "smtp_host": "localhost",
        "smtp_port": smtp.port, "smtp_starttls": True, "smtp_username": LOGIN,
        "smtp_password": PASSWORD, "smtp_ca_file": str(smtp.cert),
        "smtp_timeout_seconds": 5, "mail_from": "analysis@daaas.example.org"})
    with unit_of_work(application.extensions["daaas"].session_factory) as db:
        db.execute(update(User).where(User.username == "scientist")
                   .values(email="ada.crystal@example.org"))
    return application


def test_warnings_and_expiry_reach_the_owner_through_smtp(app: Flask,
                                                           smtp: SmtpServer) -> None:
    smtp.start()
    clock, reconciler, machine_id = ready_while_watched(app)
    end = machine(app, machine_id).expires_at
    clock.now = end - 47 * H
    reconciler.run_once()
    clock.now = end - 1 * H
    reconciler.run_once()
    clock.now = end + 1 * H
    reconciler.run_once()
    reconciler.run_once()
    assert machine(app, machine_id).state == "deleted"
    received = smtp.inbox.messages()
    assert len(received) == 3
    name = machine(app, machine_id).name
    assert [m["Subject"] for _, m in received] == [
        f"Your machine '{name}' will be deleted in 1 day 23 hours",
        f"Your machine '{name}' will be deleted in 1 hour",
        f"Your machine '{name}' has been deleted (lifetime ended)"]
    for recipients, message in received:
        assert recipients == ["ada.crystal@example.org"]
        assert message["To"] == "ada.crystal@example.org"
        assert message["From"] == "analysis@daaas.example.org"
        assert f"https://daaas.example.org/machines/{machine_id}" in message.get_content()
    assert "Your storage is untouched" in received[2][1].get_content()
    assert all(n.status == "sent" and n.sent_at is not None for n in outbox(app))


def test_decided_while_the_server_is_down_then_sent_once_by_the_next_worker(
        app: Flask, smtp: SmtpServer) -> None:
    clock = Clock()
    machine_id = launch(app, environment="ccp4")
    on_the_page(app)
    first = worker(app, clock)
    first.run_once()
    clock.now = machine(app, machine_id).expires_at - 1 * H
    assert first.run_once().warned == [machine_id]  # decided and recorded; not delivered
    [row] = outbox(app)
    assert row.status == "pending" and row.attempts == 1 and row.last_error
    smtp.start()
    restarted = worker(app, clock)  # a new worker process, as after a crash
    assert restarted.run_once().mails == 1
    assert restarted.run_once().mails == 0
    assert worker(app, clock).run_once().mails == 0
    assert len(smtp.inbox.messages()) == 1
    assert smtp.inbox.messages()[0][0] == ["ada.crystal@example.org"]


class KilledAfterSending:
    """The worker dies right after the server accepted the message, before it records
    "sent" (a BaseException leaves run_once like a kill: nothing after it runs)."""

    def __init__(self, real: SmtpMailer) -> None:
        self.real = real

    def send(self, message: EmailMessage) -> None:
        self.real.send(message)
        raise KeyboardInterrupt("worker killed")


def test_killed_between_acceptance_and_record_resends_with_the_same_message_id(
        app: Flask, smtp: SmtpServer) -> None:
    smtp.start()
    clock = Clock()
    settings = app.extensions["daaas"].settings
    machine_id = launch(app, environment="ccp4")
    on_the_page(app)
    doomed = worker(app, clock, KilledAfterSending(SmtpMailer(settings)))
    doomed.run_once()
    clock.now = machine(app, machine_id).expires_at - 1 * H
    with pytest.raises(KeyboardInterrupt):
        doomed.run_once()
    assert [n.status for n in outbox(app)] == ["pending"]
    worker(app, clock).run_once()
    assert [n.status for n in outbox(app)] == ["sent"]
    received = smtp.inbox.messages()
    assert len(received) == 2  # at-least-once: the one window the outbox cannot close
    assert received[0][1]["Message-ID"] == received[1][1]["Message-ID"]


def test_a_wrong_password_is_not_sent_and_stays_pending(app: Flask, smtp: SmtpServer) -> None:
    smtp.start()
    settings = app.extensions["daaas"].settings.model_copy(
        update={"smtp_password": "wrong", "smtp_timeout_seconds": 2})
    clock = Clock()
    machine_id = launch(app, environment="ccp4")
    on_the_page(app)
    reconciler = worker(app, clock, SmtpMailer(settings))
    reconciler.run_once()
    clock.now = machine(app, machine_id).expires_at - 1 * H
    reconciler.run_once()
    [row] = outbox(app)
    assert row.status == "pending" and row.attempts == 1 and row.last_error
    assert "wrong" not in row.last_error
    assert smtp.inbox.messages() == []


def test_ready_is_mailed_only_when_the_owner_has_left_the_portal(app: Flask,
                                                                smtp: SmtpServer) -> None:
    smtp.start()
    clock = Clock()
    reconciler = worker(app, clock)
    away = launch(app, environment="ccp4")  # launched, then the browser was closed
    reconciler.run_once()
    [(recipients, message)] = smtp.inbox.messages()
    assert recipients == ["ada.crystal@example.org"]
    assert message["Subject"] == f"Your machine '{machine(app, away).name}' is ready"
    assert f"https://daaas.example.org/machines/{away}" in message.get_content()
    on_the_page(app)
    present = launch(app, environment="dawn")
    reconciler.run_once()
    reconciler.run_once()
    assert machine(app, present).state == "ready"
    assert len(smtp.inbox.messages()) == 1  # the owner watches the card turn ready
