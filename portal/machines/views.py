"""Machine pages: launch from a card, the machine page, stop, start, delete."""

from __future__ import annotations

from flask import Blueprint, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue
from werkzeug.wrappers import Response

from daaas.contextualisation import ContextualisationError
from daaas.portal.analysis.views import analysis_page
from daaas.portal.auth.current import require_user
from daaas.portal.bootstrap.userdata import inspectable_user_data
from daaas.portal.config import parse_hours_list
from daaas.portal.db import utcnow
from daaas.portal.errors import Conflict, Forbidden, InvalidInput
from daaas.portal.experiments.binding import experiment_for_launch
from daaas.portal.hpc.service import recorded_jobs
from daaas.portal.lifecycle import db, wants_json
from daaas.portal.machines import activity, extensions, service
from daaas.portal.machines.activity import keep_running_limit
from daaas.portal.machines.models import Machine
from daaas.portal.machines.naming import (
    MAX_NAME,
    experiment_on_desktop,
    size_label,
    storage_on_desktop,
    when_text,
)
from daaas.portal.machines.serialize import lifetime_json
from daaas.portal.machines.states import State
from daaas.portal.machines.timings import phase_timings
from daaas.portal.providers import ProviderError
from daaas.portal.quotas.service import QuotaExceeded
from daaas.portal.runtime import runtime
from daaas.portal.storage.files import human_size
from daaas.portal.storage.service import StorageArea, storage_area

blueprint = Blueprint("machines", __name__)


@blueprint.post("/machines")
def launch() -> ResponseReturnValue:
    """Record a launch request from an Analysis card, then show the machine.

    The form's one-time ``launch_id`` is its idempotency key: the same form sent twice (a
    double click) shows the one machine it launched. A refused launch (the machine limit, an
    environment not available here, no GPU free, a bad size or experiment) shows the Analysis
    page again with the reason next to that card's Launch button and the choices kept, with
    the error's status; a JSON caller gets the JSON error instead, and for a launch 201 with
    the machine's id, the URLs of its page and desktop, and ``instant``: the launch claimed a
    machine waiting in a warm pool (the card's script then opens the desktop page at once).
    """
    rt, user = runtime(), require_user()
    environment = request.form.get("environment", "")
    flavor, chosen = request.form.get("flavor") or None, request.form.get("experiment")
    try:
        key = service.check_key(request.form.get("launch_id"))
        experiment = experiment_for_launch(db(), rt, user, environment, chosen)
        machine = service.launch(db(), rt.settings, rt.catalogue, user, environment, flavor,
                                 experiment=experiment, provider=rt.provider, key=key,
                                 fingerprint=service.launch_fingerprint(environment, flavor,
                                                                        chosen)).machine
    except (Conflict, InvalidInput, Forbidden, service.IdempotencyKeyReused) as exc:
        if wants_json():
            raise
        db().rollback()
        return analysis_page((environment, exc.user_message), request.form), exc.status_code
    if wants_json():  # the card's script (launch.js): where to go, without loading it twice
        return {"id": machine.id, "page": url_for("machines.page", machine_id=machine.id),
                "desktop": url_for("access.desktop", machine_id=machine.id),
                "instant": machine.claimed_at is not None}, 201
    return redirect(url_for("machines.page", machine_id=machine.id), code=303)


@blueprint.get("/machines/<machine_id>")
def page(machine_id: str) -> str:
    """Show one machine: its name, what it is, state, phase timings, events and access."""
    user = require_user()
    return machine_page(service.get_machine(db(), user, machine_id))


def machine_page(machine: Machine, rename_error: str = "", typed_name: str | None = None,
                 extend_error: str = "", start_error: str = "") -> str:
    """Render the machine page; ``rename_error`` is why the name ``typed_name`` was refused,
    shown next to the name field with what was typed kept; ``extend_error`` why an extension
    was refused. Raises NotSignedIn when nobody is signed in."""
    user, rt = require_user(), runtime()
    visit = str(machine.experiment.get("visit_id", "")) if machine.experiment else ""
    storage_path = storage_on_desktop(rt.settings, machine.provider)
    return render_template("machines/page.html", machine=machine,
                           timings=phase_timings(machine),
                           can_stop=rt.provider.supports_stop,
                           user_data=_user_data_for_admin(machine) if user.is_admin else None,
                           hpc_jobs=recorded_jobs(db(), user, machine_id=machine.id),
                           size=size_label(rt.settings, machine.flavor),
                           is_owner=machine.user_id == user.id, max_name=MAX_NAME,
                           rename_error=rename_error,
                           typed_name=machine.name if typed_name is None else typed_name,
                           storage_path=storage_path,
                           storage=_storage_of(machine) if storage_path else None,
                           experiment_path=experiment_on_desktop(
                               rt.settings, machine.provider, visit) if visit else None,
                           when_text=when_text, human_size=human_size,
                           lifetime=lifetime_json(machine), extend_error=extend_error,
                           start_error=start_error,
                           keep_hours=_keep_hours(machine),
                           warn_hours=min(parse_hours_list(rt.settings.expiry_warning_hours),
                                          default=2.0))


