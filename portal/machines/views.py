"""Machine pages: launch from a card, the machine page, delete."""

from __future__ import annotations

from flask import Blueprint, redirect, render_template, request, url_for
from werkzeug.wrappers import Response

from portal.access.rdp import rdp_unavailable_reason
from portal.auth.current import require_user
from portal.experiments.binding import experiment_for_launch
from portal.lifecycle import db
from portal.machines import service
from portal.machines.models import Machine
from portal.machines.states import State
from portal.machines.timings import phase_timings
from portal.providers import ConnectionTarget, ProviderError
from portal.runtime import runtime

blueprint = Blueprint("machines", __name__)


@blueprint.post("/machines")
def launch() -> Response:
    """Record a launch request from an Analysis card, then show the machine."""
    rt, user = runtime(), require_user()
    environment = request.form.get("environment", "")
    experiment = experiment_for_launch(rt, user, environment, request.form.get("experiment"))
    machine = service.request_launch(db(), rt.settings, rt.catalogue, user, environment,
                                     request.form.get("flavor") or None, experiment=experiment)
    return redirect(url_for("machines.page", machine_id=machine.id), code=303)


@blueprint.get("/machines/<machine_id>")
def page(machine_id: str) -> str:
    """Show one machine: state, phase timings, events and access."""
    machine = service.get_machine(db(), require_user(), machine_id)
    return render_template("machines/page.html", machine=machine,
                           timings=phase_timings(machine),
                           rdp_reason=rdp_unavailable_reason(machine, _target(machine)))


def _target(machine: Machine) -> ConnectionTarget | None:
    """Where a ready machine is reached (asked once per page view, never polled)."""
    if machine.state != State.READY.value:
        return None
    try:
        return runtime().provider.connection_target(machine.id)
    except ProviderError:
        return None


@blueprint.post("/machines/<machine_id>/delete")
def delete(machine_id: str) -> Response:
    """Ask for the machine to be deleted and go back to the Analysis page."""
    service.request_delete(db(), require_user(), machine_id)
    return redirect(url_for("analysis.index"), code=303)
