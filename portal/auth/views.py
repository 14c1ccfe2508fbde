"""Sign-in and sign-out pages."""

from __future__ import annotations

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
def sign_in() -> tuple[str, int] | Response:
    """Check the credentials; on success start a session and go on."""
    rt = runtime()
    username = request.form.get("username", "")
    try:
        user = service.sign_in(db(), rt.session_factory, rt.identity, rt.settings, username,
                               request.form.get("password", ""), request.remote_addr or "")
    except (SignInFailed, RateLimited) as exc:
        return render_template("auth/sign_in.html", next=_next_url(), username=username,
                               error=exc.user_message), exc.status_code
    start_session(user)
    return redirect(_next_url())


@blueprint.post("/sign-out")
def sign_out() -> Response:
    """End the session and return to the sign-in page."""
    end_session()
    return redirect(url_for("auth.sign_in_form"))


def _next_url() -> str:
    target = request.values.get("next", "")
    # Only local paths: never redirect off-site after sign-in.
    if target.startswith("/") and not target.startswith("//"):
        return target
    return url_for("analysis.index")
