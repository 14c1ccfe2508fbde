"""CSRF protection for every state-changing request made with the session cookie.

Forms carry a hidden ``csrf_token``; JavaScript sends the ``X-CSRF-Token`` header. Requests
authenticated by an API token carry no cookie and need neither. Views called by machines rather
than browsers (a VM's bootstrap agent authenticates with its own token in the request) are
marked with :func:`csrf_exempt`; such a view must never act on the session cookie.
"""

from __future__ import annotations

import hmac
import secrets
from collections.abc import Callable
from typing import TypeVar

from flask import Flask, current_app, request, session

from daaas.portal.errors import Forbidden

SAFE_METHODS = {"GET", "HEAD", "OPTIONS"}
CSRF_MESSAGE = ("This form has expired or did not come from this portal. Reload the page and "
                "try again.")
EXEMPT_ATTRIBUTE = "csrf_exempt"
V = TypeVar("V", bound=Callable[..., object])


def csrf_exempt(view: V) -> V:
    """Decorator: exempt ``view`` from the CSRF check (apply below the route decorator).

    Only for views that authenticate by a token in the request and ignore the session cookie.
    Returns the view itself, marked.
    """
    setattr(view, EXEMPT_ATTRIBUTE, True)
    return view


def csrf_token() -> str:
    """Return this browser session's CSRF token, creating it if needed."""
    token = session.get("csrf")
    if not token:
        token = secrets.token_urlsafe(32)
        session["csrf"] = token
    return str(token)


def check_csrf() -> None:
    """Refuse an unsafe request without the session's token; raises Forbidden."""
    if request.method in SAFE_METHODS or _exempt():
        return
    if request.headers.get("Authorization", "").lower().startswith("bearer "):
        return
    sent = request.form.get("csrf_token") or request.headers.get("X-CSRF-Token", "")
    expected = session.get("csrf", "")
    if not expected or not hmac.compare_digest(str(sent), str(expected)):
        raise Forbidden(CSRF_MESSAGE, f"CSRF check failed on {request.method} {request.path}")


def _exempt() -> bool:
    view = current_app.view_functions.get(request.endpoint or "")
    return bool(getattr(view, EXEMPT_ATTRIBUTE, False))


def install(app: Flask) -> None:
    """Check every request and offer ``csrf_token()`` to templates."""
    app.before_request(check_csrf)
    app.jinja_env.globals["csrf_token"] = csrf_token
