"""The VM agent's periodic activity report: CPU use and logged-in sessions, authenticated with
the machine's report token like its ready report (contextualisation/BOOTSTRAP_PROTOCOL.md).
A report showing activity keeps the machine from being stopped as idle
(:mod:`daaas.portal.machines.activity`)."""

from __future__ import annotations

import hmac
import logging
from datetime import datetime

from sqlalchemy.orm import Session

from daaas.portal.bootstrap.models import MachineContext
from daaas.portal.config import Settings
from daaas.portal.errors import Forbidden
from daaas.portal.machines.activity import record_vm_activity
from daaas.portal.machines.secrets import token_digest

log = logging.getLogger(__name__)
REFUSED = ("This activity report is not signed with the machine's report token, so it was "
           "ignored.")


def record_activity(db: Session, settings: Settings, machine_id: str, bearer: str,
                    cpu_percent: float, sessions: int, detail: str, now: datetime) -> bool:
    """Record the machine's activity report sent with ``bearer`` (its report token, handed
    over by the bootstrap exchange); return whether it counts as activity. Raises Forbidden
    (nothing recorded) for an unknown machine or a token that does not fit."""
    row = db.get(MachineContext, machine_id)
    if row is None or not row.report_token_hash or not hmac.compare_digest(
            row.report_token_hash, token_digest(bearer)):
        raise Forbidden(REFUSED, f"activity report for {machine_id} refused: bad token")
    active = record_vm_activity(db, settings, machine_id, cpu_percent, sessions, detail, now)
    log.debug("machine %s activity: cpu %.1f%%, %d session(s)", machine_id, cpu_percent,
              sessions)
    return active
