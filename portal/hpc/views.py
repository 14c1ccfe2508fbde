"""Jobs pages: the list with the submit forms, one job with its output, cancel."""

from __future__ import annotations

from flask import Blueprint, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue
from werkzeug.wrappers import Response

from daaas.portal.api.schema import ID, with_ids
from daaas.portal.auth.current import require_user
from daaas.portal.auth.models import User
from daaas.portal.config import Settings
from daaas.portal.errors import PortalError
from daaas.portal.hpc import service
from daaas.portal.hpc.offer import Offer, offer
from daaas.portal.hpc.output import read_output
from daaas.portal.hpc.submission import from_mapping
from daaas.portal.lifecycle import db
from daaas.portal.runtime import runtime

blueprint = with_ids(Blueprint("hpc", __name__))


@blueprint.get("/jobs")
def index() -> str:
    """Show the user's jobs and the ways to submit one (from ``?machine=`` if given)."""
    user, settings = require_user(), runtime().settings
    shown = offer(db(), settings, user, request.args.get("machine", ""))
    return _page(settings, user, shown)


@blueprint.post("/jobs")
def submit() -> ResponseReturnValue:
    """Submit from a form; on a problem show the page again with what was typed and why."""
    user, settings, form = require_user(), runtime().settings, request.form
    parameters = {key[6:]: value for key, value in form.items() if key.startswith("param.")}
    try:
        job = service.submit(db(), settings, user, from_mapping(form, parameters))
    except PortalError as exc:
        shown = offer(db(), settings, user, form.get("machine_id", ""))
        return _page(settings, user, shown, error=exc.user_message, form=form), exc.status_code
    return redirect(url_for("hpc.job_page", job_id=job.job_id), code=303)


def _page(settings: Settings, user: User, shown: Offer, **extra: object) -> str:
    found = service.list_jobs(db(), settings, user) if shown.configured else None
    return render_template("hpc/index.html", offer=shown, found=found,
                           observe_interval=int(settings.hpc_observe_interval_seconds),
                           jobs=found.jobs if found else [], problem=found.problem if found else "",
                           **{"error": "", "form": {}, **extra})


@blueprint.get(f"/jobs/<{ID}:job_id>")
def job_page(job_id: int) -> str:
    """Show one job as last observed: its state, where it came from, and its output."""
    user, settings = require_user(), runtime().settings
    found = service.get_job(db(), settings, user, job_id)
    job = found.jobs[0]
    return render_template("hpc/job.html", job=job, found=found,
                           observe_interval=int(settings.hpc_observe_interval_seconds),
                           output=read_output(job.output_path, user.uid))


@blueprint.post(f"/jobs/<{ID}:job_id>/cancel")
def cancel(job_id: int) -> Response:
    """Cancel the job and show it again."""
    service.cancel(db(), runtime().settings, require_user(), job_id)
    return redirect(url_for("hpc.job_page", job_id=job_id), code=303)
