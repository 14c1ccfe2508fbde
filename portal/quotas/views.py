"""The administrators' Quotas page: every user's and group's quota, set or dropped by form
(the same service as ``/api/v1/admin/quotas``)."""

from __future__ import annotations

from collections.abc import Mapping

from flask import Blueprint, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue
from werkzeug.wrappers import Response

from daaas.portal.auth.current import require_admin
from daaas.portal.config import QUOTA_KEYS
from daaas.portal.errors import InvalidInput
from daaas.portal.lifecycle import db, wants_json
from daaas.portal.quotas import edits, service
from daaas.portal.runtime import runtime

blueprint = Blueprint("quotas", __name__, url_prefix="/admin/quotas")


@blueprint.get("")
def page(error: str = "", form: Mapping[str, str] | None = None) -> str:
    """List every quota with a form to set one; ``error`` is why the last form was refused
    (its values kept in ``form``). Raises Forbidden for a non-administrator."""
    require_admin()
    settings = runtime().settings
    quotas = service.all_quotas(db(), settings)
    return render_template("quotas/admin.html", quotas=quotas,
                           policy=settings.quota_policy, keys=QUOTA_KEYS, error=error,
                           form=form or _editing(quotas, request.args.get("edit", "")),
                           saved=request.args.get("saved", ""),
                           site_machines=settings.max_machines_per_user,
                           site_storage=settings.storage_quota_gb)


@blueprint.post("")
def save() -> ResponseReturnValue:
    """Set the quota the form names (scope, name, the limits, ``gpus`` as "MODEL=N, ...") and
    show the list; a refused form is shown again with the reason (its status)."""
    admin = require_admin()
    scope, name = request.form.get("scope", ""), request.form.get("name", "").strip()
    try:
        limits = {key: _number(key, request.form.get(key, "")) for key in QUOTA_KEYS}
        edits.set_quota(db(), admin, scope, name, limits, _gpus(request.form.get("gpus", "")))
    except InvalidInput as exc:
        if wants_json():
            raise
        db().rollback()
        return page(exc.user_message, request.form), exc.status_code
    return redirect(url_for("quotas.page", saved=f"{scope} {name}"), code=303)


@blueprint.post("/<scope>/<name>/reset")
def reset(scope: str, name: str) -> Response:
    """Drop an administrator's quota (the settings' entry applies again); back to the list."""
    edits.drop_quota(db(), require_admin(), scope, name)
    return redirect(url_for("quotas.page", saved=f"{scope} {name}"), code=303)


def _editing(quotas: list[service.Quota], which: str) -> dict[str, str]:
    """The form's values for the quota ``which`` ("group:NAME") names, or none."""
    for quota in quotas:
        if f"{quota.scope}:{quota.name}" == which:
            limits = quota.limits
            return {"scope": quota.scope, "name": quota.name,
                    **{key: str(limits[key]) for key in QUOTA_KEYS if key in limits},
                    "gpus": ", ".join(f"{k[4:]}={v}" for k, v in limits.items()
                                      if k.startswith("gpu:"))}
    return {}


def _number(key: str, raw: str) -> int | None:
    """An empty field is no limit; else a whole number. Raises InvalidInput naming the field."""
    raw = raw.strip()
    if not raw:
        return None
    if not raw.isdigit() or len(raw) > 7:
        raise InvalidInput(f"'{key}' must be a whole number from 0, or empty for no limit.")
    return int(raw)


def _gpus(raw: str) -> dict[str, int]:
    """GPUs as "NVIDIA A100=2, NVIDIA L40S=1". Raises InvalidInput naming the entry."""
    found: dict[str, int] = {}
    for part in (item.strip() for item in raw.split(",") if item.strip()):
        model, equals, count = (text.strip() for text in part.rpartition("="))
        if not equals or not model or len(model) > 100 or not count.isdigit() or len(count) > 7:
            raise InvalidInput(f"'{part}' is not 'GPU model=N' (e.g. 'NVIDIA A100=2').")
        found[model] = int(count)
    return found
