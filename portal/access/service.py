"""One-time desktop tokens: the portal issues them, the websockify proxy consumes them.

A token is 32 random bytes shown once to the browser; only its SHA-256 is stored, with where
the machine's VNC server listens (a host and port, or a Unix socket on the portal's host). The
desktop proxy (:mod:`daaas.portal.access.rfbproxy`) turns a token into that
:class:`DesktopTarget` exactly once, within ``access_token_ttl_seconds``, and only while the
machine is ready. The browser never receives the VNC password: the proxy derives it from the
portal's secret key (:func:`daaas.portal.machines.secrets.vnc_password`) and signs in to the
VNC server itself.

An administrator may open anyone's desktop, never silently: the machine gets an event naming
the administrator (:func:`record_admin_opening`), and the owner's desktop page shows a notice
(:func:`desktop_status` lists who else opened the desktop).
"""

from __future__ import annotations

import logging
import secrets
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import Row, delete, func, select, update
from sqlalchemy.orm import Session

from daaas.portal.access.connection import TokenStore, connection
from daaas.portal.access.urls import websocket_url
from daaas.portal.audit.service import record
from daaas.portal.auth.models import User
from daaas.portal.config import Settings
from daaas.portal.db import utcnow
from daaas.portal.errors import Conflict
from daaas.portal.machines.models import AccessToken, Machine, MachineEvent
from daaas.portal.machines.secrets import token_digest
from daaas.portal.machines.states import State
from daaas.portal.providers.base import Provider
from daaas.portal.sharing.access import Access, machine_access

log = logging.getLogger(__name__)
KEEP_USED_TOKENS = timedelta(days=1)
#: An administrator's further tokens within this time after an opening record no new event
#: (a reconnect is not a new opening); the owner's notice still shows the latest time.
ADMIN_EVENT_WINDOW = timedelta(minutes=10)
#: The machine states whose desktop will not come back: the page stops trying.
END_STATES = frozenset({State.ERROR, State.DELETING, State.DELETED})


@dataclass(frozen=True)
class DesktopAccess:
    """What the browser needs to open one desktop connection (the token is left out of repr).

    It holds no VNC password: the desktop proxy signs in to the VNC server itself.
    """

    token: str = field(repr=False)
    websocket_url: str = field(repr=False)
    expires_at: datetime


@dataclass(frozen=True)
class DesktopTarget:
    """Where a spent token leads: the machine and its VNC server.

    ``socket_path`` (a Unix socket on the portal's host) wins when set; otherwise the proxy
    connects to ``host:port``.
    """

    machine_id: str
    host: str
    port: int
    socket_path: str | None = None

    def describe(self) -> str:
        """Return where the VNC server listens, for log lines (``unix:/path`` or ``host:port``).

        Raises nothing.
        """
        if self.socket_path:
            return f"unix:{self.socket_path}"
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"


def not_ready_message(machine: Machine) -> str | None:
    """Return why the machine's desktop cannot be opened now, or None when it is ready.

    Raises nothing.
    """
    state = State(machine.state)
    if state is State.READY:
        return None
    if state in {State.REQUESTED, State.PROVISIONING, State.CONTEXTUALISING}:
        return (f"This machine is not ready yet ({state.value}). Its desktop opens once it is "
                "ready; the machine page shows how far it has got.")
    if state is State.ERROR:
        return (f"This machine failed: {machine.error_reason or 'no reason was recorded'}. "
                "Delete it and launch a new one from the Analysis page.")
    if state is State.STOPPED:
        return ("This machine is stopped (its disk is kept). Start it to open its desktop "
                "again.")
    if state is State.STOPPING:
        return "This machine is stopping. Once it has stopped you can start it again."
    if state in {State.DELETING, State.DELETED}:
        return ("This machine is being deleted or has been deleted. Launch a new one from the "
                "Analysis page.")
    return f"This machine is {state.value}, so its desktop cannot be opened."


