"""Shared desktops: the JSON API under /api/v1 (bodies: :mod:`.schemas`) and the share-link
pages (``/share/<secret>``). Thin: parse, call :mod:`.service`, answer."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, redirect, render_template, request, url_for
from sqlalchemy.orm import Session
from werkzeug.wrappers import Response

from daaas.portal.access.schemas import DesktopAccess, DesktopStatus
from daaas.portal.access.service import END_STATES, not_ready_message
from daaas.portal.api.schema import ID, dump, parse_body, with_ids
from daaas.portal.auth.current import current_user, require_user
from daaas.portal.auth.models import User
from daaas.portal.config import parse_hours_list
from daaas.portal.errors import NotFound
from daaas.portal.lifecycle import db
from daaas.portal.machines.models import Machine
from daaas.portal.machines.states import State
from daaas.portal.runtime import runtime
from daaas.portal.sharing import service
from daaas.portal.sharing.access import NO_SUCH_MACHINE, machine_access
from daaas.portal.sharing.models import LinkKind, Role, ShareLink
from daaas.portal.sharing.schemas import (
    Connected,
    InviteRequest,
    Link,
    LinkRequest,
    MachineMember,
    NewLink,
    PolicyRequest,
    SharedList,
    SharedMachine,
    Sharing,
    Suggested,
    SuggestionList,
    SupportRequest,
)

api = with_ids(Blueprint("sharing_api", __name__, url_prefix="/api/v1"))
pages = Blueprint("sharing", __name__)


def sharing_reply(session: Session, user: User, machine_id: str) -> Sharing:
    """Return what ``user`` may see of the machine's sharing. Raises NotFound (non-member)."""
    found = machine_access(session, user, machine_id)
    machine, owner = found.machine, found.is_owner
    return Sharing(
        role=found.role.value, owner=machine.user.username,
        owner_away=service.current_policy(runtime().settings, session, machine).value if owner
        else None,
        members=[MachineMember(username=m.user.username, display_name=m.user.display_name,
                        role=m.role, since=m.created_at.isoformat())
                 for m in service.members(session, machine)],
        connected=[Connected(id=c.id, username=c.user.username,
                             display_name=c.user.display_name, role=c.role,
                             via_link=c.link_id is not None, since=c.opened_at.isoformat())
                   for c in service.connected(session, machine)],
        links=[Link(id=link.id, kind=link.kind, role=link.role,
                    created_at=link.created_at.isoformat(),
                    expires_at=link.expires_at.isoformat() if link.expires_at else None)
               for link in service.links(session, machine)] if owner else [],
        support_requests=[support_reply(row, who)
                          for row, who in service.support_requests(session, machine)]
        if machine.user_id == user.id else [])


def support_reply(row: ShareLink, who: User) -> SupportRequest:
    """Return a pending support request as the API shows it. Raises nothing."""
    return SupportRequest(id=row.id, username=who.username, display_name=who.display_name,
                          created_at=row.created_at.isoformat())


@api.get("/machines/<machine_id>/sharing")
def sharing(machine_id: str) -> tuple[dict[str, Any], int, dict[str, str]]:
    """Return 200 with the machine's :class:`Sharing`. Raises NotFound (non-member)."""
    return dump(sharing_reply(db(), require_user(), machine_id)), 200, \
        {"Cache-Control": "no-store"}


@api.post("/machines/<machine_id>/members")
def invite(machine_id: str) -> tuple[dict[str, Any], int]:
    """Share the machine with an account (or change its role); 201 with the machine's sharing.
    Raises InvalidInput, NotFound, Forbidden (a member)."""
    body = parse_body(InviteRequest)
    user = require_user()
    service.invite(db(), runtime().settings, user, machine_id, body.username, body.role)
    return dump(sharing_reply(db(), user, machine_id)), 201


@api.delete("/machines/<machine_id>/members/<username>")
def remove(machine_id: str, username: str) -> tuple[str, int]:
    """Remove a member (the owner; or a member leaving); 204. Their connections close within a
    second. Raises NotFound, Forbidden."""
    service.remove_member(db(), require_user(), machine_id, username)
    return "", 204


