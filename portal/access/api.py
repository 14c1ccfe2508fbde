"""JSON API for desktop access under /api/v1 (bodies: :mod:`.schemas`)."""

from __future__ import annotations

import threading
import time
from typing import Any

from flask import Blueprint, Response, request

from daaas.portal.access.rdp import rdp_download
from daaas.portal.access.schemas import (
    DesktopAccess,
    DesktopOpening,
    DesktopStatus,
    RdpSignIn,
    StatusQuery,
)
from daaas.portal.access.service import DesktopStatus as Status
from daaas.portal.access.service import desktop_status, issue_desktop_token
from daaas.portal.access.signin import issue_sign_in
from daaas.portal.access.views import rdp_response
from daaas.portal.api.schema import dump, parse_query
from daaas.portal.auth.current import require_user
from daaas.portal.config import resolve_secret_key
from daaas.portal.db import utcnow
from daaas.portal.lifecycle import db
from daaas.portal.machines.changes import hub_of
from daaas.portal.runtime import runtime

blueprint = Blueprint("access_api", __name__, url_prefix="/api/v1")


@blueprint.post("/machines/<machine_id>/access")
def access(machine_id: str) -> tuple[dict[str, Any], int, dict[str, str]]:
    """Return 201 with a one-time desktop token and the websocket URL that spends it.

    No VNC password: the desktop proxy signs in to the VNC server itself and offers the
    browser only RFB security type None. The answer is marked not to be stored. Raises
    AuthenticationRequired, NotFound, Conflict (machine not ready) or MachineGone, answered as
    JSON errors.
    """
    rt = runtime()
    grant = issue_desktop_token(db(), rt.settings, rt.provider, require_user(), machine_id,
                                request_host=request.host)
    body = DesktopAccess(token=grant.token, websocket_url=grant.websocket_url,
                         expires_at=grant.expires_at.isoformat())
    return dump(body), 201, {"Cache-Control": "no-store"}


#: Long polls one web process holds at once (each holds a server thread, never a database
#: connection); beyond it, a long poll is answered at once
MAX_WAITERS = 4
_waiters = threading.BoundedSemaphore(MAX_WAITERS)


@blueprint.get("/machines/<machine_id>/desktop-status")
def status(machine_id: str) -> tuple[dict[str, Any], int, dict[str, str]]:
    """Return 200 with the machine's :class:`~schemas.DesktopStatus`: its state, why the
    desktop cannot be opened now, whether it can be started, whether it has ended, and the
    administrators who opened it.

    A long poll with ``wait`` and ``state``: while the machine is in ``state`` the answer
    waits (no database connection held; the worker's commit wakes it, :mod:`.changes`) up to
    ``wait`` seconds. Raises AuthenticationRequired or NotFound (the access check of the
    desktop page: owner, member, administrator), answered as JSON errors.
    """
    query = parse_query(StatusQuery)
    user, rt = require_user(), runtime()
    hub = hub_of(rt.engine)
    if query.wait:
        hub.listen(rt.engine)
    since = hub.version(machine_id)
    found = desktop_status(db(), rt.provider, user, machine_id)
    if query.wait and query.state == found.state and not found.ended \
            and _waiters.acquire(blocking=False):
        try:
            found = _wait_for_change(hub, user, machine_id, found, since, query.wait)
        finally:
            _waiters.release()
    body = DesktopStatus(state=found.state, message=found.message, can_start=found.can_start,
                         ended=found.ended,
                         openings=[DesktopOpening(who=o.who, at=o.at.isoformat())
                                   for o in found.openings])
    return dump(body), 200, {"Cache-Control": "no-store"}


def _wait_for_change(hub: Any, user: Any, machine_id: str, found: Status, since: int,
                     seconds: float) -> Status:
    """Wait until the machine leaves ``found.state`` or ``seconds`` pass, reading it again
    after each signal; no transaction (so no connection) is open while waiting."""
    deadline = time.monotonic() + seconds
    known = found.state
    while found.state == known:
        db().rollback()  # let the connection go back to the pool before waiting
        left = deadline - time.monotonic()
        if left <= 0 or not hub.wait(machine_id, since, left):
            break
        since = hub.version(machine_id)
        found = desktop_status(db(), runtime().provider, user, machine_id)
    return found


@blueprint.get("/machines/<machine_id>/rdp")
def rdp(machine_id: str) -> Response:
    """Return the machine's .rdp file as an attachment.

    Raises AuthenticationRequired, NotFound or Conflict (not ready, or RDP not offered, with
    the reason), answered as JSON errors.
    """
    return rdp_response(rdp_download(db(), runtime().settings, require_user(), machine_id))


@blueprint.post("/machines/<machine_id>/rdp-sign-in")
def rdp_sign_in(machine_id: str) -> tuple[dict[str, Any], int, dict[str, str]]:
    """Return 201 with a one-time RDP sign-in secret for the user's own ready machine (not to
    be stored). Raises AuthenticationRequired, NotFound, Forbidden (not the owner) or Conflict
    (not ready, or RDP not offered), answered as JSON errors."""
    settings = runtime().settings
    grant = issue_sign_in(db(), settings, resolve_secret_key(settings), require_user(),
                          machine_id, utcnow())
    body = RdpSignIn(secret=grant.secret, username=grant.username,
                     expires_at=grant.expires_at.isoformat())
    return dump(body), 201, {"Cache-Control": "no-store"}
