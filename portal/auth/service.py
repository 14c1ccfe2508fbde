"""Account rules: creating users, signing in with rate limiting, personal API tokens."""

from __future__ import annotations

import hashlib
import re
import secrets
from datetime import timedelta

from sqlalchemy import false, func, select, update
from sqlalchemy.orm import Session, sessionmaker
from werkzeug.security import generate_password_hash

from daaas.portal.audit import service as audit
from daaas.portal.auth.backends import Identity, IdentityBackend
from daaas.portal.auth.models import ApiToken, SignInAttempt, User
from daaas.portal.auth.sessions import close_user_sessions
from daaas.portal.config import Settings
from daaas.portal.db import unit_of_work, utcnow
from daaas.portal.errors import (
    AuthenticationRequired,
    Conflict,
    InvalidInput,
    NotFound,
    RateLimited,
    SignInFailed,
)

USERNAME_RE = re.compile(r"^[a-z_][a-z0-9_.-]{1,31}$")
MIN_PASSWORD_LENGTH = 10
TOKEN_PREFIX = "daaas_"
#: The PostgreSQL advisory lock key of account creation (:func:`lock_accounts`)
ACCOUNTS_LOCK = int.from_bytes(hashlib.sha256(b"daaas-accounts").digest()[:8], "big", signed=True)


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
    password_hash = hash_password(password) if password else None  # slow: before the lock
    lock_accounts(db)
    if db.scalar(select(User.id).where(User.username == username)) is not None:
        raise Conflict(f"A user called '{username}' already exists.")
    uid = next_uid(db, settings)
    user = User(username=username, display_name=display_name or username, email=email,
                password_hash=password_hash,
                identity_source=source, uid=uid, gid=uid, groups=list(groups or []),
                instruments=list(instruments or []), is_admin=is_admin)
    db.add(user)
    db.flush()
    return user


def lock_accounts(db: Session) -> None:
    """Hold, until ``db`` commits or rolls back, the lock under which accounts are created, so
    that reading the highest uid and inserting the next is one step for concurrent creators
    (two first sign-ins, the worker's warm-pool account). Raises only database errors."""
    if db.get_bind().dialect.name == "postgresql":
        db.execute(select(func.pg_advisory_xact_lock(ACCOUNTS_LOCK)))
    else:
        # SQLite: any write statement, even one that matches no row, takes the database's
        # write lock, which other writers wait for (busy timeout) until this transaction ends.
        db.execute(update(User).where(false()).values(uid=User.uid)
                   .execution_options(synchronize_session=False))


def next_uid(db: Session, settings: Settings) -> int:
    """Return the next free POSIX uid (from ``first_uid``); the caller holds
    :func:`lock_accounts` and inserts the account in the same transaction."""
    return max(settings.first_uid - 1, db.scalar(select(func.max(User.uid))) or 0) + 1


def get_user(db: Session, username: str) -> User:
    """Return the user called ``username``; raises NotFound."""
    user = db.scalar(select(User).where(User.username == username))
    if user is None:
        raise NotFound(f"There is no user called '{username}'.")
    return user


def set_password(db: Session, username: str, password: str) -> None:
    """Replace the password of ``username`` and end all of their browser sessions.

    Raises NotFound or InvalidInput.
    """
    user = get_user(db, username)
    user.password_hash = hash_password(password)
    close_user_sessions(db, user)


def set_active(db: Session, username: str, active: bool) -> User:
    """Enable or disable the account ``username``; disabling ends all of their browser
    sessions at once (API tokens and app passwords stop working while it is disabled).
    Returns the user; raises NotFound."""
    user = get_user(db, username)
    user.is_active = active
    if not active:
        close_user_sessions(db, user)
    return user


