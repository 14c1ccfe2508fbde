"""Experiment pages and API: the user's investigations and each one's sessions (provenance)."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, render_template

from daaas.portal.auth.current import require_user
from daaas.portal.experiments.backends import InvestigationInfo
from daaas.portal.experiments.service import sessions_of, visible_investigation
from daaas.portal.hpc.service import recorded_jobs
from daaas.portal.lifecycle import db
from daaas.portal.machines.serialize import machine_json
from daaas.portal.runtime import runtime

blueprint = Blueprint("experiments", __name__)
api = Blueprint("experiments_api", __name__, url_prefix="/api/v1")


@blueprint.get("/experiments")
def index() -> str:
    """List the user's experiments, current ones first."""
    user = require_user()
    found = runtime().experiments.investigations_for(user.username)
    return render_template("experiments/index.html", investigations=found)


@blueprint.get("/experiments/<int:investigation_id>")
def page(investigation_id: int) -> str:
    """Show one experiment and every session that used it."""
    rt, user = runtime(), require_user()
    investigation = visible_investigation(rt.experiments, user, investigation_id)
    return render_template("experiments/page.html", investigation=investigation,
                           data_path=investigation.data_path(
                               rt.settings.experiment_data_path_template),
                           sessions=sessions_of(db(), investigation_id),
                           hpc_jobs=recorded_jobs(db(), user, experiment_id=investigation_id))


@api.get("/experiments")
def list_experiments() -> dict[str, Any]:
    """Return the user's experiments, current ones first."""
    found = runtime().experiments.investigations_for(require_user().username)
    return {"experiments": [experiment_json(i) for i in found]}


@api.get("/experiments/<int:investigation_id>")
def get_experiment(investigation_id: int) -> dict[str, Any]:
    """Return one experiment with the sessions that used it."""
    investigation = visible_investigation(runtime().experiments, require_user(),
                                          investigation_id)
    return {**experiment_json(investigation),
            "sessions": [machine_json(m) for m in sessions_of(db(), investigation_id)]}


def experiment_json(investigation: InvestigationInfo) -> dict[str, Any]:
    """Return an investigation's public fields."""
    rt = runtime()
    return {"id": investigation.id, "facility": investigation.facility,
            "name": investigation.name, "visit_id": investigation.visit_id,
            "title": investigation.title, "instruments": list(investigation.instruments),
            "start_date": _iso(investigation.start_date), "end_date": _iso(investigation.end_date),
            "current": investigation.is_current(),
            "members": [{"name": m.name, "full_name": m.full_name, "role": m.role}
                        for m in investigation.members],
            "data_path": investigation.data_path(rt.settings.experiment_data_path_template)}


def _iso(value: Any) -> str | None:
    return None if value is None else str(value.isoformat())
