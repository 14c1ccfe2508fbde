"""The administrators' Warm pools page: each pool's base size, schedule and the size in force
now, and from the worker's figures what is ready, claims and launches in the last hour (the
hit rate), the capacity it holds and the expected wait without it; a form per pool resizes
it (the API changes schedules too: :mod:`.api`)."""

from __future__ import annotations

from flask import Blueprint, redirect, render_template, request, url_for
from werkzeug.wrappers import Response

from daaas.portal.auth.current import require_admin
from daaas.portal.config import ConfigError
from daaas.portal.db import utcnow
from daaas.portal.errors import InvalidInput
from daaas.portal.lifecycle import db
from daaas.portal.pools.rules import MAX_SIZE, local_time
from daaas.portal.pools.service import read_figures
from daaas.portal.pools.sizes import change_pool, pool_plans, read_choices
from daaas.portal.runtime import runtime

blueprint = Blueprint("admin_pools", __name__, url_prefix="/admin")


@blueprint.get("/pools")
def page() -> str:
    """Show the warm pools: sizes and schedule now, and the worker's last figures. Raises
    NotSignedIn or Forbidden for anyone but an administrator."""
    require_admin()
    settings, now = runtime().settings, utcnow()
    try:
        plans = pool_plans(settings, runtime().catalogue.environments, read_choices(db()),
                           now)
        problem = ""
    except ConfigError as exc:
        plans, problem = [], str(exc)
    figures = read_figures(settings, now)
    return render_template("admin/pools.html", plans=plans, figures=figures,
                           configured=bool(settings.warm_pools.strip()), problem=problem,
                           counted=bool(figures),
                           supported=runtime().provider.supports_pools,
                           max_age=settings.warm_pool_max_age_minutes,
                           free_sessions=settings.warm_pool_free_sessions,
                           max_size=MAX_SIZE, timezone=settings.facility_timezone,
                           local_now=local_time(now, settings.facility_timezone),
                           done=request.args.get("resized", ""))


@blueprint.post("/pools/<path:key>/size")
def resize(key: str) -> Response:
    """Resize the pool ``key`` to the form's ``size``; back to the page. Raises NotFound for
    an unknown pool, InvalidInput for a size that is not a whole number in range."""
    admin = require_admin()
    try:
        size = int(request.form.get("size", ""))
    except ValueError:
        raise InvalidInput(f"size: a pool's size is a whole number from 0 to {MAX_SIZE}.") \
            from None
    change_pool(db(), runtime().settings, runtime().catalogue.environments, admin, key,
                utcnow(), size=size)
    return redirect(url_for("admin_pools.page", resized=key), code=303)
