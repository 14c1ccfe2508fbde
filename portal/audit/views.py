"""The audit trail for administrators: the page /admin/audit (filters, CSV export) and the API
``GET /api/v1/admin/audit`` (the same events as JSON)."""

from __future__ import annotations

import csv
import io
from typing import Any

from flask import Blueprint, Response, render_template, request

from daaas.portal.api.schema import dump, parse_query
from daaas.portal.audit import schemas, service
from daaas.portal.audit.models import AuditEvent
from daaas.portal.auth.current import require_admin
from daaas.portal.db import utcnow
from daaas.portal.lifecycle import db

blueprint = Blueprint("audit", __name__, url_prefix="/admin")
api = Blueprint("audit_api", __name__, url_prefix="/api/v1/admin")

#: The CSV export's columns, in order (the JSON's fields).
COLUMNS = ("id", "at", "actor", "action", "target", "detail", "source", "admin")


@blueprint.get("/audit")
def page() -> str:
    """Show the events matching the filters in the query string, newest first. Raises
    AuthenticationRequired, Forbidden, or InvalidInput for a filter that does not fit."""
    require_admin()
    query = parse_query(schemas.AuditQuery)
    events = service.search(db(), service.filter_for(query), limit=query.limit)
    return render_template("admin/audit.html", events=events, query=query,
                           actions=service.actions(db()), limit=query.limit,
                           csv_args={k: v for k, v in request.args.items() if k != "limit"})


@blueprint.get("/audit.csv")
def export() -> Response:
    """Every event matching the filters as CSV (no limit), newest first."""
    require_admin()
    query = parse_query(schemas.AuditQuery)
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(COLUMNS)
    for event in service.search(db(), service.filter_for(query), limit=None):
        row = reply(event)
        writer.writerow([_cell(row[column]) for column in COLUMNS])
    name = f"audit-{utcnow():%Y%m%d-%H%M}.csv"
    return Response(out.getvalue(), mimetype="text/csv",
                    headers={"Content-Disposition": f'attachment; filename="{name}"'})


@api.get("/audit")
def events() -> dict[str, Any]:
    """The events matching the query as :class:`~schemas.AuditList`, newest first."""
    require_admin()
    query = parse_query(schemas.AuditQuery)
    found = service.search(db(), service.filter_for(query), limit=query.limit)
    return dump(schemas.AuditList(events=[schemas.AuditEventReply.model_validate(reply(e))
                                          for e in found], limit=query.limit))


def reply(event: AuditEvent) -> dict[str, Any]:
    """Return ``event`` as the API writes it (and the CSV's row)."""
    return {"id": event.id, "at": event.at.isoformat(), "actor": event.actor,
            "action": event.action, "target": event.target, "detail": event.detail,
            "source": event.source, "admin": event.admin}


def _cell(value: object) -> object:
    """A spreadsheet must not run a cell as a formula: text starting with = + - @ (or a tab
    or carriage return) gets a leading apostrophe."""
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + value
    return value
