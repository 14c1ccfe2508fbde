"""The Analysis page: the catalogue as cards."""

from __future__ import annotations

import logging
from pathlib import Path

from flask import Blueprint, redirect, render_template, send_from_directory, url_for
from werkzeug.exceptions import NotFound as HTTPNotFound
from werkzeug.wrappers import Response

from daaas.catalogue.loader import icon_folders
from daaas.portal.analysis.service import visible_environments
from daaas.portal.auth.current import current_user, require_user
from daaas.portal.experiments.errors import ExperimentsUnavailable
from daaas.portal.experiments.service import launch_choices_by_environment
from daaas.portal.runtime import runtime

blueprint = Blueprint("analysis", __name__)
log = logging.getLogger(__name__)


@blueprint.get("/")
def home() -> Response:
    """Send signed-in users to the Analysis page, others to sign-in."""
    target = "analysis.index" if current_user() else "auth.sign_in_form"
    return redirect(url_for(target))


@blueprint.get("/analysis")
def index() -> str:
    """Show the environments the user may launch."""
    user, rt = require_user(), runtime()
    environments = visible_environments(rt.catalogue, user)
    try:
        choices, problem = launch_choices_by_environment(rt.experiments, user, environments), ""
    except ExperimentsUnavailable as exc:  # launching without an experiment still works
        log.warning("analysis page without experiments: %s", exc.log_message)
        choices, problem = {}, exc.user_message
    return render_template("analysis/index.html", environments=environments,
                           experiment_choices=choices, experiments_problem=problem)


@blueprint.get("/catalogue/icons/<path:filename>")
def icon(filename: str) -> Response:
    """Serve an environment or application icon from the catalogue's icon folders."""
    for folder in icon_folders(Path(runtime().settings.catalogue_dir)):
        if (folder / filename).is_file():
            return send_from_directory(folder, filename, max_age=3600)
    raise HTTPNotFound(f"No icon called {filename}.")

