"""The administrators' Warm pools page: each pool's size, what is ready, claims and launches
in the last hour (the hit rate), the capacity it holds and the expected wait without it, from
the worker's figures; a form per pool resizes it. ``/api/v1/admin/pools`` answers the same in
JSON."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, redirect, render_template, request, url_for
from werkzeug.wrappers import Response

from daaas.portal.api.schema import parse_body
from daaas.portal.auth.current import require_admin
from daaas.portal.db import utcnow
from daaas.portal.errors import InvalidInput
from daaas.portal.lifecycle import db
from daaas.portal.pools.rules import parse_pools
from daaas.portal.pools.schemas import ResizeRequest
from daaas.portal.pools.service import MAX_SIZE, read_figures, read_sizes, resize_pool
from daaas.portal.runtime import runtime

blueprint = Blueprint("admin_pools", __name__, url_prefix="/admin")
api = Blueprint("admin_pools_api", __name__, url_prefix="/api/v1/admin")


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


@api.get("/pools")
def pools_json() -> dict[str, Any]:
    """The pools' figures as the worker last wrote them and the sizes administrators set."""
    require_admin()
    settings = runtime().settings
    figures = read_figures(settings, utcnow())
    return {"pools": [{**vars(pool), "hit_rate": pool.hit_rate}
                      for pool in sorted(figures.values(), key=lambda pool: pool.key)],
            "sizes": read_sizes(settings)}


@api.put("/pools/<path:key>/size")
def resize_json(key: str) -> dict[str, Any]:
    """Resize the pool ``key`` to the body's ``size`` (JSON); returns the sizes now set.
    Raises NotFound for an unknown pool, InvalidInput for a size out of range."""
    admin = require_admin()
    body = parse_body(ResizeRequest)
    resize_pool(db(), runtime().settings, admin, key, body.size)
    return {"key": key, "size": body.size}
