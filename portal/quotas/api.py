"""JSON API for quotas: the user's own (``/quota``) and the administrators' list and edits
(``/admin/quotas``), the same data as the Quotas page."""

from __future__ import annotations

from typing import Any

from flask import Blueprint

from daaas.portal.api.schema import dump, parse_body
from daaas.portal.auth.current import require_admin, require_user
from daaas.portal.lifecycle import db
from daaas.portal.quotas import edits, schemas, service
from daaas.portal.quotas.storage import storage_quota_gib
from daaas.portal.runtime import runtime

blueprint = Blueprint("quotas_api", __name__, url_prefix="/api/v1")


@blueprint.get("/quota")
def my_quota() -> dict[str, Any]:
    """Return the signed-in user's limits, what is in use, and their storage quota."""
    user, settings = require_user(), runtime().settings
    lines = [schemas.QuotaUse(**vars(line)) for line in service.panel(db(), settings, user)]
    return dump(schemas.MyQuota(limits=lines, storage_gib=storage_quota_gib(
        db(), settings, user)))


@blueprint.get("/admin/quotas")
def list_quotas() -> dict[str, Any]:
    """Return every quota (settings and administrators'); administrators only."""
    require_admin()
    settings = runtime().settings
    return dump(schemas.QuotaList(policy=settings.quota_policy, quotas=[
        quota_reply(q) for q in service.all_quotas(db(), settings)]))


@blueprint.put("/admin/quotas/<scope>/<name>")
def set_quota(scope: str, name: str) -> dict[str, Any]:
    """Set a user's or group's quota (a :class:`~schemas.QuotaLimits`); 200 with it. Raises
    what :func:`edits.set_quota` raises, InvalidInput for a body that does not fit."""
    admin = require_admin()
    body = parse_body(schemas.QuotaLimits)
    edits.set_quota(db(), admin, scope, name, body.model_dump(exclude={"gpus"}), body.gpus)
    found = next(q for q in service.all_quotas(db(), runtime().settings)
                 if (q.scope, q.name) == (scope, name))
    return dump(quota_reply(found))


@blueprint.delete("/admin/quotas/<scope>/<name>")
def drop_quota(scope: str, name: str) -> tuple[str, int]:
    """Drop an administrator's quota (the settings' entry applies again); 204."""
    edits.drop_quota(db(), require_admin(), scope, name)
    return "", 204


def quota_reply(quota: service.Quota) -> schemas.Quota:
    """Return ``quota`` as the API's :class:`~schemas.Quota`. Raises nothing."""
    limits = dict(quota.limits)
    return schemas.Quota(
        scope=quota.scope, name=quota.name, source=quota.source, updated_by=quota.updated_by,
        updated_at=quota.updated_at.isoformat() if quota.updated_at else None,
        gpus={k[4:]: v for k, v in limits.items() if k.startswith("gpu:")},
        **{k: v for k, v in limits.items() if not k.startswith("gpu:")})