def ready_machine(db: Session, user: User, machine_id: str, *,
                  emergency: bool = True) -> Access:
    """Return the machine (the user's, one shared with them or, for an admin, anyone's) and
    the user's role on it, if it is ready.

    ``emergency`` False: an administrator needs to be a member. Raises NotFound (not the user's
    machine nor shared with them) or Conflict (not ready, saying why).
    """
    found = machine_access(db, user, machine_id, emergency=emergency)
    machine = found.machine
    message = not_ready_message(machine)
    if message:
        raise Conflict(message, f"desktop access to {machine.id} refused: state {machine.state}")
    return found


def issue_desktop_token(db: Session, settings: Settings, provider: Provider, user: User,
                        machine_id: str, *, request_host: str = "") -> DesktopAccess:
    """Issue a fresh one-time token for the machine's desktop, with the user's role on it
    (owner, or a member's user or viewer: the proxy enforces it).

    Returns the raw token (shown only now), the websocket URL to open (token included) and the
    expiry; where the VNC server listens (host and port, or Unix socket) is stored with the
    token for the proxy. ``request_host`` (the host the browser used) helps build the URL when
    neither ``websockify_url`` nor ``public_url`` is configured. Raises NotFound, Conflict
    (machine not ready) or MachineGone (the provider lost it).
    """
    found = ready_machine(db, user, machine_id, emergency=settings.support_emergency_access)
    machine = found.machine
    target = provider.connection_target(machine.id)
    token, now = secrets.token_urlsafe(32), utcnow()
    expires_at = now + timedelta(seconds=settings.access_token_ttl_seconds)
    db.execute(delete(AccessToken).where(AccessToken.expires_at < now - KEEP_USED_TOKENS))
    if machine.user_id != user.id and found.is_owner:
        record_admin_opening(db, machine, user, now)
    db.add(AccessToken(machine_id=machine.id, user_id=user.id, secret_hash=token_digest(token),
                       host=target.host, port=target.vnc_port,
                       socket_path=target.vnc_socket, created_at=now, expires_at=expires_at,
                       role=found.role.value))
    db.flush()
    record(db, "desktop.open", actor=user.username, target=f"machine {machine.id}",
           detail=machine.name, admin=machine.user_id != user.id and found.is_owner)
    log.info("desktop token issued to %s for machine %s", user.username, machine.id)
    return DesktopAccess(token=token, websocket_url=websocket_url(settings, token, request_host),
                         expires_at=expires_at)


def admin_label(user: User) -> str:
    """Return how an administrator is named to a machine's owner: "Facility Admin (admin)", or
    the username alone when there is no display name. Raises nothing."""
    name = user.display_name.strip()
    return f"{name} ({user.username})" if name and name != user.username else user.username


def record_admin_opening(db: Session, machine: Machine, admin: User, now: datetime) -> bool:
    """Record on ``machine`` (not ``admin``'s) that ``admin`` opened its desktop at ``now``.

    The event keeps the machine's state (from = to) and names the administrator. A further
    token of the same administrator within :data:`ADMIN_EVENT_WINDOW` of an earlier one (a
    reconnect) records nothing. Call it before the new token is added. Returns whether an event
    was recorded. Raises SQLAlchemy errors only.
    """
    recent = db.scalar(select(AccessToken.id).where(
        AccessToken.machine_id == machine.id, AccessToken.user_id == admin.id,
        AccessToken.created_at > now - ADMIN_EVENT_WINDOW).limit(1))
    if recent is not None:
        return False
    db.add(MachineEvent(machine_id=machine.id, from_state=machine.state, to_state=machine.state,
                        message=f"desktop opened by administrator {admin_label(admin)}", at=now))
    log.warning("administrator %s opened the desktop of machine %s (owner id %s)",
                admin.username, machine.id, machine.user_id)
    return True


@dataclass(frozen=True)
class Opening:
    """Someone other than the owner opened the desktop (their latest token)."""

    who: str
    at: datetime


