"""Desktop pages: the browser desktop, the .rdp download and the installed noVNC."""

from __future__ import annotations

from pathlib import Path

from flask import Blueprint, Response, render_template, request, send_from_directory
from flask.typing import ResponseReturnValue

from daaas.portal.access.offer import AccessOffer, access_offer
from daaas.portal.access.rdp import RdpDownload, rdp_download
from daaas.portal.access.signin import issue_sign_in
from daaas.portal.auth.current import require_user
from daaas.portal.config import parse_hours_list, resolve_secret_key
from daaas.portal.db import utcnow
from daaas.portal.errors import NotFound, PortalError
from daaas.portal.lifecycle import db
from daaas.portal.machines.models import Machine
from daaas.portal.machines.naming import storage_on_desktop
from daaas.portal.machines.service import get_machine
from daaas.portal.runtime import runtime
from daaas.portal.sharing.access import machine_access
from daaas.portal.sharing.views import support_page

blueprint = Blueprint("access", __name__)
NOVNC_CACHE_SECONDS = 3600


class NoVncMissing(PortalError):
    """noVNC is not installed where ``novnc_dir`` points."""

    status_code = 503
    code = "novnc_missing"


@blueprint.app_context_processor
def _access_helpers() -> dict[str, object]:
    """Give templates ``machine_access(machine)``: the ways into it the page offers."""
    def machine_access(machine: Machine) -> AccessOffer:
        return access_offer(runtime().settings, machine)
    return {"machine_access": machine_access}


@blueprint.get("/machines/<machine_id>/desktop")
def desktop(machine_id: str) -> str:
    """Return the browser desktop page of the user's machine, or of one shared with them (as
    user or viewer: the page says so; the proxy enforces it).

    An administrator who needs the owner's acceptance (``support_emergency_access`` off) gets
    the page to ask for it. Raises AuthenticationRequired (sign-in redirect) or NotFound (not
    the user's machine nor shared with them).
    """
    user = require_user()
    settings = runtime().settings
    try:
        found = machine_access(db(), user, machine_id,
                               emergency=settings.support_emergency_access)
    except NotFound:
        if not user.is_admin:
            raise
        return support_page(user, machine_id)  # an administrator asks the owner first
    machine = found.machine
    return render_template("access/desktop.html", machine=machine,
                           is_owner=machine.user_id == user.id, role=found.role.value,
                           storage_on_desktop=storage_on_desktop(settings, machine.provider),
                           warn_hours=min(parse_hours_list(settings.expiry_warning_hours),
                                          default=2.0))


@blueprint.get("/machines/<machine_id>/rdp")
def rdp(machine_id: str) -> Response:
    """Return the machine's .rdp file as an attachment.

    Raises AuthenticationRequired, NotFound or Conflict (not ready, or RDP not offered, with
    the reason).
    """
    return rdp_response(rdp_download(db(), runtime().settings, require_user(), machine_id))


@blueprint.post("/machines/<machine_id>/rdp-sign-in")
def rdp_sign_in(machine_id: str) -> ResponseReturnValue:
    """Show a fresh one-time RDP sign-in secret, once, with the .rdp download (not cached).

    With the form's ``in_file`` ticked the download is this page's own copy of the .rdp file
    with the secret in it (for FreeRDP, see :func:`~daaas.portal.access.rdp.rdp_file`), never
    a link that would ask the portal for it again. Raises AuthenticationRequired, NotFound,
    Forbidden (not the owner) or Conflict (not ready, RDP not offered or its address not
    recorded yet, with the reason).
    """
    settings, user = runtime().settings, require_user()
    grant = issue_sign_in(db(), settings, resolve_secret_key(settings), user, machine_id,
                          utcnow())
    in_file = rdp_download(db(), settings, user, machine_id, password=grant.secret) \
        if request.form.get("in_file") else None
    page = render_template("access/rdp_sign_in.html", grant=grant, in_file=in_file,
                           machine=get_machine(db(), user, machine_id),
                           minutes=settings.rdp_sign_in_minutes)
    return page, 201, {"Cache-Control": "no-store"}


@blueprint.get("/novnc/<path:filename>")
def novnc(filename: str) -> Response:
    """Return a file of the installed noVNC (read-only, cacheable, no sign-in needed).

    Raises NoVncMissing (503, naming the Debian package novnc) when ``novnc_dir`` holds no
    noVNC, and werkzeug's NotFound for a file outside it or missing.
    """
    root = Path(runtime().settings.novnc_dir)
    if not (root / "core" / "rfb.js").is_file():
        raise NoVncMissing(
            "The browser desktop is not available: noVNC is not installed on this server. "
            "Ask the administrator to install the Debian package novnc (apt-get install "
            "novnc) or to set novnc_dir to where noVNC is.",
            f"noVNC not found: {root}/core/rfb.js does not exist (setting novnc_dir)")
    return send_from_directory(root, filename, max_age=NOVNC_CACHE_SECONDS)


def rdp_response(download: RdpDownload) -> Response:
    """Return ``download`` as an uncached attachment of type application/x-rdp. Raises nothing."""
    response = Response(download.content, mimetype="application/x-rdp")
    response.headers["Content-Disposition"] = f'attachment; filename="{download.filename}"'
    response.headers["Cache-Control"] = "no-store"
    return response
