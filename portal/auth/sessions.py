"""Server-side browser sessions: what a sign-in cookie stands for, and how it ends.

The cookie (Flask's signed session) carries a random session id and the CSRF token, nothing
about the password. The database keeps one :class:`BrowserSession` row per sign-in, found by
the SHA-256 of that id. A session is valid while it has not been ended (sign-out, password
change, account disabled), its user is active, it has been used within
``session_idle_minutes`` and began within ``session_lifetime_minutes``. Ending the row ends
every copy of the cookie at once, which a cookie-only session could never do.
"""

from __future__ import annotations

import hashlib
import secrets
from datetime import timedelta

from sqlalchemy import delete, update
from sqlalchemy.orm import Session

from daaas.portal.auth.models import BrowserSession, OidcSession, User
from daaas.portal.config import Settings
from daaas.portal.db import utcnow

#: ``last_seen_at`` is written at most this often per session (not on every request).
TOUCH_INTERVAL = timedelta(seconds=30)


def open_session(db: Session, settings: Settings, user: User, remote_addr: str) -> str:
    """Record a new sign-in of ``user`` and return the secret id for its cookie.

    Also forgets this user's sessions that ended or passed their absolute lifetime. Raises
    nothing beyond database errors.
    """
    now = utcnow()
    stale = now - timedelta(minutes=settings.session_lifetime_minutes)
    db.execute(delete(BrowserSession).where(
        BrowserSession.user_id == user.id,
        BrowserSession.ended_at.is_not(None) | (BrowserSession.created_at < stale)))
    secret = secrets.token_urlsafe(32)
    db.add(BrowserSession(id_hash=_digest(secret), user_id=user.id, created_at=now,
                          last_seen_at=now, remote_addr=remote_addr[:64]))
    db.flush()
    return secret


def session_user(db: Session, settings: Settings, secret: str) -> User | None:
    """Return the user of the live session ``secret``, or None when it is unknown, ended,
    idle too long, too old, or its user is disabled. Records the use (at most every
    :data:`TOUCH_INTERVAL`). Raises nothing beyond database errors."""
    record = db.get(BrowserSession, _digest(secret))
    if record is None or record.ended_at is not None:
        return None
    now = utcnow()
    if (not record.user.is_active
            or now - record.created_at > timedelta(minutes=settings.session_lifetime_minutes)
            or now - record.last_seen_at > timedelta(minutes=settings.session_idle_minutes)):
        record.ended_at = now
        return None
    if now - record.last_seen_at >= TOUCH_INTERVAL:
        record.last_seen_at = now
    return record.user


def close_session(db: Session, secret: str) -> None:
    """End the session ``secret`` (sign-out): every copy of its cookie stops working.
    Raises nothing beyond database errors."""
    db.execute(update(BrowserSession)
               .where(BrowserSession.id_hash == _digest(secret),
                      BrowserSession.ended_at.is_(None))
               .values(ended_at=utcnow()))


def close_user_sessions(db: Session, user: User) -> int:
    """End every open session of ``user`` (password changed, account disabled, signed out
    everywhere); returns how many were open. Raises nothing beyond database errors."""
    result = db.execute(update(BrowserSession)
                        .where(BrowserSession.user_id == user.id,
                               BrowserSession.ended_at.is_(None))
                        .values(ended_at=utcnow()))
    return int(getattr(result, "rowcount", 0) or 0)


def keep_id_token(db: Session, secret: str, id_token: str) -> None:
    """Keep the ID token the session ``secret`` signed in with (OIDC), for the provider's
    sign-out (``id_token_hint``); it goes when the session's row goes. Raises nothing beyond
    database errors."""
    db.merge(OidcSession(session_id_hash=_digest(secret), id_token=id_token))
    db.flush()


def take_id_token(db: Session, secret: str) -> str:
    """Return the ID token kept for the session ``secret`` and forget it (sign-out), or ""
    (not an OIDC sign-in). Raises nothing beyond database errors."""
    record = db.get(OidcSession, _digest(secret))
    if record is None:
        return ""
    db.delete(record)
    return record.id_token


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()
