"""Account rules: creating users, signing in with rate limiting, personal API tokens."""

from __future__ import annotations

import hashlib
import re
import secrets
from datetime import timedelta

from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker
from werkzeug.security import generate_password_hash

from daaas.portal.auth.backends import Identity, IdentityBackend
from daaas.portal.auth.models import ApiToken, SignInAttempt, User
from daaas.portal.config import Settings
from daaas.portal.db import unit_of_work, utcnow
from daaas.portal.errors import (
    AuthenticationRequired,
    Conflict,
    InvalidInput,
    NotFound,
    RateLimited,
)

USERNAME_RE = re.compile(r"^[a-z_][a-z0-9_.-]{1,31}$")
MIN_PASSWORD_LENGTH = 10
TOKEN_PREFIX = "daaas_"


def hash_password(password: str) -> str:
    """Return a salted scrypt hash of ``password``; raises InvalidInput if it is too short."""
    if len(password) < MIN_PASSWORD_LENGTH:
        raise InvalidInput(f"The password must have at least {MIN_PASSWORD_LENGTH} characters.")
    return generate_password_hash(password, method="scrypt")


def create_user(db: Session, settings: Settings, username: str, password: str | None, *,
                display_name: str = "", email: str = "", groups: list[str] | None = None,
                instruments: list[str] | None = None, is_admin: bool = False,
                source: str = "local") -> User:
    """Create an account with the next free POSIX uid (gid = uid) and return it.

    Raises InvalidInput for a user name that is not a valid POSIX login, and Conflict when the
    name is taken.
    """
    if not USERNAME_RE.match(username):
        raise InvalidInput(f"'{username}' is not a valid user name: use 2-32 lower-case letters, "
                           "digits, '.', '_' or '-', starting with a letter.")
    if db.scalar(select(User.id).where(User.username == username)) is not None:
        raise Conflict(f"A user called '{username}' already exists.")
    uid = max(settings.first_uid - 1, db.scalar(select(func.max(User.uid))) or 0) + 1
    user = User(username=username, display_name=display_name or username, email=email,
                password_hash=hash_password(password) if password else None,
                identity_source=source, uid=uid, gid=uid, groups=list(groups or []),
                instruments=list(instruments or []), is_admin=is_admin)
    db.add(user)
    db.flush()
    return user


def get_user(db: Session, username: str) -> User:
    """Return the user called ``username``; raises NotFound."""
    user = db.scalar(select(User).where(User.username == username))
    if user is None:
        raise NotFound(f"There is no user called '{username}'.")
    return user


def set_password(db: Session, username: str, password: str) -> None:
    """Replace the password of ``username``; raises NotFound or InvalidInput."""
    get_user(db, username).password_hash = hash_password(password)


def sign_in(db: Session, factory: sessionmaker[Session], backend: IdentityBackend,
            settings: Settings, username: str, password: str, remote_addr: str) -> User:
    """Check the credentials and return the signed-in user.

    Raises RateLimited after too many recent failures for this name or address, and
    SignInFailed for wrong credentials. Attempts are recorded in their own transaction so a
    failure is counted even though the request itself rolls back.
    """
    username = username.strip().lower()
    _check_rate_limit(db, settings, username, remote_addr)
    try:
        identity = backend.authenticate(db, username, password)
    except Exception:
        _record_attempt(factory, username, remote_addr, succeeded=False)
        raise
    _record_attempt(factory, username, remote_addr, succeeded=True)
    user = _local_user_for(db, settings, identity, backend.name)
    user.last_sign_in_at = utcnow()
    return user


def _check_rate_limit(db: Session, settings: Settings, username: str, remote_addr: str) -> None:
    since = utcnow() - timedelta(seconds=settings.login_failure_window_seconds)
    failures = db.scalar(select(func.count(SignInAttempt.id)).where(
        SignInAttempt.at >= since, SignInAttempt.succeeded.is_(False),
        (SignInAttempt.username == username) | (SignInAttempt.remote_addr == remote_addr)))
    if (failures or 0) >= settings.login_max_failures:
        minutes = max(1, settings.login_failure_window_seconds // 60)
        raise RateLimited(f"Too many failed sign-in attempts. Wait {minutes} minute(s) and try "
                          "again, or ask an administrator to reset your password.",
                          f"sign-in rate limit hit for {username!r} from {remote_addr}")


def _record_attempt(factory: sessionmaker[Session], username: str, remote_addr: str,
                    succeeded: bool) -> None:
    with unit_of_work(factory) as audit:
        audit.add(SignInAttempt(username=username[:64], remote_addr=remote_addr[:64],
                                succeeded=succeeded))


def _local_user_for(db: Session, settings: Settings, identity: Identity, source: str) -> User:
    user = db.scalar(select(User).where(User.username == identity.username))
    if user is None:
        user = create_user(db, settings, identity.username, None, source=source,
                           display_name=identity.display_name, email=identity.email)
    if source != "local":
        user.groups = list(identity.groups)
        user.is_admin = identity.is_admin
    return user


def create_token(db: Session, user: User, name: str, lifetime_days: int) -> tuple[ApiToken, str]:
    """Create a personal API token; returns the row and the secret, which is shown only once."""
    secret = TOKEN_PREFIX + secrets.token_urlsafe(32)
    token = ApiToken(user=user, name=name or "token", prefix=secret[:12],
                     secret_hash=_digest(secret),
                     expires_at=utcnow() + timedelta(days=lifetime_days))
    db.add(token)
    db.flush()
    return token, secret


def user_for_token(db: Session, secret: str) -> User:
    """Return the active user owning this API token.

    Raises AuthenticationRequired for an unknown, expired or disabled token.
    """
    token = db.scalar(select(ApiToken).where(ApiToken.secret_hash == _digest(secret)))
    if token is None or token.expires_at <= utcnow() or not token.user.is_active:
        raise AuthenticationRequired("This API token is unknown or has expired. Create a new one "
                                     "with `daaas tokens create` or on your account page.")
    token.last_used_at = utcnow()
    return token.user


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()
