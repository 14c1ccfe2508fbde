"""Who is making this request: a browser session or a personal API token."""

from __future__ import annotations

import secrets
from collections.abc import Callable
from functools import wraps
from typing import ParamSpec, TypeVar

from flask import g, request, session

from daaas.portal.auth.models import User
from daaas.portal.auth.service import user_for_token
from daaas.portal.errors import AuthenticationRequired, Forbidden
from daaas.portal.lifecycle import db

P = ParamSpec("P")
R = TypeVar("R")
SIGN_IN_NEEDED = "Sign in to continue."


def current_user() -> User | None:
    """Return the signed-in user of this request, or None."""
    if "user" not in g:
        g.user = _from_token() or _from_session()
    user: User | None = g.user
    return user


def _from_token() -> User | None:
    header = request.headers.get("Authorization", "")
    if not header.lower().startswith("bearer "):
        return None
    g.token_auth = True
    return user_for_token(db(), header.split(None, 1)[1].strip())


def _from_session() -> User | None:
    user_id = session.get("user_id")
    if user_id is None:
        return None
    user = db().get(User, user_id)
    if user is None or not user.is_active or session.get("auth_epoch") != _epoch(user):
        session.clear()
        return None
    return user


def _epoch(user: User) -> str:
    """Changes when the password changes, ending sessions signed in with the old one."""
    return (user.password_hash or user.identity_source)[-12:]


def start_session(user: User) -> None:
    """Sign ``user`` in on this browser: a fresh session and a fresh CSRF token."""
    session.clear()
    session.permanent = True
    session["user_id"] = user.id
    session["auth_epoch"] = _epoch(user)
    session["csrf"] = secrets.token_urlsafe(32)
    g.user = user


def end_session() -> None:
    """Sign out: forget everything in this browser's session."""
    session.clear()
    g.user = None


def require_user() -> User:
    """Return the signed-in user; raises AuthenticationRequired."""
    user = current_user()
    if user is None:
        raise AuthenticationRequired(SIGN_IN_NEEDED)
    return user


def require_admin() -> User:
    """Return the signed-in administrator; raises AuthenticationRequired or Forbidden."""
    user = require_user()
    if not user.is_admin:
        raise Forbidden("Only administrators may see this page.")
    return user


def signed_in(view: Callable[P, R]) -> Callable[P, R]:
    """Decorator: the view needs a signed-in user (401 or a redirect to sign-in otherwise)."""
    @wraps(view)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        require_user()
        return view(*args, **kwargs)
    return wrapper
