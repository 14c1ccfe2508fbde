"""Personal API tokens as their owners manage them: create (named, with a lifetime within the
settings' maximum, at most ``api_tokens_per_user`` live ones), list, revoke.

The secret is shown once, at creation; only its SHA-256 is stored
(:func:`daaas.portal.auth.service.create_token`), and a listing shows the name, the first
characters of the secret (``prefix``), when it was made, last used and when it expires.
Revoking deletes the row, so the token answers 401 at once, like an expired one
(:func:`daaas.portal.auth.service.user_for_token`).
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from daaas.portal.audit.service import operator, record
from daaas.portal.auth.models import ApiToken, User
from daaas.portal.auth.service import create_token
from daaas.portal.config import Settings
from daaas.portal.db import utcnow
from daaas.portal.errors import InvalidInput, NotFound

MAX_NAME_LENGTH = 100
#: Largest token id the API accepts in a path (PostgreSQL's INTEGER).
MAX_TOKEN_ID = 2**31 - 1


@dataclass(frozen=True)
class NewToken:
    """A token just made: its row and its secret, which is never shown again."""

    token: ApiToken
    secret: str


def token_name(raw: str) -> str:
    """Return ``raw`` stripped as a token name (empty: ``api``).

    Raises InvalidInput for a name over 100 characters or with control characters.
    """
    name = raw.strip() or "api"
    if len(name) > MAX_NAME_LENGTH:
        raise InvalidInput(f"Give the token a name of at most {MAX_NAME_LENGTH} characters.")
    if not name.isprintable():
        raise InvalidInput("A token's name may not contain line breaks, tabs or control "
                           "characters.")
    return name


def lifetime(settings: Settings, days: int | None) -> int:
    """Return the lifetime in days for a new token: ``days``, or the default
    (``api_token_lifetime_days``, at most the maximum) when None.

    Raises InvalidInput for fewer than one day or more than ``api_token_max_lifetime_days``.
    """
    longest = settings.api_token_max_lifetime_days
    if days is None:
        return min(settings.api_token_lifetime_days, longest)
    if not 1 <= days <= longest:
        raise InvalidInput(f"A token lives from 1 to {longest} days on this portal; "
                           f"{days} is not allowed.")
    return days


def live_token_count(db: Session, user: User) -> int:
    """Return how many of ``user``'s tokens have not expired."""
    return db.scalar(select(func.count(ApiToken.id)).where(
        ApiToken.user_id == user.id, ApiToken.expires_at > utcnow())) or 0


def new_token(db: Session, settings: Settings, user: User, name: str,
              days: int | None = None, *, actor: str | None = None) -> NewToken:
    """Create a token for ``user`` named ``name`` living ``days`` (None: the default); audited
    as ``user``'s own doing, or as the administrator ``actor``'s (the command line).

    Raises InvalidInput for a bad name or lifetime (:func:`token_name`, :func:`lifetime`) and
    when the user already holds ``api_tokens_per_user`` live tokens.
    """
    clean, span = token_name(name), lifetime(settings, days)
    cap = settings.api_tokens_per_user
    if live_token_count(db, user) >= cap:
        raise InvalidInput(f"You already have {cap} API tokens, the most this portal allows. "
                           "Revoke one you no longer use first.")
    token, secret = create_token(db, user, clean, span)
    record(db, "api_token.create", actor=actor or user.username, target=f"api token {token.id}",
           detail=f"{clean} of {user.username}, {span} days", admin=actor is not None)
    return NewToken(token, secret)


def tokens_of(db: Session, user: User) -> list[ApiToken]:
    """Return ``user``'s tokens, expired ones included, newest first."""
    return list(db.scalars(select(ApiToken).where(ApiToken.user_id == user.id)
                           .order_by(ApiToken.created_at.desc(), ApiToken.id.desc())))


def all_tokens(db: Session) -> list[tuple[ApiToken, str]]:
    """Return every token with its owner's user name, by user name, newest first."""
    rows = db.execute(select(ApiToken, User.username).join(User, User.id == ApiToken.user_id)
                      .order_by(User.username, ApiToken.created_at.desc(), ApiToken.id.desc()))
    return [(token, username) for token, username in rows]


def revoke_token(db: Session, token_id: int, owner: User | None) -> ApiToken:
    """Delete the token ``token_id`` (one of ``owner``'s; None: anyone's, for administrators
    on the command line) and return it; it stops working at once.

    Raises NotFound when there is no such token of ``owner``: the same answer whether it never
    existed, was revoked already or is someone else's.
    """
    token = db.get(ApiToken, token_id) if 0 < token_id <= MAX_TOKEN_ID else None
    if token is None or (owner is not None and token.user_id != owner.id):
        raise NotFound("There is no such API token (it may have been revoked already).")
    username = token.user.username
    db.delete(token)
    db.flush()
    record(db, "api_token.revoke", actor=owner.username if owner else operator(),
           target=f"api token {token.id}", detail=f"{token.name} of {username}",
           admin=owner is None)
    return token


def is_expired(token: ApiToken) -> bool:
    """Return True when ``token`` has expired."""
    return token.expires_at <= utcnow()
