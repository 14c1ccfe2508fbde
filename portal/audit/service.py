"""Recording audit events in the caller's transaction, reading them back, and retention.

``record`` only adds a row to the caller's session: the request lifecycle (or the caller's
``unit_of_work``) commits it with the action, or rolls both back, so there is no action
without its record and no record without its action.
"""

from __future__ import annotations

import getpass
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta

from flask import has_request_context, request
from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from daaas.portal.audit.models import (
    MAX_ACTION,
    MAX_ACTOR,
    MAX_DETAIL,
    MAX_SOURCE,
    MAX_TARGET,
    AuditEvent,
)
from daaas.portal.audit.schemas import AuditQuery
from daaas.portal.db import utcnow

#: Where events come from outside a web request: "cli" unless the process says otherwise
#: (the reconciler runs under ``origin("worker")``).
_ORIGIN: ContextVar[str] = ContextVar("daaas_audit_origin", default="cli")


@contextmanager
def origin(name: str) -> Iterator[None]:
    """Within the block, events recorded outside a web request have ``source`` ``name``."""
    token = _ORIGIN.set(name)
    try:
        yield
    finally:
        _ORIGIN.reset(token)


def set_origin(name: str) -> None:
    """Set the source of events recorded outside a web request for this thread/context."""
    _ORIGIN.set(name)


def operator() -> str:
    """Return how an administrator at the command line is named as an actor: ``cli:<login>``
    (the operating system account running ``daaas``; ``cli`` when it has no name)."""
    try:
        return f"cli:{getpass.getuser()}"
    except (OSError, KeyError):
        return "cli"


def current_source() -> str:
    """Return the client's address in a web request, else this context's origin."""
    if has_request_context():
        return request.remote_addr or "unknown"
    return _ORIGIN.get()


def record(db: Session, action: str, *, actor: str, target: str = "", detail: str = "",
           admin: bool = False) -> None:
    """Add one audit event to ``db``'s transaction; the caller's commit writes it.

    Returns nothing and raises nothing of its own: texts longer than the columns are cut.
    """
    db.add(AuditEvent(at=utcnow(), action=action[:MAX_ACTION], actor=actor[:MAX_ACTOR],
                      target=target[:MAX_TARGET], detail=detail[:MAX_DETAIL],
                      source=current_source()[:MAX_SOURCE], admin=admin))


@dataclass(frozen=True)
class AuditFilter:
    """What to look for: each field empty/None means "any". ``actor`` and ``action`` match
    exactly; ``target`` matches a part; the period is ``since <= at < until``."""

    actor: str = ""
    action: str = ""
    target: str = ""
    since: datetime | None = None
    until: datetime | None = None


def filter_for(query: AuditQuery) -> AuditFilter:
    """Return the filter of a page's or the API's query: its days are UTC, ``until``
    included."""
    def midnight(day: date) -> datetime:
        return datetime.combine(day, time(), tzinfo=UTC)

    return AuditFilter(actor=query.actor.strip(), action=query.action.strip(),
                       target=query.target.strip(),
                       since=midnight(query.since) if query.since else None,
                       until=midnight(query.until) + timedelta(days=1) if query.until else None)


def search(db: Session, where: AuditFilter, *, limit: int | None = 500) -> Sequence[AuditEvent]:
    """Return the events matching ``where``, newest first (at most ``limit``; None: all)."""
    query = select(AuditEvent)
    if where.actor:
        query = query.where(AuditEvent.actor == where.actor)
    if where.action:
        query = query.where(AuditEvent.action == where.action)
    if where.target:
        query = query.where(AuditEvent.target.contains(where.target, autoescape=True))
    if where.since is not None:
        query = query.where(AuditEvent.at >= where.since)
    if where.until is not None:
        query = query.where(AuditEvent.at < where.until)
    query = query.order_by(AuditEvent.at.desc(), AuditEvent.id.desc())
    if limit is not None:
        query = query.limit(limit)
    return db.scalars(query).all()


def actions(db: Session) -> list[str]:
    """Return the distinct actions recorded so far, sorted (the page's filter choices)."""
    return sorted(db.scalars(select(AuditEvent.action).distinct()).all())


def prune(db: Session, retention_days: int, *, now: datetime | None = None) -> int:
    """Delete events older than ``retention_days`` (0: keep forever); return how many.

    The one deleting path of the append-only table: a bulk DELETE, in the caller's transaction.
    """
    if retention_days <= 0:
        return 0
    cutoff = (now or utcnow()) - timedelta(days=retention_days)
    result = db.execute(delete(AuditEvent).where(AuditEvent.at < cutoff)
                        .execution_options(synchronize_session=False))
    return int(getattr(result, "rowcount", 0) or 0)