@api.put("/machines/<machine_id>/sharing/policy")
def set_policy(machine_id: str) -> tuple[dict[str, Any], int]:
    """Set what happens to the others when the owner leaves; 200 with the sharing. Raises
    InvalidInput, NotFound, Forbidden."""
    body = parse_body(PolicyRequest)
    user = require_user()
    service.set_policy(db(), runtime().settings, user, machine_id, body.owner_away)
    return dump(sharing_reply(db(), user, machine_id)), 200


@api.post("/machines/<machine_id>/links")
def create_link(machine_id: str) -> tuple[dict[str, Any], int, dict[str, str]]:
    """Make a share link; 201 with its address (shown only now). Raises InvalidInput,
    NotFound, Forbidden."""
    body = parse_body(LinkRequest)
    made = service.create_link(db(), runtime().settings, require_user(), machine_id,
                               body.kind, body.role)
    link = made.link
    reply = NewLink(id=link.id, kind=link.kind, role=link.role,
                    created_at=link.created_at.isoformat(),
                    expires_at=link.expires_at.isoformat() if link.expires_at else None,
                    url=url_for("sharing.link", secret=made.secret, _external=True))
    return dump(reply), 201, {"Cache-Control": "no-store"}


@api.delete(f"/machines/<machine_id>/links/<{ID}:link_id>")
def revoke_link(machine_id: str, link_id: int) -> tuple[str, int]:
    """Revoke a link; 204 (its connections close within a second). Raises NotFound,
    Forbidden."""
    service.revoke_link(db(), require_user(), machine_id, link_id)
    return "", 204


@api.delete(f"/machines/<machine_id>/connections/<{ID}:connection_id>")
def end_connection(machine_id: str, connection_id: int) -> tuple[str, int]:
    """The owner removes someone from the desktop (a member loses membership); 204. Raises
    NotFound, Forbidden."""
    service.end_connection(db(), require_user(), machine_id, connection_id)
    return "", 204


@api.get("/machines/<machine_id>/sharing/suggestions")
def suggestions(machine_id: str) -> dict[str, Any]:
    """Return the other members of the machine's experiment who have accounts here (the
    owner's share dialog offers them). Raises NotFound, Forbidden (not the owner)."""
    found = service.suggestions(db(), runtime().experiments, require_user(), machine_id)
    return dump(SuggestionList(experiment=found.experiment, users=[
        Suggested(username=u.username, display_name=u.display_name) for u in found.users]))


@api.post("/machines/<machine_id>/support-requests")
def request_support(machine_id: str) -> tuple[dict[str, Any], int]:
    """An administrator asks the owner for access; 201 with the pending request. Raises
    Forbidden (not an administrator), NotFound, Conflict (has access already)."""
    row = service.request_support(db(), runtime().settings, require_user(), machine_id)
    admin = db().get(User, row.used_by_id)
    assert admin is not None
    return dump(support_reply(row, admin)), 201


@api.post(f"/machines/<machine_id>/support-requests/<{ID}:request_id>/accept")
def accept_support(machine_id: str, request_id: int) -> dict[str, Any]:
    """The owner accepts: the administrator becomes a member (user); 200 with the sharing.
    Raises NotFound, Forbidden (not the owner)."""
    user = require_user()
    service.answer_support(db(), runtime().settings, user, machine_id, request_id, accept=True)
    return dump(sharing_reply(db(), user, machine_id))


@api.delete(f"/machines/<machine_id>/support-requests/<{ID}:request_id>")
def refuse_support(machine_id: str, request_id: int) -> tuple[str, int]:
    """The owner refuses a support request; 204. Raises NotFound, Forbidden."""
    service.answer_support(db(), runtime().settings, require_user(), machine_id, request_id,
                           accept=False)
    return "", 204


@pages.post("/machines/<machine_id>/support")
def ask_support(machine_id: str) -> str:
    """An administrator asks for access from the desktop page; shows that the owner was asked.
    Raises Forbidden, NotFound, Conflict."""
    user = require_user()
    service.request_support(db(), runtime().settings, user, machine_id)
    return support_page(user, machine_id)


