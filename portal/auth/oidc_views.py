"""The OpenID Connect sign-in routes, registered only when ``identity_backend`` is an
:class:`~daaas.portal.auth.oidc.OidcIdentityBackend` (see :mod:`daaas.portal.auth.oidc`)."""

from __future__ import annotations

import logging

from flask import Blueprint, redirect, render_template, request, session, url_for
from werkzeug.wrappers import Response

from daaas.portal.auth import oidc
from daaas.portal.auth.current import start_session
from daaas.portal.auth.sessions import keep_id_token
from daaas.portal.auth.views import external_url, next_url, page_options, safe_next
from daaas.portal.errors import NotFound, SignInFailed
from daaas.portal.experiments import service as experiments_service
from daaas.portal.lifecycle import db
from daaas.portal.runtime import runtime

log = logging.getLogger(__name__)
blueprint = Blueprint("oidc", __name__)
#: The Flask session key holding the state of this browser's sign-in under way.
STATE_KEY = "oidc_state"


def _backend() -> oidc.OidcIdentityBackend:
    backend = runtime().identity
    if not isinstance(backend, oidc.OidcIdentityBackend):
        raise NotFound("This portal does not sign in through an OpenID provider.")
    return backend


def _redirect_uri() -> str:
    return external_url("oidc.callback")


@blueprint.post("/sign-in/oidc")
def begin() -> Response:
    """Send the browser to the provider's sign-in (authorization-code flow with PKCE)."""
    pending = oidc.begin_sign_in(db(), _backend(), _redirect_uri(), next_url())
    session[STATE_KEY] = pending.state
    return redirect(pending.url)


@blueprint.get("/sign-in/oidc/callback")
def callback() -> tuple[str, int] | Response:
    """Finish the sign-in the provider sent back; start the portal session and go on."""
    backend = _backend()
    expected = str(session.pop(STATE_KEY, "") or "")
    error = request.args.get("error", "")
    try:
        if error:
            raise SignInFailed(f"{backend.provider_name} did not sign you in. Try again.",
                               f"oidc: the provider answered error={error[:100]!r}")
        user, id_token, after = oidc.finish_sign_in(
            db(), runtime().settings, backend, request.args.get("state", ""), expected,
            request.args.get("code", ""), _redirect_uri(), request.args.get("iss"))
    except (SignInFailed, oidc.OidcUnavailable) as exc:
        log.info("oidc sign-in refused: %s", exc.log_message)
        return render_template("auth/sign_in.html", next=url_for("analysis.index"),
                               username="", error=exc.user_message,
                               **page_options()), exc.status_code
    start_session(user)
    keep_id_token(db(), str(session["sid"]), id_token)
    experiments_service.first_look(db(), runtime().experiments, user.username)
    log.info("oidc sign-in: %s", user.username)
    return redirect(safe_next(after) or url_for("analysis.index"))
