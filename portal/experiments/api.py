"""JSON API for experiments: the user's investigations and one with its sessions (bodies:
:mod:`.schemas`)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from flask import Blueprint

from daaas.portal.api.schema import ID, dump, with_ids
from daaas.portal.auth.current import require_user
from daaas.portal.experiments import schemas
from daaas.portal.experiments.backends import InvestigationInfo
from daaas.portal.experiments.service import sessions_of, visible_investigation
from daaas.portal.lifecycle import db
from daaas.portal.machines.schemas import Machine
from daaas.portal.machines.serialize import machine_json
from daaas.portal.runtime import runtime

blueprint = with_ids(Blueprint("experiments_api", __name__, url_prefix="/api/v1"))


@blueprint.get("/experiments")
def list_experiments() -> dict[str, Any]:
    """Return the user's experiments, current ones first."""
    found = runtime().experiments.investigations_for(require_user().username)
    return dump(schemas.ExperimentList(experiments=[experiment_reply(i) for i in found]))


@blueprint.get(f"/experiments/<{ID}:investigation_id>")
def get_experiment(investigation_id: int) -> dict[str, Any]:
    """Return one experiment with the sessions that used it.

    Raises NotFound for an unknown experiment and, the same, for one not the user's
    (:func:`visible_investigation`).
    """
    investigation = visible_investigation(runtime().experiments, require_user(),
                                          investigation_id)
    sessions = [Machine.model_validate(machine_json(m))
                for m in sessions_of(db(), investigation_id)]
    return dump(experiment_reply(investigation).model_copy(update={"sessions": sessions}))


def experiment_reply(investigation: InvestigationInfo) -> schemas.Experiment:
    """Return an investigation's public fields."""
    template = runtime().settings.experiment_data_path_template
    return schemas.Experiment(
        id=investigation.id, facility=investigation.facility, name=investigation.name,
        visit_id=investigation.visit_id, title=investigation.title,
        instruments=list(investigation.instruments), start_date=_iso(investigation.start_date),
        end_date=_iso(investigation.end_date), current=investigation.is_current(),
        members=[schemas.Member(name=m.name, full_name=m.full_name, role=m.role)
                 for m in investigation.members],
        data_path=investigation.data_path(template))


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()
