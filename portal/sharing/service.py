"""Shared desktops, the web side: who may open a machine's desktop and as what, invitations,
share links, and revocation.

A machine's owner (and an administrator) has the role ``owner``; a member has the role of
their :class:`MachineMember` row; anyone else gets NotFound for the machine, its desktop and its
tokens, exactly as for a machine that does not exist. A desktop token carries its role; the
desktop proxy (:mod:`daaas.portal.sharing.registry`) enforces it and records each connection in
``desktop_connections``. Revoking (removing a member, revoking a link, the owner removing a
connection) marks that person's open connections ended there, and the proxy process relaying
each one closes it within :data:`daaas.portal.sharing.registry.CHECK_EVERY` seconds.
"""

from __future__ import annotations

import logging
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import ColumnElement, delete, select, update
from sqlalchemy.orm import Session, joinedload

from daaas.portal.access.service import DesktopAccess, not_ready_message
from daaas.portal.access.urls import websocket_url
from daaas.portal.audit.service import record
from daaas.portal.auth.models import User
from daaas.portal.config import Settings
from daaas.portal.db import utcnow
from daaas.portal.errors import Conflict, Forbidden, InvalidInput, NotFound
from daaas.portal.experiments.backends import ExperimentBackend
from daaas.portal.experiments.errors import ExperimentsUnavailable
from daaas.portal.machines.models import AccessToken, Machine, MachineEvent
from daaas.portal.machines.secrets import token_digest
from daaas.portal.machines.states import State
from daaas.portal.notifications.service import machine_url, queue
from daaas.portal.providers.base import Provider
from daaas.portal.sharing.access import machine_access, role_of
from daaas.portal.sharing.models import (
    MEMBER_ROLES,
    DesktopConnection,
    LinkKind,
    MachineMember,
    OwnerAway,
    Role,
    ShareLink,
    SharePolicy,
)

log = logging.getLogger(__name__)
NO_SUCH_LINK = ("This share link does not work (any more): it was used, revoked or has "
                "expired. Ask the machine's owner for a new one.")
OWNER_AWAY = ("The owner of this desktop is not connected now; a view-only link works only "
              "while they are. Try again when they are on their desktop.")
#: A connection the proxy has not touched for this long is taken as gone (a proxy killed).
FRESH = timedelta(seconds=45)


def owned(db: Session, user: User, machine_id: str) -> Machine:
    """Return the machine if ``user`` is its owner. Raises NotFound for a non-member, Forbidden
    for a member or an administrator (only the owner shares a machine)."""
    found = machine_access(db, user, machine_id)
    if found.machine.user_id != user.id:
        raise Forbidden("Only the machine's owner can share it or change who it is shared "
                        "with.", f"{user.username} ({found.role.value}) tried to change the "
                        f"sharing of {machine_id}")
    return found.machine


def event(db: Session, machine: Machine, message: str, *, actor: str, action: str,
          admin: bool = False) -> None:
    """Record ``message`` as a machine event (state unchanged) and an audit row. Raises
    SQLAlchemy errors only."""
    db.add(MachineEvent(machine_id=machine.id, from_state=machine.state,
                        to_state=machine.state, message=message, at=utcnow()))
    record(db, action, actor=actor, target=f"machine {machine.id}", detail=message, admin=admin)


def member_role(raw: object) -> Role:
    """Return the member role named ``raw`` ("user" or "viewer"). Raises InvalidInput."""
    for role in MEMBER_ROLES:
        if raw == role.value:
            return role
    raise InvalidInput("A member's role is 'user' (full control of the desktop) or 'viewer' "
                       "(sees the desktop, cannot type or click).")


def policy(db: Session, settings: Settings, machine: Machine) -> OwnerAway:
    """Return the machine's owner-away policy (the site's default until the owner chooses);
    records the default at the first share. Raises SQLAlchemy errors only."""
    row = db.get(SharePolicy, machine.id)
    if row is None:
        row = SharePolicy(machine_id=machine.id, owner_away=settings.sharing_owner_away)
        db.add(row)
        db.flush()
    return OwnerAway(row.owner_away)


