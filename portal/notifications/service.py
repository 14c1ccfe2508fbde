"""The outbox: record a message in the transaction that decides its event, send it later.

Why record first: the worker decides an event (a warning is due, a machine expired, an
extension was approved) and writes the :class:`Notification` row in the SAME transaction as
that decision. Either both are committed or neither is, and the row's unique ``key`` makes the
same event one row however often (or by however many workers) it is decided. The worker then
sends pending rows and marks each sent in its own short transaction (:func:`send_pending`). A
worker killed before sending leaves the row pending: the next worker sends it, once. What
remains is the moment between the SMTP server's acceptance and the "sent" commit: a worker
killed exactly there sends that one message again on restart (at-least-once); the message's
``Message-ID`` is derived from the key, so a mail program sees the two as one message.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable
from datetime import datetime
from email.message import EmailMessage

from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from daaas.portal.auth.models import User
from daaas.portal.config import Settings
from daaas.portal.machines.claims import Claims
from daaas.portal.notifications.mail import Mailer, MailError
from daaas.portal.notifications.models import NO_ADDRESS, PENDING, SENT, Notification

log = logging.getLogger(__name__)

#: Pending messages sent per worker cycle at most (the rest wait for the next cycle).
BATCH = 50


def portal_url(settings: Settings) -> str:
    """Return the portal's address as users reach it (``public_url``, else host and port),
    without a trailing slash. Raises nothing."""
    return settings.public_url.rstrip("/") or f"http://{settings.host}:{settings.port}"


def machine_url(settings: Settings, machine_id: str) -> str:
    """Return the absolute address of a machine's page. Raises nothing."""
    return f"{portal_url(settings)}/machines/{machine_id}"


def queue(db: Session, *, key: str, kind: str, user: User, machine_id: str | None,
          subject: str, body: str, now: datetime) -> Notification | None:
    """Record a message to ``user`` about ``machine_id`` in the caller's transaction, unless
    one with ``key`` exists already; returns the new row, or None when it was recorded before.

    Raises sqlalchemy.exc.IntegrityError at commit if another transaction recorded the same
    key meanwhile (the caller's decision is rolled back with it, and taken again next cycle).
    """
    if db.scalar(select(Notification.id).where(Notification.key == key)) is not None:
        return None
    row = Notification(key=key, kind=kind, machine_id=machine_id, user_id=user.id,
                       recipient=user.email or "", subject=subject, body=body,
                       status=PENDING if user.email else NO_ADDRESS, created_at=now)
    db.add(row)
    db.flush()
    return row


def message_for(settings: Settings, row: Notification) -> EmailMessage:
    """Return the e-mail of an outbox row; its Message-ID is derived from the row's key, so a
    message sent twice (see the module's note) is one message to a mail program. Raises
    nothing."""
    message = EmailMessage()
    message["From"] = settings.mail_from
    message["To"] = row.recipient
    message["Subject"] = row.subject
    digest = hashlib.sha256(row.key.encode()).hexdigest()[:32]
    domain = settings.mail_from.rpartition("@")[2] or "daaas.invalid"
    message["Message-ID"] = f"<{digest}@{domain}>"
    message["X-Daaas-Kind"] = row.kind
    message.set_content(row.body)
    return message


def send_pending(session_factory: sessionmaker[Session], settings: Settings, mailer: Mailer,
                 claims: Claims, now: Callable[[], datetime], limit: int = BATCH) -> int:
    """Send up to ``limit`` pending messages, oldest first, each under a claim (two workers
    never send the same row at once) and marked sent in its own transaction; a failure is
    counted and retried next cycle. Returns how many were sent. Raises only database errors.
    """
    with session_factory() as db:
        ids = list(db.scalars(select(Notification.id).where(Notification.status == PENDING)
                              .order_by(Notification.id).limit(limit)))
    sent = 0
    for row_id in ids:
        with claims.hold(f"notification:{row_id}") as mine:
            if not mine:
                continue
            with session_factory() as db:
                row = db.get(Notification, row_id)
                if row is None or row.status != PENDING:
                    continue  # another worker sent it meanwhile
                message = message_for(settings, row)
            try:
                mailer.send(message)  # no transaction open during the delivery
            except MailError as exc:
                log.warning("e-mail %s not sent, will retry: %s", row_id, exc)
                with session_factory.begin() as db:
                    db.execute(update(Notification).where(Notification.id == row_id).values(
                        attempts=Notification.attempts + 1, last_error=str(exc)[:2000]))
                continue
            with session_factory.begin() as db:
                db.execute(update(Notification).where(
                    Notification.id == row_id, Notification.status == PENDING).values(
                    status=SENT, sent_at=now(), attempts=Notification.attempts + 1,
                    last_error=""))
            sent += 1
    return sent