@dataclass(frozen=True)
class DesktopStatus:
    """What the desktop page needs between connections.

    ``message`` says why the desktop cannot be opened now (None when ready); ``can_start``: a
    stopped machine the provider can start; ``ended``: the desktop will not come back (failed,
    being deleted or deleted); ``openings``: administrators other than the viewer who opened
    this desktop within the last day, latest first.
    """

    state: str
    message: str | None
    can_start: bool
    ended: bool
    openings: list[Opening]


def desktop_status(db: Session, provider: Provider, user: User, machine_id: str) -> DesktopStatus:
    """Return the machine's :class:`DesktopStatus` as ``user`` (its owner, an admin or a
    member) sees it.

    Raises NotFound (not the user's machine nor shared with them).
    """
    machine = machine_access(db, user, machine_id).machine
    state = State(machine.state)
    since = utcnow() - KEEP_USED_TOKENS
    rows = db.execute(
        select(User, func.max(AccessToken.created_at).label("latest"))
        .join(AccessToken, AccessToken.user_id == User.id)
        .where(AccessToken.machine_id == machine.id, AccessToken.created_at > since,
               AccessToken.role == "owner", User.id != machine.user_id, User.id != user.id)
        .group_by(User.id).order_by(func.max(AccessToken.created_at).desc())).all()
    return DesktopStatus(state=state.value, message=not_ready_message(machine),
                         can_start=state is State.STOPPED and provider.supports_stop,
                         ended=state in END_STATES,
                         openings=[Opening(admin_label(row[0]), row[1]) for row in rows])


def record_desktop_seen(store: TokenStore, machine_id: str) -> None:
    """Record that the desktop proxy has a connection to ``machine_id`` now (what the idle
    stop reads). The proxy calls it when a connection starts, about once a minute while it
    lasts and when it ends: never per input event. Raises SQLAlchemy errors only when the
    database cannot be reached."""
    with connection(store) as conn:
        conn.execute(update(Machine).where(Machine.id == machine_id)
                     .values(desktop_seen_at=utcnow()))


def consume_token(store: TokenStore, token: str) -> DesktopTarget | None:
    """Spend ``token`` once; return its machine and VNC server, or None if refused.

    One conditional UPDATE marks the token used only if it is unused, unexpired and its machine
    is ready; of any number of concurrent callers exactly one sees rowcount 1 (SQLite serialises
    writers, PostgreSQL re-checks the WHERE after the row lock). Refusals are logged by machine,
    never with the token. ``store`` is an Engine or a sessionmaker. Raises SQLAlchemy errors
    only when the database cannot be reached.
    """
    digest, now = token_digest(token), utcnow()
    ready = select(Machine.id).where(Machine.state == State.READY.value)
    with connection(store) as conn:
        spent = conn.execute(update(AccessToken).where(
            AccessToken.secret_hash == digest, AccessToken.used_at.is_(None),
            AccessToken.expires_at > now, AccessToken.machine_id.in_(ready),
        ).values(used_at=now))
        row = conn.execute(select(AccessToken.host, AccessToken.port, AccessToken.socket_path,
                                  AccessToken.machine_id, AccessToken.used_at,
                                  AccessToken.expires_at)
                           .where(AccessToken.secret_hash == digest)).first()
    if spent.rowcount == 1 and row is not None:
        log.info("desktop token for machine %s accepted", row.machine_id)
        return DesktopTarget(machine_id=row.machine_id, host=row.host, port=row.port,
                             socket_path=row.socket_path)
    log.warning("desktop token refused: %s", _refusal(row, now))
    return None


def _refusal(row: Row[str, int, str | None, str, datetime | None, datetime] | None,
             now: datetime) -> str:
    if row is None:
        return "unknown token"
    if row.expires_at <= now:
        return f"expired token for machine {row.machine_id}"
    if row.used_at is not None:
        return f"token for machine {row.machine_id} already used"
    return f"machine {row.machine_id} is not ready"
