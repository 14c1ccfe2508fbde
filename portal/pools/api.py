"""The warm pools' admin API (/api/v1/admin/pools): the pools with their sizes, schedule and
figures, and a pool's size and schedule changed (PUT or PATCH), audited as on the page.
Administrators only; bodies are the models in :mod:`.schemas`."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from flask import Blueprint, request

from daaas.portal.api.schema import dump, parse_body
from daaas.portal.auth.current import require_admin
from daaas.portal.config import ConfigError
from daaas.portal.db import utcnow
from daaas.portal.errors import NotFound
from daaas.portal.lifecycle import db
from daaas.portal.pools import schemas
from daaas.portal.pools.service import PoolFigures, read_figures
from daaas.portal.pools.sizes import KEEP, PoolPlan, change_pool, pool_plans, read_choices
from daaas.portal.runtime import runtime

blueprint = Blueprint("admin_pools_api", __name__, url_prefix="/api/v1/admin")


def pool_json(plan: PoolPlan, figures: PoolFigures | None, timezone: str,
              updated_at: datetime | None, updated_by: str) -> dict[str, Any]:
    """Return one pool as the API's :class:`~schemas.Pool`. Raises nothing."""
    def window(item: Any) -> dict[str, Any]:
        return {"days": item.days_text, "start": item.start, "end": item.end,
                "size": item.size}
    return {"key": plan.key, "environment": plan.environment, "flavor": plan.flavor,
            "setting_size": plan.setting_size, "size": plan.size,
            "size_source": "admin" if plan.size_set_by_admin else "setting",
            "schedule": [window(item) for item in plan.windows],
            "schedule_source": plan.schedule_source, "size_now": plan.size_now,
            "window_now": window(plan.window_now) if plan.window_now else None,
            "timezone": timezone,
            "updated_at": updated_at.isoformat() if updated_at else None,
            "updated_by": updated_by,
            "figures": None if figures is None else {
                "size": figures.size, "ready": figures.ready, "starting": figures.starting,
                "claimed_last_hour": figures.claimed_last_hour,
                "launches_last_hour": figures.launches_last_hour,
                "hit_rate": figures.hit_rate, "held_sessions": figures.held_sessions,
                "held_gpus": figures.held_gpus, "expected_wait": figures.expected_wait}}


def _pools() -> list[dict[str, Any]]:
    settings, now = runtime().settings, utcnow()
    choices = read_choices(db())
    try:
        plans = pool_plans(settings, runtime().catalogue.environments, choices, now)
    except ConfigError:
        plans = []
    figures = read_figures(settings, now)
    return [pool_json(plan, figures.get(plan.key), settings.facility_timezone,
                      choices[plan.key].updated_at if plan.key in choices else None,
                      choices[plan.key].updated_by if plan.key in choices else "")
            for plan in plans]


@blueprint.get("/pools")
def pools() -> dict[str, Any]:
    """Every configured pool: sizes, schedule, the size now and the worker's figures."""
    require_admin()
    return dump(schemas.PoolList.model_validate(
        {"pools": _pools(), "supported": runtime().provider.supports_pools}))


@blueprint.route("/pools/<environment>/<flavor>", methods=["PUT", "PATCH"])
def change(environment: str, flavor: str) -> dict[str, Any]:
    """Change a pool's base size and/or schedule (PUT: ``size`` required; PATCH: what is
    given). Raises NotFound for a pool not configured, InvalidInput naming the field."""
    admin = require_admin()
    body: schemas.PoolResize | schemas.PoolChange = parse_body(schemas.PoolResize) \
        if request.method == "PUT" else parse_body(schemas.PoolChange)
    given = body.model_fields_set
    key = f"{environment}/{flavor}"
    schedule: Any = KEEP
    if "schedule" in given:
        schedule = None if body.schedule is None \
            else [item.model_dump() for item in body.schedule]
    change_pool(db(), runtime().settings, runtime().catalogue.environments, admin, key,
                utcnow(), size=body.size if "size" in given else KEEP, schedule=schedule)
    found = next((pool for pool in _pools() if pool["key"] == key), None)
    if found is None:  # pragma: no cover - change_pool found it a moment ago
        raise NotFound(f"There is no warm pool {key}.")
    return dump(schemas.Pool.model_validate(found))
