"""Experiment rules: what a user may pick at launch, binding, and provenance."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session, joinedload, selectinload

from daaas.catalogue import Environment
from daaas.portal.auth.models import User
from daaas.portal.db import end_transaction
from daaas.portal.errors import Forbidden, InvalidInput, NotFound
from daaas.portal.experiments.backends import ExperimentBackend, InvestigationInfo
from daaas.portal.machines.models import Machine

#: What an unknown experiment and one the user may not see both answer (the backends' words).
NO_SUCH_EXPERIMENT = "There is no such experiment. Pick one of yours from the list."


def serves(env: Environment, investigation: InvestigationInfo) -> bool:
    """Return True when the environment serves one of the investigation's instruments
    (an environment restricted to no instrument serves all)."""
    wanted = set(env.access.instruments)
    return not wanted or bool(wanted & set(investigation.instruments))


def first_look(db: Session, backend: ExperimentBackend, username: str) -> None:
    """When nothing is recorded yet about ``username``'s investigations (a first sign-in,
    a first token), end the request's transaction and ask the catalogue now, recording the
    answer, so that the pages that follow read it instead of asking (issue 19). Call it from
    actions (signing in, making a token), never from a page view.

    Raises nothing beyond database errors: the catalogue's failure is logged and the worker
    asks again at its next look.
    """
    if backend.never_observed(username):
        end_transaction(db)  # no transaction open while the catalogue is asked
        backend.first_look(username)


def launch_choices(backend: ExperimentBackend, user: User,
                   env: Environment) -> list[InvestigationInfo]:
    """Return the user's investigations this environment serves, current ones first."""
    return [i for i in backend.investigations_for(user.username) if serves(env, i)]


def launch_choices_by_environment(backend: ExperimentBackend, user: User,
                                  environments: list[Environment]
                                  ) -> dict[str, list[InvestigationInfo]]:
    """Return, per environment name, the user's investigations it serves (one backend call)."""
    mine = backend.investigations_for(user.username)
    return {env.name: [i for i in mine if serves(env, i)] for env in environments}


def check_binding(backend: ExperimentBackend, user: User, env: Environment,
                  investigation_id: int) -> InvestigationInfo:
    """Return the investigation if ``user`` may bind a machine of ``env`` to it.

    Raises NotFound for an unknown investigation, Forbidden when the user is neither a member
    nor an instrument scientist of it, and InvalidInput when the environment does not serve its
    instruments.
    """
    allowed = backend.may_use(user.username, investigation_id)  # the user's list first: its
    investigation = backend.get(investigation_id)  # errors (not read yet) come before NotFound
    if not allowed:
        raise Forbidden(f"You are not a member of experiment {investigation.visit_id}, so you "
                        "cannot use its data. Ask its principal investigator to add you.")
    if not serves(env, investigation):
        raise InvalidInput(f"{env.title} does not serve {', '.join(investigation.instruments)}"
                           f" (experiment {investigation.visit_id}); choose an environment for "
                           "that instrument.")
    return investigation


def sessions_of(db: Session, investigation_id: int) -> list[Machine]:
    """Return every machine that used the investigation, newest first (provenance), with
    their owners and events loaded (a constant number of queries, whatever their number)."""
    query = (select(Machine).where(Machine.experiment_id == investigation_id)
             .options(selectinload(Machine.events), joinedload(Machine.user))
             .order_by(Machine.created_at.desc(), Machine.id))
    return list(db.scalars(query))


def snapshot(investigation: InvestigationInfo, data_path_template: str) -> dict[str, object]:
    """Return what a machine records of its experiment (kept even if the catalogue changes)."""
    return {"id": investigation.id, "facility": investigation.facility,
            "name": investigation.name, "visit_id": investigation.visit_id,
            "title": investigation.title, "instruments": list(investigation.instruments),
            "data_path": investigation.data_path(data_path_template),
            # where cloud VMs mount the data from (portal.machines.mounts), at most 500 folders
            "data_locations": list(dict.fromkeys(investigation.data_locations))[:500]}


def visible_investigation(backend: ExperimentBackend, user: User,
                          investigation_id: int) -> InvestigationInfo:
    """Return the investigation if the user is a member, instrument scientist or admin.

    Raises NotFound for an unknown one and, with the same message, for one the user may not
    see: the answer never tells an outsider that an experiment exists, nor names it.
    """
    investigation = backend.get(investigation_id)
    if not user.is_admin and not backend.may_use(user.username, investigation_id):
        raise NotFound(NO_SUCH_EXPERIMENT,
                       f"{user.username} is not a member of investigation {investigation_id}")
    return investigation
