"""The administrators' Warm pools page: each pool's size, what is ready, claims and launches
in the last hour (the hit rate) and the capacity it holds, from the worker's figures."""

from __future__ import annotations

from flask import Blueprint, render_template

from daaas.portal.auth.current import require_admin
from daaas.portal.db import utcnow
from daaas.portal.pools.rules import parse_pools
from daaas.portal.pools.service import read_figures
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
                           free_sessions=settings.warm_pool_free_sessions)