def _storage_of(machine: Machine) -> StorageArea | None:
    """The owner's storage use and quota, or None when it cannot be measured now."""
    try:
        area = storage_area(runtime().settings, machine.user)
    except (OSError, ProviderError):
        return None
    return area if area.used_known else None


@blueprint.post("/machines/<machine_id>/rename")
def rename(machine_id: str) -> ResponseReturnValue:
    """Rename the machine from its page's form and show it again.

    A refused name is shown next to the field with what was typed kept, with the error's
    status; a JSON caller gets the JSON error instead.
    """
    user = require_user()
    typed = request.form.get("name", "")
    try:
        service.rename_machine(db(), user, machine_id, typed)
    except (Conflict, InvalidInput) as exc:
        if wants_json():
            raise
        db().rollback()
        machine = service.get_machine(db(), user, machine_id)
        return machine_page(machine, exc.user_message, typed), exc.status_code
    return redirect(url_for("machines.page", machine_id=machine_id), code=303)


def _user_data_for_admin(machine: Machine) -> str:
    """The cloud-init user-data this machine gets (token hidden), or why it cannot be shown."""
    try:
        return inspectable_user_data(runtime().settings, machine)
    except ContextualisationError as exc:
        return f"# cannot render user-data: {exc.user_message}"


@blueprint.post("/machines/<machine_id>/extend")
def extend(machine_id: str) -> ResponseReturnValue:
    """Extend the machine from its page (or ask an administrator) and show it again; a
    refusal (past the policy, no extension for its environment) is shown on the page with
    the error's status, a JSON caller gets the JSON error."""
    user = require_user()
    try:
        extensions.extend(db(), user, service.get_machine(db(), user, machine_id, lock=True))
    except (Conflict, Forbidden) as exc:
        if wants_json():
            raise
        db().rollback()
        machine = service.get_machine(db(), user, machine_id)
        return machine_page(machine, extend_error=exc.user_message), exc.status_code
    return redirect(url_for("machines.page", machine_id=machine_id), code=303)


@blueprint.post("/machines/<machine_id>/keep-running")
def keep_running(machine_id: str) -> ResponseReturnValue:
    """Keep the machine running for the form's ``hours`` whatever its connections (0: no
    longer) and show it again; a refusal is shown on the page with the error's status."""
    user, now = require_user(), utcnow()
    raw = request.form.get("hours", "0")
    hours = int(raw) if raw.isascii() and raw.isdigit() and len(raw) <= 4 else 0
    try:
        activity.keep_running(db(), runtime().settings, user,
                              service.get_machine(db(), user, machine_id, lock=True),
                              activity.hours_from(now, hours), now)
    except (Conflict, Forbidden, InvalidInput) as exc:
        if wants_json():
            raise
        db().rollback()
        machine = service.get_machine(db(), user, machine_id)
        return machine_page(machine, extend_error=exc.user_message), exc.status_code
    return redirect(url_for("machines.page", machine_id=machine_id), code=303)


def _keep_hours(machine: Machine) -> list[int]:
    """Return the whole hours the page offers to keep ``machine`` running (1, 2, 4, 8 …
    within the limit, and the limit itself). Raises nothing."""
    now = utcnow()
    limit = keep_running_limit(runtime().settings, machine, now)
    if limit is None or machine.state != State.READY.value:
        return []
    most = int((limit - now).total_seconds() // 3600)
    offered = [h for h in (1, 2, 4, 8, 12, 24, 48, 72, 168) if h < most]
    return [*offered, most] if most >= 1 else []


@blueprint.post("/machines/<machine_id>/delete")
def delete(machine_id: str) -> Response:
    """Ask for the machine to be deleted and go back to the Analysis page."""
    service.request_delete(db(), require_user(), machine_id)
    return redirect(url_for("analysis.index"), code=303)


@blueprint.post("/machines/<machine_id>/stop")
def stop(machine_id: str) -> Response:
    """Ask for the machine to be stopped and show it."""
    service.request_stop(db(), require_user(), machine_id, runtime().provider)
    return redirect(url_for("machines.page", machine_id=machine_id), code=303)


@blueprint.post("/machines/<machine_id>/start")
def start(machine_id: str) -> ResponseReturnValue:
    """Ask for the stopped machine to be started again and show it; a start past a quota is
    shown on the page next to the Start button (the error's status), a JSON caller gets the
    JSON error."""
    user = require_user()
    try:
        service.request_start(db(), user, machine_id, runtime().provider, runtime().settings)
    except QuotaExceeded as exc:
        if wants_json():
            raise
        db().rollback()
        machine = service.get_machine(db(), user, machine_id)
        return machine_page(machine, start_error=exc.user_message), exc.status_code
    return redirect(url_for("machines.page", machine_id=machine_id), code=303)