def sign_in(db: Session, factory: sessionmaker[Session], backend: IdentityBackend,
            settings: Settings, username: str, password: str, remote_addr: str) -> User:
    """Check the credentials and return the signed-in user.

    Raises RateLimited while this account is in backoff from this address or the address has
    spent its failure budget (:func:`check_throttle`), and SignInFailed for wrong
    credentials. Attempts are recorded in their own transaction so a failure is counted even
    though the request itself rolls back.
    """
    username = username.strip().lower()[:64]
    check_throttle(db, settings, username, remote_addr)
    try:
        identity = backend.authenticate(db, username, password)
    except Exception:
        _record_attempt(factory, username, remote_addr, succeeded=False)
        raise
    _record_attempt(factory, username, remote_addr, succeeded=True)
    user = _local_user_for(db, settings, identity, backend.password_source)
    if not user.is_active:  # an external backend (Keystone) knows no local disable
        raise SignInFailed("This account is disabled. Ask an administrator.",
                           f"sign-in refused: account {user.username} is disabled here")
    user.last_sign_in_at = utcnow()
    return user


def check_throttle(db: Session, settings: Settings, username: str, remote_addr: str) -> None:
    """Refuse a sign-in attempt that the throttle holds back; returns None otherwise.

    Two limits, over the failures of the last ``login_failure_window_seconds``:

    - per (account, address): after ``login_max_failures`` failures since the pair's last
      success, the pair waits ``login_backoff_seconds`` after its latest failure, doubled for
      each further failure, at most ``login_backoff_max_seconds``. Other addresses are not
      affected, so a guesser cannot lock the real user out;
    - per address: ``login_address_max_failures`` failures across all accounts (password
      spraying) refuse that address until they age out.

    Raises SignInThrottled (a RateLimited) saying how long to wait.
    """
    now = utcnow()
    since = now - timedelta(seconds=settings.login_failure_window_seconds)
    failed = (SignInAttempt.at >= since) & SignInAttempt.succeeded.is_(False)
    from_address = db.scalar(select(func.count(SignInAttempt.id)).where(
        failed, SignInAttempt.remote_addr == remote_addr)) or 0
    if from_address >= settings.login_address_max_failures:
        oldest = db.scalar(select(func.min(SignInAttempt.at)).where(
            failed, SignInAttempt.remote_addr == remote_addr)) or now
        wait = oldest + timedelta(seconds=settings.login_failure_window_seconds) - now
        raise SignInThrottled(wait, f"sign-in refused: {from_address} failures from "
                              f"{remote_addr} (all accounts) within the window; tried "
                              f"{username!r}")
    pair = (SignInAttempt.username == username) & (SignInAttempt.remote_addr == remote_addr)
    last_success = db.scalar(select(func.max(SignInAttempt.at)).where(
        pair, SignInAttempt.succeeded.is_(True), SignInAttempt.at >= since))
    recent = failed & pair
    if last_success is not None:
        recent = recent & (SignInAttempt.at > last_success)
    count, latest = db.execute(select(func.count(SignInAttempt.id),
                                      func.max(SignInAttempt.at)).where(recent)).one()
    if not count or count < settings.login_max_failures or latest is None:
        return
    doublings = min(count - settings.login_max_failures, 30)
    backoff = min(settings.login_backoff_max_seconds,
                  settings.login_backoff_seconds * 2 ** doublings)
    wait = latest + timedelta(seconds=backoff) - now
    if wait > timedelta(0):
        raise SignInThrottled(wait, f"sign-in backoff for {username!r} from {remote_addr}: "
                              f"{count} failures, {backoff} s after the latest")


class SignInThrottled(RateLimited):
    """A sign-in held back by the throttle; ``retry_after`` is the wait in whole seconds."""

    def __init__(self, wait: timedelta, log_message: str) -> None:
        self.retry_after = max(1, int(wait.total_seconds() + 0.999))
        seconds = self.retry_after
        when = f"{seconds} seconds" if seconds < 120 else f"{(seconds + 59) // 60} minutes"
        super().__init__(f"Too many failed sign-in attempts. Wait {when} and try again, or ask "
                         "an administrator to reset your password.", log_message)


def _record_attempt(factory: sessionmaker[Session], username: str, remote_addr: str,
                    succeeded: bool) -> None:
    with unit_of_work(factory) as attempts:
        attempts.add(SignInAttempt(username=username[:64], remote_addr=remote_addr[:64],
                                   succeeded=succeeded))
        if not succeeded:  # audited here: the request's own transaction rolls back
            audit.record(attempts, "sign_in.failed", actor=username, target=username,
                         detail="wrong credentials or unknown account")


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
