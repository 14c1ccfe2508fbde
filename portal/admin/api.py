"""JSON API of the admin console (/api/v1/admin/...): the same services and answers as the
pages (:mod:`.views`); bodies are the models in :mod:`.schemas`. Administrators only."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

from flask import Blueprint

from daaas.portal.admin import schemas, service
from daaas.portal.admin.capacity import capacity_report
from daaas.portal.admin.usage import usage
from daaas.portal.api.schema import dump, parse_body, parse_query
from daaas.portal.auth.current import require_admin
from daaas.portal.auth.models import User
from daaas.portal.db import utcnow
from daaas.portal.errors import InvalidInput
from daaas.portal.lifecycle import db
from daaas.portal.machines.serialize import machine_json
from daaas.portal.runtime import runtime

blueprint = Blueprint("admin_api", __name__, url_prefix="/api/v1/admin")


def user_json(user: User, usage_now: service.Usage,
              quota: tuple[service.QuotaLine, ...]) -> dict[str, Any]:
    """Return ``user`` as the API's :class:`~schemas.AdminUser`. Raises nothing."""
    return {"username": user.username, "display_name": user.display_name, "email": user.email,
            "groups": list(user.groups or []), "is_admin": user.is_admin,
            "is_active": user.is_active,
            "disabled_at": user.disabled_at.isoformat() if user.disabled_at else None,
            "disabled_reason": user.disabled_reason,
            "last_sign_in_at": user.last_sign_in_at.isoformat() if user.last_sign_in_at
            else None,
            "usage": {"machines": usage_now.machines, "running": usage_now.running,
                      "vcpus": usage_now.vcpus, "gpus": usage_now.gpus},
            "quota": [vars(line) for line in quota]}


def _user(user: User) -> dict[str, Any]:
    settings = runtime().settings
    usage_now = service.usage_of(db(), settings, [user.id]).get(user.id, service.Usage())
    quota = service.effective_quotas(db(), settings, [user]).get(user.id, ())
    return dump(schemas.AdminUser.model_validate(user_json(user, usage_now, quota)))


@blueprint.get("/users")
def users() -> dict[str, Any]:
    """Search users (``q``), each with what they hold now."""
    require_admin()
    query = parse_query(schemas.UserQuery)
    lines = service.search_users(db(), runtime().settings, query.q, limit=query.limit)
    return dump(schemas.UserList(users=[schemas.AdminUser.model_validate(
        user_json(line.user, line.usage, line.quota)) for line in lines]))


@blueprint.get("/users/<username>")
def user(username: str) -> dict[str, Any]:
    """One user with their machines; raises NotFound for an unknown user."""
    require_admin()
    from daaas.portal.auth.service import get_user
    found = get_user(db(), username)
    return dump(schemas.UserDetail(
        user=schemas.AdminUser.model_validate(_user(found)),
        machines=[schemas.Machine.model_validate(machine_json(m))
                  for m in service.user_machines(db(), found)]))


@blueprint.post("/users/<username>/disable")
def disable(username: str) -> dict[str, Any]:
    """Disable an account with a reason (:func:`service.disable_user`)."""
    admin = require_admin()
    body = parse_body(schemas.DisableRequest)
    done = service.disable_user(db(), admin, username, body.reason,
                                stop_machines=body.stop_machines, provider=runtime().provider)
    return _user(done)


@blueprint.post("/users/<username>/enable")
def enable(username: str) -> dict[str, Any]:
    """Enable an account again (:func:`service.enable_user`)."""
    return _user(service.enable_user(db(), require_admin(), username))


def machine_filter(query: schemas.MachineQuery) -> service.MachineFilter:
    """Return the service's filter for the API's (or a page's) query. Raises nothing."""
    return service.MachineFilter(state=query.state, user=query.user,
                                 environment=query.environment, flavor=query.flavor,
                                 older_than_hours=query.older_than_hours,
                                 idle_hours=query.idle_hours)


@blueprint.get("/machines")
def machines() -> dict[str, Any]:
    """Everyone's machines matching the filters, newest first."""
    require_admin()
    wanted = machine_filter(parse_query(schemas.MachineQuery))
    rows, total = service.filter_machines(db(), wanted, utcnow())
    return dump(schemas.AdminMachineList(
        machines=[schemas.Machine.model_validate(machine_json(m)) for m in rows], total=total))


@blueprint.post("/machines/bulk")
def bulk() -> dict[str, Any]:
    """Stop or delete several machines with a reason their owners see
    (:func:`service.bulk_action`)."""
    admin = require_admin()
    body = parse_body(schemas.BulkRequest)
    result = service.bulk_action(db(), admin, runtime().provider, body.action, body.machines,
                                 body.reason)
    return dump(schemas.BulkResult(action=result.action, reason=result.reason,
                                   done=result.done,
                                   refused=[schemas.Refused(machine=m, reason=r)
                                            for m, r in result.refused]))


@blueprint.get("/capacity")
def capacity() -> dict[str, Any]:
    """Capacity per flavour and GPU model, with the next-free estimate."""
    require_admin()
    return dump(capacity_report(db(), runtime().settings, utcnow()))


def period(start: date | None, end: date | None, today: date) -> tuple[datetime, datetime]:
    """Return the UTC period of whole days ``start``..``end`` (both included; default: the
    7 days up to today). Raises InvalidInput for days out of range."""
    try:
        last = end or today
        first = start or last - timedelta(days=6)
        return (datetime.combine(first, datetime.min.time(), UTC),
                datetime.combine(last + timedelta(days=1), datetime.min.time(), UTC))
    except OverflowError:
        raise InvalidInput("The period's days are out of range.") from None


@blueprint.get("/usage")
def usage_report() -> dict[str, Any]:
    """Machine-hours and GPU-hours per environment, group or user over a period."""
    require_admin()
    query = parse_query(schemas.UsageQuery)
    now = utcnow()
    start, end = period(query.start, query.end, now.date())
    rows = usage(db(), runtime().settings, start, end, query.by, now)
    return dump(schemas.UsageReport(by=query.by, start=start.isoformat(), end=end.isoformat(),
                                    rows=[schemas.UsageLine(**vars(r)) for r in rows]))
