"""Turn a launch request's experiment choice into the machine's experiment record."""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from daaas.portal.analysis.service import get_environment
from daaas.portal.auth.models import User
from daaas.portal.errors import InvalidInput
from daaas.portal.experiments.service import check_binding, first_look, snapshot
from daaas.portal.runtime import Runtime


def experiment_for_launch(db: Session, rt: Runtime, user: User, environment_name: str,
                          raw: object) -> dict[str, Any] | None:
    """Return the checked experiment record for a launch, or None when none was chosen.

    ``raw`` is the form or JSON value (an investigation id). A user whose experiments were
    never recorded (a token used before any sign-in) is asked about first: a launch is an
    action (:func:`first_look`). Raises InvalidInput for a value that is not an id, and what
    :func:`check_binding` raises.
    """
    if raw in (None, "", "none"):
        return None
    if isinstance(raw, bool) or not (isinstance(raw, int) or (isinstance(raw, str)
                                                               and raw.isdigit())):
        raise InvalidInput("'experiment' must be the id of one of your experiments.")
    env = get_environment(rt.catalogue, user, environment_name)
    first_look(db, rt.experiments, user.username)
    investigation = check_binding(rt.experiments, user, env, int(raw))
    return snapshot(investigation, rt.settings.experiment_data_path_template)
