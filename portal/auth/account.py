"""The account page: who you are, and your personal API tokens (create, shown once; revoke).

WebDAV app passwords are on My Data, next to the address they are for; this page links there.
"""

from __future__ import annotations

from flask import Blueprint, flash, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue
from werkzeug.wrappers import Response

from daaas.portal.auth import tokens
from daaas.portal.auth.current import require_user
from daaas.portal.errors import InvalidInput
from daaas.portal.lifecycle import db
from daaas.portal.runtime import runtime

blueprint = Blueprint("account", __name__)


@blueprint.get("/account")
def index() -> ResponseReturnValue:
    """Show the account page with the user's API tokens."""
    return _page()


def _page(status: int = 200, **extra: object) -> ResponseReturnValue:
    user = require_user()
    settings = runtime().settings
    return render_template(
        "auth/account.html", user=user, tokens=tokens.tokens_of(db(), user),
        is_expired=tokens.is_expired, default_days=tokens.lifetime(settings, None),
        max_days=settings.api_token_max_lifetime_days, cap=settings.api_tokens_per_user,
        **extra), status


@blueprint.post("/account/tokens")
def create() -> ResponseReturnValue:
    """Create an API token from the form and show its secret, once (201); a refused name,
    lifetime or a user at the cap shows the page again with the reason (400)."""
    user = require_user()
    raw_days = request.form.get("days", "").strip()
    try:
        if raw_days and not (raw_days.isascii() and raw_days.isdigit() and len(raw_days) <= 9):
            raise InvalidInput("Give the lifetime as a whole number of days.")
        made = tokens.new_token(db(), runtime().settings, user, request.form.get("name", ""),
                                int(raw_days) if raw_days else None)
    except InvalidInput as exc:
        return _page(400, error=exc.user_message, name=request.form.get("name", "")[:100])
    return _page(201, new_token=made)


@blueprint.post("/account/tokens/<int:token_id>/revoke")
def revoke(token_id: int) -> Response:
    """Revoke one of the user's API tokens and go back to the account page."""
    token = tokens.revoke_token(db(), token_id, require_user())
    flash(f"API token '{token.name}' revoked: scripts using it can no longer sign in.")
    return redirect(url_for("account.index") + "#api-tokens")
