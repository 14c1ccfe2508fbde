"""Sending e-mail: through an SMTP server, or into a local Maildir when none is configured."""

from __future__ import annotations

import mailbox
import smtplib
import ssl
from email.message import EmailMessage
from pathlib import Path
from typing import Protocol

from daaas.portal.config import Settings


class MailError(Exception):
    """A message could not be handed over; it stays in the outbox and is tried again."""


class Mailer(Protocol):
    """Hands one message over for delivery."""

    def send(self, message: EmailMessage) -> None:
        """Deliver ``message`` (its To, From and Subject set). Raises MailError when it was
        not handed over."""


class SmtpMailer:
    """Sends through the ``smtp_*`` settings' server (STARTTLS and a login when set)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    def send(self, message: EmailMessage) -> None:
        """Send ``message`` over one SMTP connection. Raises MailError on any SMTP or network
        failure."""
        s = self.settings
        try:
            with smtplib.SMTP(s.smtp_host, s.smtp_port, timeout=s.smtp_timeout_seconds) as smtp:
                if s.smtp_starttls:  # the server's certificate and name are checked
                    smtp.starttls(context=ssl.create_default_context(
                        cafile=s.smtp_ca_file or None))
                if s.smtp_username:
                    smtp.login(s.smtp_username, s.smtp_password)
                smtp.send_message(message)
        except (OSError, smtplib.SMTPException) as exc:
            raise MailError(f"SMTP {s.smtp_host}:{s.smtp_port}: {exc}") from exc


class MaildirMailer:
    """The embedded default: every message becomes a file of the Maildir ``var_dir/mail``
    (read it with ``mutt -f var/mail`` or any mail program), so nothing is lost."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def send(self, message: EmailMessage) -> None:
        """Add ``message`` to the Maildir. Raises MailError when it cannot be written."""
        try:
            mailbox.Maildir(self.path, create=True).add(message)
        except OSError as exc:
            raise MailError(f"Maildir {self.path}: {exc}") from exc


def mail_dir(settings: Settings) -> Path:
    """Return the local Maildir of the embedded default (``var_dir/mail``). Raises nothing."""
    return settings.var_path / "mail"


def mailer_for(settings: Settings) -> Mailer:
    """Return the SMTP mailer when ``smtp_host`` is set, else the local Maildir's. Raises
    nothing."""
    return SmtpMailer(settings) if settings.smtp_host else MaildirMailer(mail_dir(settings))
