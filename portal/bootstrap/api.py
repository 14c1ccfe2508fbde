"""What a machine's bootstrap agent calls: trade its token for secrets, then report its status.

No session cookie here: the VM authenticates with its own tokens, so both routes are exempt from
the CSRF check. Contract: contextualisation/BOOTSTRAP_PROTOCOL.md; bodies: :mod:`.schemas`.
"""

from __future__ import annotations

import time
from typing import Any

from flask import Blueprint, request

from daaas.portal.api.schema import dump, parse_body
from daaas.portal.auth.csrf import csrf_exempt
from daaas.portal.bootstrap import pooling, schemas, service
from daaas.portal.bootstrap.activity import record_activity
from daaas.portal.db import utcnow
from daaas.portal.errors import Forbidden
from daaas.portal.lifecycle import db
from daaas.portal.machines.schemas import ActivityAccepted, ActivityReport
from daaas.portal.runtime import runtime

blueprint = Blueprint("context_api", __name__, url_prefix="/api/v1")
NO_STORE = {"Cache-Control": "no-store"}


@blueprint.post("/context/<machine_id>/bootstrap")
@csrf_exempt
def bootstrap(machine_id: str) -> tuple[dict[str, Any], int, dict[str, str]]:
    """Trade ``{"token": ...}`` for the machine's secrets (200), once; 403 otherwise."""
    token = parse_body(schemas.BootstrapRequest).token
    answer = service.exchange(db(), runtime().settings, machine_id, token, utcnow())
    return dump(schemas.MachineSecrets.model_validate(answer)), 200, NO_STORE


@blueprint.post("/context/<machine_id>/status")
@csrf_exempt
def status(machine_id: str) -> tuple[dict[str, Any], int]:
    """Record ``{"status": "ready"}`` or ``{"status": "failed", "reason": ...}`` (202)."""
    report = parse_body(schemas.StatusReport)
    service.record_report(db(), machine_id, _bearer(), report.status, report.reason, utcnow())
    return dump(schemas.StatusAccepted(machine_id=machine_id, status=report.status)), 202


@blueprint.post("/context/<machine_id>/claim")
@csrf_exempt
def claim(machine_id: str) -> tuple[Any, int, dict[str, str]]:
    """A warm pool's machine asks for its claimer (bearer: its pool-phase report token): 204
    with ``Retry-After`` while it waits in its pool, the claimer's session and secrets (200)
    once, 403 otherwise. A request that finds the machine claimed but not yet handed over by
    the worker is held (up to :data:`pooling.HOLD_SECONDS`) until it is; one waiting in its
    pool is answered at once, so pooled machines hold none of the web server's threads."""
    parse_body(schemas.ClaimRequest, empty_means={})
    bearer, deadline = _bearer(), time.monotonic() + pooling.HOLD_SECONDS
    while True:
        session = db()
        step, machine, report_token = pooling.take_claim(session, machine_id, bearer, utcnow())
        if machine is not None:
            answer = service.claim_answer(session, runtime().settings, machine, report_token,
                                          utcnow())
            return dump(schemas.ClaimedMachine.model_validate(answer)), 200, NO_STORE
        if step is pooling.ClaimStep.WAIT or time.monotonic() >= deadline:
            return "", 204, {**NO_STORE, "Retry-After": str(pooling.POLL_SECONDS)}
        session.rollback()  # a fresh snapshot: the worker's hand-over commits elsewhere
        time.sleep(0.05)


@blueprint.post("/context/<machine_id>/activity")
@csrf_exempt
def activity(machine_id: str) -> tuple[dict[str, Any], int]:
    """Record the agent's periodic ``{"cpu_percent", "sessions"}`` report (202, ``active``:
    whether it keeps the machine from an idle stop); 403 without the report token."""
    report = parse_body(ActivityReport)
    active = record_activity(db(), runtime().settings, machine_id, _bearer(),
                             report.cpu_percent, report.sessions, report.detail, utcnow())
    return dump(ActivityAccepted(machine_id=machine_id, active=active)), 202


def _bearer() -> str:
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Forbidden(service.REPORT_REFUSED, "status report without a bearer token")
    return token.strip()