def current_policy(settings: Settings, db: Session, machine: Machine) -> OwnerAway:
    """Return the machine's owner-away policy without recording anything (the site's default
    until it is first shared). Raises SQLAlchemy errors only."""
    row = db.get(SharePolicy, machine.id)
    return OwnerAway(row.owner_away if row else settings.sharing_owner_away)


def set_policy(db: Session, settings: Settings, user: User, machine_id: str,
               raw: object) -> OwnerAway:
    """Set the machine's owner-away policy; returns it. Raises NotFound, Forbidden (not the
    owner) or InvalidInput (not stay, view_only or disconnect)."""
    machine = owned(db, user, machine_id)
    try:
        chosen = OwnerAway(raw)
    except ValueError:
        raise InvalidInput("When you leave, the others 'stay', become 'view_only' or are "
                           "'disconnect'ed.") from None
    policy(db, settings, machine)
    db.execute(update(SharePolicy).where(SharePolicy.machine_id == machine.id)
               .values(owner_away=chosen.value))
    event(db, machine, f"when the owner leaves, others: {chosen.value.replace('_', ' ')}",
          actor=user.username, action="sharing.policy")
    return chosen


def members(db: Session, machine: Machine) -> list[MachineMember]:
    """Return the machine's members (their users loaded), oldest first. Raises nothing else."""
    return list(db.scalars(select(MachineMember).where(MachineMember.machine_id == machine.id)
                           .options(joinedload(MachineMember.user))
                           .order_by(MachineMember.id)))


def invite(db: Session, settings: Settings, owner: User, machine_id: str, username: str,
           raw_role: object) -> MachineMember:
    """Make ``username`` a member of the machine with the role (or change their role); queue
    them an e-mail. Returns the member row. Raises NotFound (machine; or no such account,
    InvalidInput), Forbidden (not the owner), InvalidInput (a bad role, the owner themself)."""
    machine = owned(db, owner, machine_id)
    role = member_role(raw_role)
    guest = db.scalar(select(User).where(User.username == username.strip()))
    if guest is None:
        raise InvalidInput(f"There is no account named '{username.strip()}'. Check the "
                           "username (not the display name).")
    return add_member(db, settings, machine, guest, role, by=owner)


def add_member(db: Session, settings: Settings, machine: Machine, guest: User, role: Role, *,
               by: User) -> MachineMember:
    """Make ``guest`` a member with ``role`` or change their role (their open connections get
    it within a second); queue a notification. Returns the row. Raises InvalidInput for the
    machine's owner."""
    if guest.id == machine.user_id:
        raise InvalidInput("That is the machine's owner: they have every right already.")
    policy(db, settings, machine)
    member = db.scalar(select(MachineMember).where(MachineMember.machine_id == machine.id,
                                                   MachineMember.user_id == guest.id))
    if member is not None:
        if member.role != role.value:
            member.role = role.value
            set_connection_roles(db, machine.id, guest.id, role)
            event(db, machine, f"{guest.username} is now {role.value} (was changed by "
                  f"{by.username})", actor=by.username, action="sharing.role")
        return member
    member = MachineMember(machine_id=machine.id, user_id=guest.id, role=role.value,
                           invited_by=by.username, created_at=utcnow())
    db.add(member)
    db.flush()
    event(db, machine, f"shared with {guest.username} as {role.value} by {by.username}",
          actor=by.username, action="sharing.invite")
    notify(db, settings, machine, guest, role, by, member.id)
    return member


def notify(db: Session, settings: Settings, machine: Machine, guest: User, role: Role,
           by: User, member_id: int) -> None:
    """Queue the e-mail telling ``guest`` a desktop was shared with them (the page's "Shared
    with me" shows it too). Raises SQLAlchemy errors only."""
    name = machine.name or machine.environment_name
    what = ("work on it with them (you cannot delete, extend or share it)"
            if role is Role.USER else "watch it (you cannot type or click in it)")
    queue(db, key=f"shared:{member_id}", kind="shared", user=guest, machine_id=machine.id,
          subject=f"{by.display_name or by.username} shared a desktop with you: {name}",
          body=(f"{by.display_name or by.username} ({by.username}) shared the desktop "
                f"\"{name}\" with you as {role.value}: you can {what}.\n\nOpen it from "
                f"\"Shared with me\" on the Analysis page, or at "
                f"{machine_url(settings, machine.id)}/desktop\n\nYou do not get their "
                "storage; files written in the session belong to the desktop's own user.\n"),
          now=utcnow())


