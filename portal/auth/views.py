"""Sign-in and sign-out pages."""

from __future__ import annotations

import unicodedata
from typing import Any, cast
from urllib.parse import unquote, urlsplit

from flask import Blueprint, Flask, redirect, render_template, request, session, url_for
from flask.blueprints import BlueprintSetupState
from werkzeug.wrappers import Response

from daaas.portal.auth import service
from daaas.portal.auth.current import current_user, end_session, start_session
from daaas.portal.auth.sessions import take_id_token
from daaas.portal.errors import RateLimited, SignInFailed
from daaas.portal.experiments import service as experiments_service
from daaas.portal.lifecycle import db
from daaas.portal.runtime import runtime
from daaas.portal.security import FORM_TARGETS_KEY

blueprint = Blueprint("auth", __name__)


@blueprint.record_once
def _identity_routes(state: BlueprintSetupState) -> None:
    """Add the identity backend's own routes (OIDC's sign-in and callback) and let the
    sign-in and sign-out forms redirect to its provider (the CSP's form-action)."""
    app = cast(Flask, state.app)
    identity = runtime(app).identity
    extra = identity.blueprint()
    if extra is not None:
        app.register_blueprint(extra)
    targets = identity.form_targets()
    if targets:
        app.config[FORM_TARGETS_KEY] = [*app.config.get(FORM_TARGETS_KEY, ()), *targets]


def page_options() -> dict[str, Any]:
    """Return what the sign-in page shows besides the form's values: the button to an
    identity provider (``external_sign_in``, its label or "") and whether the password form is
    offered (``password_sign_in``)."""
    identity = runtime().identity
    return {"external_sign_in": identity.external_sign_in,
            "password_sign_in": identity.password_sign_in}


def external_url(endpoint: str) -> str:
    """Return the absolute URL of ``endpoint`` as users reach it: under ``public_url`` when
    it is set, else from this request's host. Raises nothing."""
    public = runtime().settings.public_url.rstrip("/")
    return public + url_for(endpoint) if public else url_for(endpoint, _external=True)


@blueprint.get("/sign-in")
def sign_in_form() -> str | Response:
    """Show the sign-in form (or go on if already signed in)."""
    if current_user() is not None:
        return redirect(next_url())
    return render_template("auth/sign_in.html", next=next_url(), username="", **page_options())


@blueprint.post("/sign-in")
def sign_in() -> tuple[str, int] | tuple[str, int, dict[str, str]] | Response:
    """Check the credentials; on success start a session and go on."""
    rt = runtime()
    username = request.form.get("username", "")
    try:
        user = service.sign_in(db(), rt.session_factory, rt.identity, rt.settings, username,
                               request.form.get("password", ""), request.remote_addr or "")
    except (SignInFailed, RateLimited) as exc:
        page = render_template("auth/sign_in.html", next=next_url(), username=username,
                               error=exc.user_message, **page_options())
        if isinstance(exc, service.SignInThrottled):
            return page, exc.status_code, {"Retry-After": str(exc.retry_after)}
        return page, exc.status_code
    start_session(user)
    experiments_service.first_look(db(), rt.experiments, user.username)
    return redirect(next_url())


@blueprint.post("/sign-out")
def sign_out() -> Response:
    """End the session and return to the sign-in page; a session signed in at an OpenID
    provider goes on to the provider's sign-out (which returns to the sign-in page)."""
    secret = session.get("sid")
    id_token = take_id_token(db(), secret) if isinstance(secret, str) and secret else ""
    end_session()
    provider = runtime().identity.logout_redirect(
        id_token, external_url("auth.sign_in_form")) if id_token else None
    return redirect(provider or url_for("auth.sign_in_form"))


def next_url() -> str:
    """Return where to go after signing in: the request's ``next`` when it is a path on this
    portal (:func:`safe_next`), else the Analysis page."""
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
