"""CSRF protection for every state-changing request made with the session cookie.

Forms carry a hidden ``csrf_token``; JavaScript sends the ``X-CSRF-Token`` header. Requests
authenticated by an API token carry no cookie and need neither.
"""

from __future__ import annotations

import hmac
import secrets

from flask import Flask, request, session

from portal.errors import Forbidden

SAFE_METHODS = {"GET", "HEAD", "OPTIONS"}
CSRF_MESSAGE = ("This form has expired or did not come from this portal. Reload the page and "
                "try again.")


def csrf_token() -> str:
    """Return this browser session's CSRF token, creating it if needed."""
    token = session.get("csrf")
    if not token:
        token = secrets.token_urlsafe(32)
        session["csrf"] = token
    return str(token)


def check_csrf() -> None:
    """Refuse an unsafe request without the session's token; raises Forbidden."""
    if request.method in SAFE_METHODS:
        return
    if request.headers.get("Authorization", "").lower().startswith("bearer "):
        return
    sent = request.form.get("csrf_token") or request.headers.get("X-CSRF-Token", "")
    expected = session.get("csrf", "")
    if not expected or not hmac.compare_digest(str(sent), str(expected)):
        raise Forbidden(CSRF_MESSAGE, f"CSRF check failed on {request.method} {request.path}")


def install(app: Flask) -> None:
    """Check every request and offer ``csrf_token()`` to templates."""
    app.before_request(check_csrf)
    app.jinja_env.globals["csrf_token"] = csrf_token
