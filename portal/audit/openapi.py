"""OpenAPI path item of the audit API; the bodies are the models in :mod:`.schemas`."""

from __future__ import annotations

from typing import Any

from daaas.portal.api.schema import content, errors, query_parameters
from daaas.portal.audit.schemas import AuditList, AuditQuery

PATHS: dict[str, Any] = {
    "/admin/audit": {
        "get": {"summary": "The audit trail, newest first (administrators only; the page "
                           "/admin/audit shows the same and exports CSV)",
                "parameters": query_parameters(AuditQuery),
                "responses": {"200": content(AuditList, "OK"), **errors(400, 401, 403)}}},
}