def support_page(user: User, machine_id: str) -> str:
    """Return the page an administrator sees instead of a desktop they need the owner's
    acceptance for (support_emergency_access is off). Raises NotFound (not an administrator,
    or no such machine)."""
    machine = db().get(Machine, machine_id)
    if not user.is_admin or machine is None:
        raise NotFound(NO_SUCH_MACHINE)
    asked = any(who.id == user.id for _, who in service.support_requests(db(), machine))
    return render_template("sharing/support.html", machine=machine, asked=asked)


@api.get("/shared")
def shared() -> dict[str, Any]:
    """Return the machines shared with the caller (:class:`SharedList`)."""
    return dump(SharedList(machines=[
        SharedMachine(machine_id=m.id, name=m.name or m.environment.title,
                      owner=m.user.username, role=role.value, state=m.state,
                      desktop_url=url_for("access.desktop", machine_id=m.id))
        for m, role in service.shared_with(db(), require_user())]))


@api.post("/share/<secret>/access")
def link_access(secret: str) -> tuple[dict[str, Any], int, dict[str, str]]:
    """Return 201 with a view-only desktop token through a view link, while the owner is
    connected. Raises NotFound (not a working link), Conflict (the owner is away)."""
    rt = runtime()
    grant = service.issue_link_token(db(), rt.settings, rt.provider, require_user(), secret,
                                     request_host=request.host)
    body = DesktopAccess(token=grant.token, websocket_url=grant.websocket_url,
                         expires_at=grant.expires_at.isoformat())
    return dump(body), 201, {"Cache-Control": "no-store"}


@api.get("/share/<secret>/desktop-status")
def link_status(secret: str) -> tuple[dict[str, Any], int, dict[str, str]]:
    """Return 200 with the desktop status of a view link's machine (what its desktop page
    needs between connections): its state, whether it can be opened now (the owner is
    connected). Raises NotFound (not a working view link)."""
    require_user()
    machine, _ = service.view_link(db(), secret)
    message = not_ready_message(machine)
    if message is None and not service.owner_connected(db(), machine):
        message = service.OWNER_AWAY
    state = State(machine.state)
    body = DesktopStatus(state=machine.state, message=message, can_start=False,
                         ended=state in END_STATES, openings=[])
    return dump(body), 200, {"Cache-Control": "no-store"}


@pages.get("/share/<secret>")
def link(secret: str) -> str | Response:
    """Show an invitation (to accept with a POST) or the view-only desktop of a view link.
    Raises AuthenticationRequired (sign-in redirect) or NotFound."""
    user = require_user()
    found = service.find_link(db(), secret)
    machine = db().get(Machine, found.machine_id)
    if machine is None:
        raise NotFound(service.NO_SUCH_LINK)
    if found.kind == LinkKind.INVITE.value:
        return render_template("sharing/invite.html", machine=machine, link=found,
                               secret=secret, is_owner=machine.user_id == user.id)
    settings = runtime().settings
    return render_template(
        "access/desktop.html", machine=machine, is_owner=False, role=Role.VIEWER.value,
        via_link=True, storage_on_desktop=None,
        access_url=url_for("sharing_api.link_access", secret=secret),
        status_url=url_for("sharing_api.link_status", secret=secret),
        warn_hours=min(parse_hours_list(settings.expiry_warning_hours), default=2.0))


@pages.post("/share/<secret>")
def accept(secret: str) -> Response:
    """Accept an invitation (once): the user becomes a member; redirect to the desktop.
    Raises AuthenticationRequired, NotFound (used, revoked, expired), InvalidInput."""
    machine = service.accept_invitation(db(), runtime().settings, require_user(), secret)
    return redirect(url_for("access.desktop", machine_id=machine.id))


@pages.app_template_global("shared_with_me")
def shared_with_me() -> list[tuple[Any, str]]:
    """Return (machine, role) of the machines shared with the signed-in user, for the Analysis
    page's "Shared with me" (empty when signed out). Raises nothing else."""
    user = current_user()
    if user is None:
        return []
    return [(machine, role.value) for machine, role in service.shared_with(db(), user)]
