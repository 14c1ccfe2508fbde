"""The administrators' Lifetimes page: machines ending soon, idle machines (with since when),
extension requests waiting, and the home folders kept after a policy deletion (restore)."""

from __future__ import annotations

from datetime import timedelta

from flask import Blueprint, redirect, render_template, request, url_for
from werkzeug.wrappers import Response

from daaas.portal.audit.service import record
from daaas.portal.auth.current import require_admin
from daaas.portal.config import parse_hours_list
from daaas.portal.db import utcnow
from daaas.portal.lifecycle import db
from daaas.portal.machines import extensions, homes
from daaas.portal.machines.policy import idle_machines
from daaas.portal.runtime import runtime

blueprint = Blueprint("admin_lifetimes", __name__, url_prefix="/admin")


@blueprint.get("/lifetimes")
def page() -> str:
    """Show what the lifetime policy is about to do and what waits for an administrator."""
    require_admin()
    settings, now = runtime().settings, utcnow()
    hours = max(parse_hours_list(settings.expiry_warning_hours), default=48.0)
    idle = idle_machines(db(), now) if settings.idle_stop and runtime().provider.supports_stop \
        else []
    return render_template("admin/lifetimes.html", now=now, soon_hours=hours,
                           ending=extensions.ending_soon(db(), now + timedelta(hours=hours)),
                           idle=idle, requests=extensions.list_pending(db()),
                           kept=homes.list_kept(db()), grace_days=settings.home_grace_days,
                           restored=request.args.get("restored", ""))


@blueprint.post("/lifetimes/homes/<machine_id>/restore")
def restore_home(machine_id: str) -> Response:
    """Restore a kept home folder into its owner's storage; back to the page, which names
    where it went. Raises NotFound or Conflict as :func:`homes.restore_home` does."""
    admin = require_admin()
    home = homes.restore_home(db(), runtime().settings, machine_id, admin.username, utcnow())
    record(db(), "home.restore.page", actor=admin.username, target=machine_id, admin=True)
    return redirect(url_for("admin_lifetimes.page", restored=f"{home.user.username}: "
                            f"{home.restored_to}"), code=303)