def remove_member(db: Session, user: User, machine_id: str, username: str) -> None:
    """Remove ``username`` from the machine's members (the owner does; a member may leave):
    their unused tokens are deleted and their open connections end within a second. Raises
    NotFound (machine, or not a member), Forbidden (a member removing someone else)."""
    found = machine_access(db, user, machine_id)
    if not found.is_owner and username != user.username:
        raise Forbidden("Only the machine's owner can remove other people.")
    member = db.scalar(select(MachineMember).join(User, User.id == MachineMember.user_id)
                       .where(MachineMember.machine_id == machine_id,
                              User.username == username))
    if member is None:
        raise NotFound(f"{username} is not a member of this machine.")
    db.delete(member)
    db.execute(delete(AccessToken).where(AccessToken.machine_id == machine_id,
                                         AccessToken.user_id == member.user_id,
                                         AccessToken.used_at.is_(None)))
    end_connections(db, DesktopConnection.user_id == member.user_id, machine_id=machine_id,
                    reason=f"removed by {user.username}")
    event(db, found.machine, f"{username} removed from the members by {user.username}",
          actor=user.username, action="sharing.revoke")


def end_connections(db: Session, *conditions: ColumnElement[bool], machine_id: str,
                    reason: str) -> int:
    """Mark the machine's open connections matching ``conditions`` ended: their proxy closes
    them within a second. Returns how many. Raises SQLAlchemy errors only."""
    result = db.execute(update(DesktopConnection).where(
        DesktopConnection.machine_id == machine_id, DesktopConnection.closed_at.is_(None),
        DesktopConnection.ended == "", *conditions).values(ended=reason[:200]))
    return int(getattr(result, "rowcount", 0) or 0)


def set_connection_roles(db: Session, machine_id: str, user_id: int, role: Role) -> None:
    """Give ``user_id``'s open connections to the machine ``role`` (the proxy applies it within
    a second). Raises SQLAlchemy errors only."""
    db.execute(update(DesktopConnection).where(
        DesktopConnection.machine_id == machine_id, DesktopConnection.user_id == user_id,
        DesktopConnection.closed_at.is_(None), DesktopConnection.link_id.is_(None))
        .values(granted_role=role.value, role=role.value))


def end_connection(db: Session, user: User, machine_id: str, connection_id: int) -> None:
    """The owner removes one connected person: a member is removed from the members, a link's
    visitor is disconnected. Raises NotFound, Forbidden (not the owner)."""
    machine = owned(db, user, machine_id)
    row = db.scalar(select(DesktopConnection).where(DesktopConnection.id == connection_id,
                                                    DesktopConnection.machine_id == machine.id)
                    .options(joinedload(DesktopConnection.user)))
    if row is None or row.closed_at is not None:
        raise NotFound("That connection has already ended.")
    if row.link_id is None and role_of(db, row.user, machine) in MEMBER_ROLES:
        remove_member(db, user, machine_id, row.user.username)
        return
    end_connections(db, DesktopConnection.id == row.id, machine_id=machine.id,
                    reason=f"removed by {user.username}")
    event(db, machine, f"{row.user.username}'s connection ({row.role}) ended by "
          f"{user.username}", actor=user.username, action="sharing.revoke")


def connected(db: Session, machine: Machine) -> list[DesktopConnection]:
    """Return the machine's open connections (users loaded), oldest first: those the proxy
    touched within :data:`FRESH`. Raises SQLAlchemy errors only."""
    return list(db.scalars(select(DesktopConnection).where(
        DesktopConnection.machine_id == machine.id, DesktopConnection.closed_at.is_(None),
        DesktopConnection.ended == "", DesktopConnection.seen_at > utcnow() - FRESH)
        .options(joinedload(DesktopConnection.user)).order_by(DesktopConnection.id)))


