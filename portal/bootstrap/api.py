"""What a machine's bootstrap agent calls: trade its token for secrets, then report its status.

No session cookie here: the VM authenticates with its own tokens, so both routes are exempt from
the CSRF check. Contract: contextualisation/BOOTSTRAP_PROTOCOL.md.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, request

from daaas.portal.auth.csrf import csrf_exempt
from daaas.portal.bootstrap import service
from daaas.portal.db import utcnow
from daaas.portal.errors import Forbidden, InvalidInput
from daaas.portal.lifecycle import db
from daaas.portal.runtime import runtime

blueprint = Blueprint("context_api", __name__, url_prefix="/api/v1")
NO_STORE = {"Cache-Control": "no-store"}


@blueprint.post("/context/<machine_id>/bootstrap")
@csrf_exempt
def bootstrap(machine_id: str) -> tuple[dict[str, Any], int, dict[str, str]]:
    """Trade ``{"token": ...}`` for the machine's secrets (200), once; 403 otherwise."""
    body = request.get_json(silent=True)
    token = body.get("token") if isinstance(body, dict) else None
    if not isinstance(token, str) or not token:
        raise InvalidInput('Send JSON like {"token": "<the bootstrap token from user-data>"}.')
    answer = service.exchange(db(), runtime().settings, machine_id, token, utcnow())
    return answer, 200, NO_STORE


@blueprint.post("/context/<machine_id>/status")
@csrf_exempt
def status(machine_id: str) -> tuple[dict[str, Any], int]:
    """Record ``{"status": "ready"}`` or ``{"status": "failed", "reason": ...}`` (202)."""
    body = request.get_json(silent=True)
    state = body.get("status") if isinstance(body, dict) else None
    reason = body.get("reason", "") if isinstance(body, dict) else ""
    if state not in ("ready", "failed") or not isinstance(reason, str):
        raise InvalidInput('Send JSON like {"status": "ready"} or '
                           '{"status": "failed", "reason": "what went wrong"}.')
    service.record_report(db(), machine_id, _bearer(), state, reason, utcnow())
    return {"machine_id": machine_id, "status": state}, 202


def _bearer() -> str:
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Forbidden(service.REPORT_REFUSED, "status report without a bearer token")
    return token.strip()
