"""Administrators' pages."""

from __future__ import annotations

from datetime import timedelta

from flask import Blueprint, redirect, render_template, request, url_for
from werkzeug.wrappers import Response

from daaas.portal.auth.current import require_admin
from daaas.portal.config import parse_hours_list
from daaas.portal.db import utcnow
from daaas.portal.lifecycle import db
from daaas.portal.machines import extensions
from daaas.portal.machines.orphans import find_orphans
from daaas.portal.machines.service import list_machines
from daaas.portal.providers import Capacity, ProviderError
from daaas.portal.runtime import runtime

blueprint = Blueprint("admin", __name__, url_prefix="/admin")


@blueprint.get("/catalogue")
def catalogue() -> str:
    """List every catalogue entry, valid or not, with the reasons an entry is invalid."""
    require_admin()
    cat = runtime().catalogue
    return render_template("admin/catalogue.html", catalogue=cat)


@blueprint.get("/machines")
def machines() -> str:
    """List every user's machines, newest first, with the provider's remaining capacity."""
    admin = require_admin()
    raw = request.args.get("offset", "0")
    offset = int(raw) if raw.isascii() and raw.isdigit() and len(raw) <= 9 else 0
    rows, total = list_machines(db(), admin, everyone=True, limit=100, offset=offset,
                                with_events=False)
    return render_template("admin/machines.html", machines=rows, total=total, offset=offset,
                           capacity=_capacity(), orphans=_orphans(),
                           notices=runtime().provider.notices())


@blueprint.get("/extensions")
def extension_requests() -> str:
    """List the extension requests waiting for an administrator, oldest first."""
    require_admin()
    settings = runtime().settings
    hours = max(parse_hours_list(settings.expiry_warning_hours), default=48.0)
    return render_template("admin/extensions.html", requests=extensions.list_pending(db()),
                           decided=request.args.get("decided", ""), soon_hours=hours,
                           ending=extensions.ending_soon(db(), utcnow() + timedelta(
                               hours=hours)))


@blueprint.post("/extensions/<int:request_id>")
def decide_extension(request_id: int) -> Response:
    """Approve or refuse one extension request (form: ``decision``, ``reason``); back to the
    list. Raises Forbidden, NotFound or Conflict as :func:`extensions.decide` does."""
    admin = require_admin()
    approve = request.form.get("decision") == "approve"
    reason = request.form.get("reason", "")[:extensions.MAX_REASON]
    done = extensions.decide(db(), runtime().settings, admin, request_id, approve, reason)
    return redirect(url_for("admin.extension_requests", decided=done.status), code=303)


def _orphans() -> list[str] | str:
    """Machine ids the provider runs without a live machine, or why they cannot be listed."""
    try:
        return find_orphans(db(), runtime().provider)
    except ProviderError as exc:
        return exc.user_message


def _capacity() -> Capacity | str:
    """The provider's capacity, or why it cannot be told (asked once per page view)."""
    try:
        return runtime().provider.capacity()
    except ProviderError as exc:
        return exc.user_message
