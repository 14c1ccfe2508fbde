"""Administrators' pages."""

from __future__ import annotations

from datetime import timedelta

from flask import Blueprint, redirect, render_template, request, url_for
from pydantic import ValidationError
from werkzeug.wrappers import Response

from daaas.portal.admin import schemas, service
from daaas.portal.admin.api import machine_filter, period
from daaas.portal.admin.capacity import capacity_report
from daaas.portal.admin.usage import GROUP_BYS, usage, usage_csv, usage_svg
from daaas.portal.api.schema import field_errors
from daaas.portal.auth.current import require_admin
from daaas.portal.auth.service import get_user
from daaas.portal.config import parse_hours_list
from daaas.portal.db import utcnow
from daaas.portal.errors import InvalidInput
from daaas.portal.lifecycle import db
from daaas.portal.machines import extensions
from daaas.portal.machines.capacity import (
    age_text,
    capacity_path,
    describe_flavors,
    read_capacity,
)
from daaas.portal.machines.orphans import orphans_path, read_orphans
from daaas.portal.machines.states import State
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
    """List everyone's machines matching the filters (state, user, environment, flavour, age,
    idle), newest first, with checkboxes for a bulk stop or delete, the provider's remaining
    capacity and its orphans as the reconciler last read them (the provider is never asked
    from a page). A filter that does not parse is shown, not applied."""
    require_admin()
    error = ""
    try:
        query = schemas.MachineQuery.model_validate(
            {k: v for k, v in request.args.items() if k in schemas.MachineQuery.model_fields
             and v != ""})
    except ValidationError as exc:
        query, error = schemas.MachineQuery.model_validate({}), field_errors(exc)
    now = utcnow()
    try:
        rows, total = service.filter_machines(db(), machine_filter(query), now)
    except InvalidInput as exc:
        error = exc.user_message
        rows, total = service.filter_machines(db(), service.MachineFilter(), now)
    rt = runtime()
    return render_template("admin/machines.html", machines=rows, total=total, query=query,
                           filter_error=error, now=now, idle_for=service.idle_for,
                           states=[s.value for s in State],
                           environments=sorted(rt.catalogue.environments),
                           flavors=sorted(describe_flavors(rt.settings)),
                           capacity=read_capacity(capacity_path(rt.settings), now),
                           orphans=read_orphans(orphans_path(rt.settings), now),
                           age_text=age_text,
                           notices=rt.provider.notices())


@blueprint.post("/machines/confirm")
def confirm_bulk() -> str:
    """Step one of a bulk action: show the chosen machines and ask for the reason their
    owners will see. Raises InvalidInput for no machines or an unknown action."""
    require_admin()
    action = request.form.get("action", "")
    ids = request.form.getlist("machine")[:service.MAX_BULK]
    if action not in ("stop", "delete") or not ids:
        raise InvalidInput("Choose one or more machines and Stop or Delete.")
    return render_template("admin/confirm.html", action=action,
                           machines=service.machines_by_ids(db(), ids),
                           max_reason=service.MAX_REASON)


@blueprint.post("/machines/bulk")
def bulk() -> str:
    """Step two: stop or delete the confirmed machines with the reason
    (:func:`service.bulk_action`) and show what was done and what was refused."""
    admin = require_admin()
    result = service.bulk_action(db(), admin, runtime().provider, request.form.get("action", ""),
                                 request.form.getlist("machine"), request.form.get("reason"))
    return render_template("admin/bulk_done.html", result=result)


@blueprint.get("/users")
def users() -> str:
    """Search users (``q``): groups, what each holds now, whether disabled."""
    require_admin()
    text = request.args.get("q", "")[:200]
    return render_template("admin/users.html", q=text,
                           lines=service.search_users(db(), runtime().settings, text))


@blueprint.get("/users/<username>")
def user(username: str) -> str:
    """One user: usage, machines, and the disable/enable form. Raises NotFound."""
    require_admin()
    found = get_user(db(), username)
    settings = runtime().settings
    usage_now = service.usage_of(db(), settings, [found.id]).get(found.id, service.Usage())
    return render_template("admin/user.html", person=found, usage=usage_now,
                           quota=service.effective_quotas(db(), settings, [found]).get(
                               found.id, ()),
                           machines=service.user_machines(db(), found),
                           max_reason=service.MAX_REASON)


@blueprint.post("/users/<username>/disable")
def disable(username: str) -> Response:
    """Disable the account with the form's reason (``stop_machines`` checkbox); back to it."""
    admin = require_admin()
    service.disable_user(db(), admin, username, request.form.get("reason", ""),
                         stop_machines=request.form.get("stop_machines") == "1",
                         provider=runtime().provider)
    return redirect(url_for("admin.user", username=username), code=303)


@blueprint.post("/users/<username>/enable")
def enable(username: str) -> Response:
    """Enable the account again; back to it."""
    service.enable_user(db(), require_admin(), username)
    return redirect(url_for("admin.user", username=username), code=303)


@blueprint.get("/capacity")
def capacity() -> str:
    """Capacity per flavour and GPU model, used and free now, next free and its method."""
    require_admin()
    now = utcnow()
    return render_template("admin/capacity.html", now=now,
                           report=capacity_report(db(), runtime().settings, now))


def _usage_query() -> schemas.UsageQuery:
    try:
        return schemas.UsageQuery.model_validate(
            {k: v for k, v in request.args.items() if k in schemas.UsageQuery.model_fields
             and v != ""})
    except ValidationError as exc:
        raise InvalidInput(f"{field_errors(exc)}.") from None


@blueprint.get("/usage")
def usage_page() -> str:
    """Machine-hours and GPU-hours per environment, group or user over a period: an SVG bar
    chart rendered here, a table, and a CSV link. Raises InvalidInput for a bad period."""
    require_admin()
    query, now = _usage_query(), utcnow()
    start, end = period(query.start, query.end, now.date())
    rows = usage(db(), runtime().settings, start, end, query.by, now)
    last = (end - timedelta(days=1)).date()
    title = f"Usage by {query.by}, {start.date()} to {last} (UTC)"
    return render_template("admin/usage.html", rows=rows, by=query.by, by_options=GROUP_BYS,
                           start=start.date(), end=last, chart=usage_svg(rows, title))


@blueprint.get("/usage.csv")
def usage_download() -> Response:
    """The usage report as CSV (same parameters as the page)."""
    require_admin()
    query, now = _usage_query(), utcnow()
    start, end = period(query.start, query.end, now.date())
    rows = usage(db(), runtime().settings, start, end, query.by, now)
    name = f"usage-{query.by}-{start.date()}-{(end - timedelta(days=1)).date()}.csv"
    return Response(usage_csv(rows, query.by, start, end), mimetype="text/csv",
                    headers={"Content-Disposition": f'attachment; filename="{name}"'})


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
