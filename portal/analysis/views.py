"""The Analysis page: the catalogue as cards."""

from __future__ import annotations

import logging
import secrets
from collections.abc import Mapping
from pathlib import Path

from flask import Blueprint, redirect, render_template, send_from_directory, url_for
from werkzeug.exceptions import NotFound as HTTPNotFound
from werkzeug.wrappers import Response

from daaas import package_path
from daaas.catalogue.loader import icon_folders
from daaas.portal.analysis.choices import cards
from daaas.portal.analysis.service import visible_environments
from daaas.portal.auth.current import current_user, require_user
from daaas.portal.config import parse_hours_list
from daaas.portal.db import utcnow
from daaas.portal.experiments.errors import ExperimentsUnavailable
from daaas.portal.experiments.service import launch_choices_by_environment
from daaas.portal.hpc.machine import configured as hpc_configured
from daaas.portal.lifecycle import db
from daaas.portal.machines.service import limit_reason
from daaas.portal.quotas.service import panel as quota_panel
from daaas.portal.runtime import runtime

blueprint = Blueprint("analysis", __name__)
log = logging.getLogger(__name__)


@blueprint.app_context_processor
def _page_globals() -> dict[str, object]:
    """Give every template ``hpc_configured()``: the Jobs tab is shown only with a cluster."""
    return {"hpc_configured": lambda: hpc_configured(runtime().settings)}


@blueprint.get("/")
def home() -> Response:
    """Send signed-in users to the Analysis page, others to sign-in."""
    target = "analysis.index" if current_user() else "auth.sign_in_form"
    return redirect(url_for(target))


@blueprint.get("/analysis")
def index() -> str:
    """Show the environments the user may launch."""
    return analysis_page()


def analysis_page(launch_error: tuple[str, str] | None = None,
                  form: Mapping[str, str] | None = None) -> str:
    """Render the Analysis page; ``launch_error`` is (environment name, message) of a launch
    that was refused, shown next to that card's Launch button with the sizes and experiment
    chosen in ``form`` kept. Raises NotSignedIn when nobody is signed in."""
    user, rt = require_user(), runtime()
    environments = visible_environments(rt.catalogue, user)
    try:
        choices, problem = launch_choices_by_environment(rt.experiments, user, environments), ""
    except ExperimentsUnavailable as exc:  # launching without an experiment still works
        log.warning("analysis page without experiments: %s", exc.log_message)
        choices, problem = {}, exc.user_message
    return render_template("analysis/index.html",
                           cards=cards(rt.settings, rt.provider, environments, utcnow()),
                           experiment_choices=choices, experiments_problem=problem,
                           limit_reason=limit_reason(db(), rt.settings, user),
                           max_machines=rt.settings.max_machines_per_user,
                           quota_lines=quota_panel(db(), rt.settings, user),
                           warn_hours=min(parse_hours_list(rt.settings.expiry_warning_hours),
                                          default=2.0),
                           idle_warn_minutes=rt.settings.idle_warning_minutes,
                           launch_error=launch_error, form=form or {},
                           new_launch_id=new_launch_id)


def new_launch_id() -> str:
    """Return a fresh one-time id for a launch form (its idempotency key). Raises nothing."""
    return secrets.token_urlsafe(18)


@blueprint.get("/favicon.ico")
def favicon() -> Response:
    """Serve the portal's icon where browsers look for it first."""
    return send_from_directory(package_path("daaas.portal", "static"), "favicon.ico",
                               mimetype="image/x-icon", max_age=86400)


@blueprint.get("/catalogue/icons/<path:filename>")
def icon(filename: str) -> Response:
    """Serve an environment or application icon from the catalogue's icon folders."""
    for folder in icon_folders(Path(runtime().settings.catalogue_dir)):
        if (folder / filename).is_file():
            return send_from_directory(folder, filename, max_age=3600)
    raise HTTPNotFound(f"No icon called {filename}.")

