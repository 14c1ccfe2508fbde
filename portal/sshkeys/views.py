"""The SSH keys page (/account/ssh-keys): list, add (pasted, checked) and remove public keys."""

from __future__ import annotations

from flask import Blueprint, flash, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue
from werkzeug.wrappers import Response

from daaas.portal.auth.current import require_user
from daaas.portal.errors import Conflict, InvalidInput
from daaas.portal.lifecycle import db
from daaas.portal.runtime import runtime
from daaas.portal.sshkeys import service

blueprint = Blueprint("sshkeys", __name__)


@blueprint.get("/account/ssh-keys")
def index() -> ResponseReturnValue:
    """Show the user's SSH keys and the form to add one."""
    return _page()


@blueprint.post("/account/ssh-keys")
def add() -> ResponseReturnValue:
    """Add the pasted key and go back to the list; a refused key shows the page again with the
    reason and the pasted text (400, or 409 for a duplicate or too many keys)."""
    text, name = request.form.get("public_key", ""), request.form.get("name", "")
    try:
        key = service.add_key(db(), require_user(), text, name)
    except (InvalidInput, Conflict) as exc:
        return _page(exc.status_code, error=exc.user_message, typed_key=text[:4096],
                     typed_name=name[:service.MAX_NAME])
    flash(f"SSH key '{key.name}' added ({key.fingerprint}): machines you launch from now on "
          "accept it.")
    return redirect(url_for("sshkeys.index"))


@blueprint.post("/account/ssh-keys/<int:key_id>/remove")
def remove(key_id: int) -> Response:
    """Remove one of the user's keys and go back to the list. Raises NotFound."""
    key = service.remove_key(db(), require_user(), key_id)
    flash(f"SSH key '{key.name}' removed: machines you launch from now on no longer accept it.")
    return redirect(url_for("sshkeys.index"))


def _page(status: int = 200, **extra: object) -> ResponseReturnValue:
    user = require_user()
    return render_template("sshkeys/index.html", keys=service.keys_of(db(), user),
                           bastion=runtime().settings.ssh_bastion, max_keys=service.MAX_KEYS,
                           max_name=service.MAX_NAME, **extra), status
