"""Sign-in and sign-out pages."""

from __future__ import annotations

import unicodedata
from urllib.parse import unquote, urlsplit

from flask import Blueprint, redirect, render_template, request, url_for
from werkzeug.wrappers import Response

from daaas.portal.auth import service
from daaas.portal.auth.current import current_user, end_session, start_session
from daaas.portal.errors import RateLimited, SignInFailed
from daaas.portal.lifecycle import db
from daaas.portal.runtime import runtime

blueprint = Blueprint("auth", __name__)


@blueprint.get("/sign-in")
def sign_in_form() -> str | Response:
    """Show the sign-in form (or go on if already signed in)."""
    if current_user() is not None:
        return redirect(_next_url())
    return render_template("auth/sign_in.html", next=_next_url(), username="")


@blueprint.post("/sign-in")
def sign_in() -> tuple[str, int] | tuple[str, int, dict[str, str]] | Response:
    """Check the credentials; on success start a session and go on."""
    rt = runtime()
    username = request.form.get("username", "")
    try:
        user = service.sign_in(db(), rt.session_factory, rt.identity, rt.settings, username,
                               request.form.get("password", ""), request.remote_addr or "")
    except (SignInFailed, RateLimited) as exc:
        page = render_template("auth/sign_in.html", next=_next_url(), username=username,
                               error=exc.user_message)
        if isinstance(exc, service.SignInThrottled):
            return page, exc.status_code, {"Retry-After": str(exc.retry_after)}
        return page, exc.status_code
    start_session(user)
    return redirect(_next_url())


@blueprint.post("/sign-out")
def sign_out() -> Response:
    """End the session and return to the sign-in page."""
    end_session()
    return redirect(url_for("auth.sign_in_form"))


def _next_url() -> str:
    return safe_next(request.values.get("next", "")) or url_for("analysis.index")


def safe_next(target: str) -> str | None:
    """Return ``target`` when it is a path on this portal, else None (then the caller goes to
    the Analysis page).

    Refused: anything with a scheme or a host (``https:evil``, ``//evil``), any backslash
    (some browsers read a slash and a backslash as two slashes), whitespace or control
    characters (browsers drop a tab or newline, so slash, tab, slash becomes ``//``; and a
    newline must never reach the Location header), anything not starting with one ``/``, and
    anything that does one of these once percent-decoded. Raises nothing.
    """
    if not target or len(target) > 2048 or not target.startswith("/"):
        return None
    if any(char == "\\" or char.isspace() or unicodedata.category(char)[0] in "CZ"
           for char in target):
        return None
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or target.startswith("//"):
        return None
    decoded = unquote(target)  # a proxy or browser decoding once must not make it leave either
    if decoded.startswith("//") or "\\" in decoded[:2] or any(
            char.isspace() or unicodedata.category(char)[0] in "CZ" for char in decoded[:3]):
        return None
    return target
