"""The outbox: every e-mail the portal means to send, recorded before it is sent."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from daaas.portal.db import Base, UTCDateTime, utcnow

#: A notification waiting for the worker to send it.
PENDING = "pending"
#: Handed to the SMTP server (or written to the local Maildir).
SENT = "sent"
#: Not sent: the account has no e-mail address (the page still shows the news).
NO_ADDRESS = "no_address"


class Notification(Base):
    """One message to one user about one machine. ``key`` says which event it is about
    (kind, machine, threshold …) and is unique, so the same event never gets two rows, however
    often a worker decides it again; the row is written in the transaction that decides the
    event, and the worker sends it afterwards (``status`` pending → sent)."""

    __tablename__ = "notifications"
    __table_args__ = (Index("ix_notifications_status_id", "status", "id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    key: Mapped[str] = mapped_column(String(200), unique=True)
    kind: Mapped[str] = mapped_column(String(40))
    machine_id: Mapped[str | None] = mapped_column(
        ForeignKey("machines.id", ondelete="CASCADE"), nullable=True, index=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    recipient: Mapped[str] = mapped_column(String(200), default="")
    subject: Mapped[str] = mapped_column(String(300))
    body: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(20), default=PENDING)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
