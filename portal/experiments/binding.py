"""Turn a launch request's experiment choice into the machine's experiment record."""

from __future__ import annotations

from typing import Any

from daaas.portal.analysis.service import get_environment
from daaas.portal.auth.models import User
from daaas.portal.errors import InvalidInput
from daaas.portal.experiments.service import check_binding, snapshot
from daaas.portal.runtime import Runtime


def experiment_for_launch(rt: Runtime, user: User, environment_name: str,
                          raw: object) -> dict[str, Any] | None:
    """Return the checked experiment record for a launch, or None when none was chosen.

    ``raw`` is the form or JSON value (an investigation id). Raises InvalidInput for a value
    that is not an id, and what :func:`check_binding` raises.
    """
    if raw in (None, "", "none"):
        return None
    if isinstance(raw, bool) or not (isinstance(raw, int) or (isinstance(raw, str)
                                                               and raw.isdigit())):
        raise InvalidInput("'experiment' must be the id of one of your experiments.")
    env = get_environment(rt.catalogue, user, environment_name)
    investigation = check_binding(rt.experiments, user, env, int(raw))
    return snapshot(investigation, rt.settings.experiment_data_path_template)