def owner_connected(db: Session, machine: Machine) -> bool:
    """True while the machine's owner has an open desktop connection. Raises nothing else."""
    return any(row.user_id == machine.user_id for row in connected(db, machine))


def shared_with(db: Session, user: User) -> list[tuple[Machine, Role]]:
    """Return the machines (not deleted) others shared with ``user`` and the role on each,
    newest share first. Raises SQLAlchemy errors only."""
    rows = db.execute(select(Machine, MachineMember.role)
                      .join(MachineMember, MachineMember.machine_id == Machine.id)
                      .where(MachineMember.user_id == user.id,
                             Machine.state != State.DELETED.value)
                      .options(joinedload(Machine.user))
                      .order_by(MachineMember.id.desc())).all()
    return [(machine, Role(role)) for machine, role in rows]


def _token(db: Session, settings: Settings, provider: Provider, user: User, machine: Machine,
           role: Role, link_id: int | None, request_host: str) -> DesktopAccess:
    message = not_ready_message(machine)
    if message:
        raise Conflict(message, f"desktop access to {machine.id} refused: state "
                       f"{machine.state}")
    target = provider.connection_target(machine.id)
    token, now = secrets.token_urlsafe(32), utcnow()
    expires_at = now + timedelta(seconds=settings.access_token_ttl_seconds)
    db.add(AccessToken(machine_id=machine.id, user_id=user.id, secret_hash=token_digest(token),
                       host=target.host, port=target.vnc_port, socket_path=target.vnc_socket,
                       created_at=now, expires_at=expires_at, role=role.value,
                       link_id=link_id))
    db.flush()
    log.info("desktop token (%s) issued to %s for machine %s", role.value, user.username,
             machine.id)
    return DesktopAccess(token=token, websocket_url=websocket_url(settings, token, request_host),
                         expires_at=expires_at)


@dataclass(frozen=True)
class NewLink:
    """A share link just made: its secret (shown once) and its row."""

    secret: str
    link: ShareLink


def create_link(db: Session, settings: Settings, owner: User, machine_id: str, raw_kind: object,
                raw_role: object = "viewer") -> NewLink:
    """Make a share link: ``invite`` (one use, expires after ``sharing_invite_hours``, makes
    the first account that opens it a member with ``raw_role``) or ``view`` (view-only, works
    while the owner is connected). Returns the secret and the row. Raises NotFound, Forbidden,
    InvalidInput (a bad kind or role)."""
    machine = owned(db, owner, machine_id)
    try:
        kind = LinkKind(raw_kind)
    except ValueError:
        raise InvalidInput("A share link is an 'invite' (one use, makes a member) or 'view' "
                           "(view-only while you are connected).") from None
    role = member_role(raw_role) if kind is LinkKind.INVITE else Role.VIEWER
    policy(db, settings, machine)
    secret, now = secrets.token_urlsafe(24), utcnow()
    expires = now + timedelta(hours=settings.sharing_invite_hours) \
        if kind is LinkKind.INVITE else None
    link = ShareLink(machine_id=machine.id, kind=kind.value, role=role.value,
                     secret_hash=token_digest(secret), created_at=now, expires_at=expires)
    db.add(link)
    db.flush()
    event(db, machine, f"{kind.value} link #{link.id} ({role.value}) made by {owner.username}",
          actor=owner.username, action="sharing.link")
    return NewLink(secret, link)


def links(db: Session, machine: Machine) -> list[ShareLink]:
    """Return the machine's links that still work (not revoked, used or expired), newest
    first. Raises SQLAlchemy errors only."""
    now = utcnow()
    rows = db.scalars(select(ShareLink).where(ShareLink.machine_id == machine.id,
                                              ShareLink.kind != LinkKind.SUPPORT.value,
                                              ShareLink.revoked_at.is_(None),
                                              ShareLink.used_at.is_(None))
                      .order_by(ShareLink.id.desc()))
    return [row for row in rows if row.expires_at is None or row.expires_at > now]


