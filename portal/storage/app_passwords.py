"""App passwords: create (the secret is shown once), list, revoke, and check for WebDAV.

A secret is ``dav_<prefix>_<random>``. The prefix finds the one row to check, so a wrong
password costs one scrypt hash, not one per app password; the hash is werkzeug's salted scrypt,
as for sign-in passwords.
"""

from __future__ import annotations

import re
import secrets
from datetime import timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session
from werkzeug.security import check_password_hash, generate_password_hash

from daaas.portal.audit.service import record
from daaas.portal.auth.models import User
from daaas.portal.db import utcnow
from daaas.portal.errors import InvalidInput, NotFound
from daaas.portal.storage.models import AppPassword

SECRET_RE = re.compile(r"^dav_([A-Za-z0-9]{10})_[A-Za-z0-9_-]{20,}$")
MAX_PER_USER = 20
#: last_used_at is written at most this often, so a busy client does not write on every request
USE_RECORD_INTERVAL = timedelta(minutes=1)


def create_app_password(db: Session, user: User, name: str) -> tuple[AppPassword, str]:
    """Create an app password for ``user``; returns the row and the secret (shown once).

    Raises InvalidInput for a name that is too long or when the user has too many.
    """
    name = name.strip() or "WebDAV"
    if len(name) > 100:
        raise InvalidInput("Give the app password a name of at most 100 characters.")
    if len(app_passwords(db, user)) >= MAX_PER_USER:
        raise InvalidInput(f"You already have {MAX_PER_USER} app passwords. Revoke ones you "
                           "no longer use first.")
    prefix = "".join(secrets.choice("abcdefghijkmnopqrstuvwxyz23456789") for _ in range(10))
    secret = f"dav_{prefix}_{secrets.token_urlsafe(24)}"
    row = AppPassword(user_id=user.id, name=name, prefix=prefix,
                      password_hash=generate_password_hash(secret, method="scrypt"))
    db.add(row)
    db.flush()
    record(db, "app_password.create", actor=user.username, target=f"app password {row.id}",
           detail=name)
    return row, secret


def app_passwords(db: Session, user: User) -> list[AppPassword]:
    """Return the user's app passwords, newest first."""
    return list(db.scalars(select(AppPassword).where(AppPassword.user_id == user.id)
                           .order_by(AppPassword.created_at.desc(), AppPassword.id.desc())))


def revoke_app_password(db: Session, user: User, password_id: int) -> str:
    """Delete one of the user's app passwords; returns its name. Raises NotFound."""
    row = db.get(AppPassword, password_id)
    if row is None or row.user_id != user.id:
        raise NotFound("That app password does not exist (it may have been revoked already).")
    db.delete(row)
    record(db, "app_password.revoke", actor=user.username, target=f"app password {row.id}",
           detail=row.name)
    return row.name


def check_app_password(db: Session, username: str, secret: str) -> tuple[int, User] | None:
    """Return (app password id, active user) when ``secret`` is one of ``username``'s app
    passwords, else None. Records when it was used."""
    match = SECRET_RE.match(secret)
    if not match:
        return None
    row = db.scalar(select(AppPassword).join(User, User.id == AppPassword.user_id)
                    .where(AppPassword.prefix == match.group(1), User.username == username))
    if row is None or not check_password_hash(row.password_hash, secret):
        return None
    user = app_password_user(db, row.id)
    return None if user is None else (row.id, user)


def app_password_user(db: Session, password_id: int) -> User | None:
    """Return the active owner of an app password that still exists (not revoked), else None.
    Records when it was used (at most once a minute)."""
    row = db.get(AppPassword, password_id)
    user = None if row is None else db.get(User, row.user_id)
    if row is None or user is None or not user.is_active:
        return None
    now = utcnow()
    if row.last_used_at is None or now - row.last_used_at > USE_RECORD_INTERVAL:
        row.last_used_at = now
    return user
