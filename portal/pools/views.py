"""The administrators' Warm pools page: each pool's size, what is ready, claims and launches
in the last hour (the hit rate), the capacity it holds and the expected wait without it, from
the worker's figures; a form per pool resizes it."""

from __future__ import annotations

from flask import Blueprint, redirect, render_template, request, url_for
from werkzeug.wrappers import Response

from daaas.portal.auth.current import require_admin
from daaas.portal.db import utcnow
from daaas.portal.errors import InvalidInput
from daaas.portal.lifecycle import db
from daaas.portal.pools.rules import parse_pools
from daaas.portal.pools.service import MAX_SIZE, read_figures, read_sizes, resize_pool
from daaas.portal.runtime import runtime

blueprint = Blueprint("admin_pools", __name__, url_prefix="/admin")


@blueprint.get("/pools")
def page() -> str:
    """Show the warm pools as the worker last counted them. Raises NotSignedIn or Forbidden
    for anyone but an administrator."""
    require_admin()
    settings = runtime().settings
    figures = sorted(read_figures(settings, utcnow()).values(), key=lambda pool: pool.key)
    return render_template("admin/pools.html", figures=figures,
                           configured=parse_pools(settings.warm_pools),
                           supported=runtime().provider.supports_pools,
                           max_age=settings.warm_pool_max_age_minutes,
                           free_sessions=settings.warm_pool_free_sessions,
                           resized=read_sizes(settings), max_size=MAX_SIZE,
                           done=request.args.get("resized", ""))


@blueprint.post("/pools/<path:key>/size")
def resize(key: str) -> Response:
    """Resize the pool ``key`` to the form's ``size``; back to the page. Raises NotFound for
    an unknown pool, InvalidInput for a size that is not a whole number in range."""
    admin = require_admin()
    try:
        size = int(request.form.get("size", ""))
    except ValueError:
        raise InvalidInput(f"A pool's size is a whole number from 0 to {MAX_SIZE}.") from None
    resize_pool(db(), runtime().settings, admin, key, size)
    return redirect(url_for("admin_pools.page", resized=key), code=303)