def revoke_link(db: Session, owner: User, machine_id: str, link_id: int) -> None:
    """Revoke a link; the connections opened through it end within a second. Raises NotFound
    (machine or link), Forbidden (not the owner)."""
    machine = owned(db, owner, machine_id)
    link = db.scalar(select(ShareLink).where(ShareLink.id == link_id,
                                             ShareLink.machine_id == machine.id))
    if link is None:
        raise NotFound("There is no such link on this machine.")
    link.revoked_at = utcnow()
    end_connections(db, DesktopConnection.link_id == link.id, machine_id=machine.id,
                    reason=f"link revoked by {owner.username}")
    event(db, machine, f"{link.kind} link #{link.id} revoked by {owner.username}",
          actor=owner.username, action="sharing.revoke")


def find_link(db: Session, secret: str, now: datetime | None = None) -> ShareLink:
    """Return the working link with ``secret``. Raises NotFound (unknown, revoked, used,
    expired)."""
    now = now or utcnow()
    link = db.scalar(select(ShareLink).where(ShareLink.secret_hash == token_digest(secret)))
    if link is None or link.revoked_at is not None or link.used_at is not None or (
            link.expires_at is not None and link.expires_at <= now):
        raise NotFound(NO_SUCH_LINK)
    return link


def accept_invitation(db: Session, settings: Settings, user: User, secret: str) -> Machine:
    """Spend an invitation link once: ``user`` becomes a member with its role (one conditional
    UPDATE decides the one winner). Returns the machine. Raises NotFound (not a working
    invitation, or the machine is gone), InvalidInput (the owner opening their own link)."""
    now = utcnow()
    link = find_link(db, secret, now)
    if link.kind != LinkKind.INVITE.value:
        raise NotFound(NO_SUCH_LINK)
    machine = db.get(Machine, link.machine_id)
    if machine is None or machine.state == State.DELETED.value:
        raise NotFound(NO_SUCH_LINK)
    if machine.user_id == user.id:
        raise InvalidInput("This is your own machine's invitation link: send it to the person "
                           "you want to invite; it works once.")
    spent = db.execute(update(ShareLink).where(ShareLink.id == link.id,
                                               ShareLink.used_at.is_(None),
                                               ShareLink.revoked_at.is_(None))
                       .values(used_at=now, used_by_id=user.id))
    if getattr(spent, "rowcount", 0) != 1:
        raise NotFound(NO_SUCH_LINK)
    owner = db.get(User, machine.user_id)
    assert owner is not None
    add_member(db, settings, machine, user, Role(link.role), by=owner)
    event(db, machine, f"invitation link #{link.id} used by {user.username}",
          actor=user.username, action="sharing.join")
    return machine


def view_link(db: Session, secret: str) -> tuple[Machine, ShareLink]:
    """Return the machine and the working view-only link ``secret``. Raises NotFound."""
    link = find_link(db, secret)
    machine = db.get(Machine, link.machine_id)
    if link.kind != LinkKind.VIEW.value or machine is None:
        raise NotFound(NO_SUCH_LINK)
    return machine, link


def issue_link_token(db: Session, settings: Settings, provider: Provider, user: User,
                     secret: str, *, request_host: str = "") -> DesktopAccess:
    """Issue a view-only desktop token through a view link, only while the owner is connected.
    Raises NotFound (not a working link), Conflict (the owner is not connected, or the machine
    is not ready) or MachineGone."""
    machine, link = view_link(db, secret)
    if not owner_connected(db, machine):
        raise Conflict(OWNER_AWAY, f"view link #{link.id} of {machine.id}: owner not connected")
    return _token(db, settings, provider, user, machine, Role.VIEWER, link.id, request_host)


