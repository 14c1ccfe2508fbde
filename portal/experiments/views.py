"""Experiment pages: the user's investigations and each one's sessions (provenance); the JSON
API is in :mod:`.api`."""

from __future__ import annotations

from flask import Blueprint, render_template

from daaas.portal.api.schema import ID, with_ids
from daaas.portal.auth.current import require_user
from daaas.portal.experiments.service import sessions_of, visible_investigation
from daaas.portal.hpc.service import recorded_jobs
from daaas.portal.lifecycle import db
from daaas.portal.machines.naming import experiment_on_desktop
from daaas.portal.runtime import runtime

blueprint = with_ids(Blueprint("experiments", __name__))


@blueprint.get("/experiments")
def index() -> str:
    """List the user's experiments, current ones first."""
    user = require_user()
    found = runtime().experiments.investigations_for(user.username)
    return render_template("experiments/index.html", investigations=found)


@blueprint.get(f"/experiments/<{ID}:investigation_id>")
def page(investigation_id: int) -> str:
    """Show one experiment and every session that used it."""
    rt, user = runtime(), require_user()
    investigation = visible_investigation(rt.experiments, user, investigation_id)
    return render_template("experiments/page.html", investigation=investigation,
                           desktop_path=experiment_on_desktop(rt.settings, rt.settings.provider,
                                                              investigation.visit_id),
                           sessions=sessions_of(db(), investigation_id),
                           hpc_jobs=recorded_jobs(db(), user, experiment_id=investigation_id))
