"""The audit event table: one row per audited action, never changed once written."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Boolean, Index, Integer, String, Text, event
from sqlalchemy.orm import Mapped, mapped_column

from daaas.portal.db import Base, UTCDateTime, utcnow

#: Longest texts a row keeps; longer ones are cut (an audit record never fails an action).
MAX_ACTOR, MAX_ACTION, MAX_TARGET, MAX_SOURCE, MAX_DETAIL = 200, 64, 200, 64, 2000


class AuditEvent(Base):
    """Who (``actor``) did what (``action``) to what (``target``), when (``at``), from where
    (``source``: the client's address, or ``cli``/``worker``); ``admin`` marks an
    administrator acting on what is not theirs.

    Append-only: the ORM refuses to update or delete a row; only the retention prune
    (:func:`daaas.portal.audit.service.prune`) deletes, with one bulk statement.
    """

    __tablename__ = "audit_events"
    __table_args__ = (
        Index("ix_audit_events_at", "at"),
        Index("ix_audit_events_actor_at", "actor", "at"),
        Index("ix_audit_events_action_at", "action", "at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    actor: Mapped[str] = mapped_column(String(MAX_ACTOR))
    action: Mapped[str] = mapped_column(String(MAX_ACTION))
    target: Mapped[str] = mapped_column(String(MAX_TARGET), default="")
    detail: Mapped[str] = mapped_column(Text, default="")
    source: Mapped[str] = mapped_column(String(MAX_SOURCE), default="")
    admin: Mapped[bool] = mapped_column(Boolean, default=False)


class AppendOnly(RuntimeError):
    """Raised when code tries to change or delete an audit row through the ORM."""


def _refuse(_mapper: Any, _connection: Any, target: AuditEvent) -> None:
    raise AppendOnly(f"audit event {target.id} is append-only")


event.listen(AuditEvent, "before_update", _refuse)
event.listen(AuditEvent, "before_delete", _refuse)