def request_support(db: Session, settings: Settings, admin: User,
                    machine_id: str) -> ShareLink:
    """An administrator asks the owner for access to the desktop (when emergency access is
    off); the owner is e-mailed. Returns the pending request (an earlier one still pending is
    returned as it is). Raises Forbidden (not an administrator), NotFound (no such machine),
    Conflict (their own machine, or a member already)."""
    if not admin.is_admin:
        raise Forbidden("Only administrators ask for support access; ask the owner to share "
                        "the desktop with you.")
    machine = db.get(Machine, machine_id)
    if machine is None or machine.state == State.DELETED.value:
        raise NotFound("There is no such machine. It may have been deleted.")
    if machine.user_id == admin.id or role_of(db, admin, machine, emergency=False):
        raise Conflict("You have access to this desktop already.")
    pending = [r for r, who in support_requests(db, machine) if who.id == admin.id]
    if pending:
        return pending[0]
    now = utcnow()
    row = ShareLink(machine_id=machine.id, kind=LinkKind.SUPPORT.value, role=Role.USER.value,
                    secret_hash=token_digest(secrets.token_urlsafe(24)), created_at=now,
                    expires_at=now + timedelta(hours=settings.sharing_invite_hours),
                    used_by_id=admin.id)
    db.add(row)
    db.flush()
    event(db, machine, f"administrator {admin.username} asks for support access",
          actor=admin.username, action="sharing.support", admin=True)
    owner = db.get(User, machine.user_id)
    assert owner is not None
    name = machine.name or machine.environment_name
    queue(db, key=f"support:{row.id}", kind="support_request", user=owner,
          machine_id=machine.id,
          subject=f"An administrator asks to join your desktop: {name}",
          body=(f"{admin.display_name or admin.username} ({admin.username}), an administrator, "
                f"asks for access to your desktop \"{name}\" to help you.\n\nAccept or refuse "
                f"in the Share dialog of its desktop page: "
                f"{machine_url(settings, machine.id)}/desktop\n"), now=now)
    return row


def support_requests(db: Session, machine: Machine) -> list[tuple[ShareLink, User]]:
    """Return the machine's pending support requests and who asks, oldest first. Raises
    SQLAlchemy errors only."""
    now = utcnow()
    rows = db.execute(select(ShareLink, User).join(User, User.id == ShareLink.used_by_id)
                      .where(ShareLink.machine_id == machine.id,
                             ShareLink.kind == LinkKind.SUPPORT.value,
                             ShareLink.used_at.is_(None), ShareLink.revoked_at.is_(None))
                      .order_by(ShareLink.id)).all()
    return [(row, who) for row, who in rows
            if row.expires_at is None or row.expires_at > now]


def answer_support(db: Session, settings: Settings, owner: User, machine_id: str,
                   request_id: int, *, accept: bool) -> None:
    """The owner accepts (the administrator becomes a member, role user) or refuses a support
    request. Raises NotFound (machine or pending request), Forbidden (not the owner)."""
    machine = owned(db, owner, machine_id)
    found = [(row, who) for row, who in support_requests(db, machine) if row.id == request_id]
    if not found:
        raise NotFound("There is no such pending support request on this machine.")
    row, admin = found[0]
    if accept:
        row.used_at = utcnow()
        add_member(db, settings, machine, admin, Role.USER, by=owner)
    else:
        row.revoked_at = utcnow()
    verb = "accepted" if accept else "refused"
    event(db, machine, f"support access for {admin.username} {verb} by {owner.username}",
          actor=owner.username, action="sharing.support")


@dataclass(frozen=True)
class Suggestions:
    """The machine's experiment (its visit, "" when none) and its members with an account
    here who are neither the owner nor members yet."""

    experiment: str
    users: list[User]


def suggestions(db: Session, experiments: ExperimentBackend, owner: User,
                machine_id: str) -> Suggestions:
    """Return whom the owner might share with: the other members of the machine's experiment
    (from ICAT, or the embedded catalogue). An unreachable catalogue suggests nobody. Raises
    NotFound, Forbidden (not the owner)."""
    machine = owned(db, owner, machine_id)
    if machine.experiment_id is None:
        return Suggestions("", [])
    try:
        info = experiments.get(machine.experiment_id)
    except (ExperimentsUnavailable, NotFound) as error:
        log.warning("machine %s: no sharing suggestions: %s", machine.id, error.log_message)
        return Suggestions("", [])
    names = {member.name for member in info.members}
    taken = select(MachineMember.user_id).where(MachineMember.machine_id == machine.id)
    users = db.scalars(select(User).where(User.username.in_(names),
                                          User.id != machine.user_id, User.id.not_in(taken))
                       .order_by(User.username))
    return Suggestions(info.visit_id or info.name, list(users))
