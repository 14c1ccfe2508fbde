"""Who is making this request: a browser session or a personal API token."""

from __future__ import annotations

import secrets
from collections.abc import Callable
from functools import wraps
from typing import ParamSpec, TypeVar

from flask import g, request, session

from daaas.portal.audit.service import record
from daaas.portal.auth.models import User
from daaas.portal.auth.service import user_for_token
from daaas.portal.auth.sessions import close_session, open_session, session_user
from daaas.portal.errors import AuthenticationRequired, Forbidden
from daaas.portal.lifecycle import db
from daaas.portal.runtime import runtime

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
    secret = session.get("sid")
    if not isinstance(secret, str) or not secret:
        if "user_id" in session:  # a cookie of the old kind, or a forged one: drop it
            session.clear()
        return None
    user = session_user(db(), runtime().settings, secret)
    if user is None:
        session.clear()
    return user


def start_session(user: User) -> None:
    """Sign ``user`` in on this browser: a new server-side session (the cookie holds only its
    random id) and a fresh CSRF token. Raises nothing beyond database errors."""
    session.clear()
    session.permanent = True
    session["sid"] = open_session(db(), runtime().settings, user, request.remote_addr or "")
    session["csrf"] = secrets.token_urlsafe(32)
    g.user = user
    record(db(), "sign_in", actor=user.username, target=user.username,
           detail=f"identity: {user.identity_source}")


def end_session() -> None:
    """Sign out: end this browser's session on the server (every copy of its cookie stops
    working) and forget the cookie's contents; audited when a session was signed in. Raises
    nothing beyond database errors."""
    secret = session.get("sid")
    if isinstance(secret, str) and secret:
        user = _from_session()
        if user is not None:
            record(db(), "sign_out", actor=user.username, target=user.username)
        close_session(db(), secret)
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
