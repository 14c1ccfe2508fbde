"""Shared desktops, the proxy side: the registry of open desktop connections.

websockify relays each connection in a forked process of its own, and the portal's web
processes are other processes again (possibly on other hosts), so the registry is the
``desktop_connections`` table, the one thing all of them share. The proxy process of a
connection:

* after the one-time token is spent, reads the token's role, user and link
  (:func:`token_grant`) and records the connection (:func:`open_connection`, a "joined" event);
* about every :data:`CHECK_EVERY` seconds reads the connection's row (:func:`check`), which the
  web process changes: ``role`` for a role change or the owner away, ``ended`` for a
  revocation, which the proxy applies at once (drop input, or close the connection);
* when it closes, records it (:func:`close_connection`, a "left" event) and, for the owner's
  last connection, applies the machine's owner-away policy to the others.

A row read twice a second per open desktop is a primary-key look-up; it is what keeps a
revocation under a second without a channel from the web process to each proxy process.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import Engine, delete, func, select, update
from sqlalchemy.orm import Session

from daaas.portal.access.connection import TokenStore
from daaas.portal.audit.service import record
from daaas.portal.auth.models import User
from daaas.portal.db import utcnow
from daaas.portal.machines.models import AccessToken, Machine, MachineEvent
from daaas.portal.machines.secrets import token_digest
from daaas.portal.sharing.models import DesktopConnection, OwnerAway, Role, SharePolicy

#: How often a connection's proxy process reads its row (seconds).
CHECK_EVERY = 0.25
#: How often it also marks the row as still open (``seen_at``).
TOUCH_EVERY = 10.0
#: Closed connections are kept this long (then removed when the machine gets a new one).
KEEP_CLOSED = timedelta(days=1)


@dataclass(frozen=True)
class Grant:
    """Who spent a desktop token, with which role, through which link (if any)."""

    role: Role
    user_id: int
    username: str
    link_id: int | None = None


@contextmanager
def session(store: TokenStore) -> Iterator[Session]:
    """Yield a session in a transaction (committed at the end, rolled back on error)."""
    with (Session(store) if isinstance(store, Engine) else store()) as db, db.begin():
        yield db


def token_grant(store: TokenStore, token: str) -> Grant | None:
    """Return the role, user and link of a (spent) desktop token, None if unknown. Raises
    SQLAlchemy errors only."""
    with session(store) as db:
        row = db.execute(select(AccessToken.role, AccessToken.user_id, AccessToken.link_id,
                                User.username)
                         .join(User, User.id == AccessToken.user_id)
                         .where(AccessToken.secret_hash == token_digest(token))).first()
    if row is None:
        return None
    return Grant(Role(row.role), row.user_id, row.username, row.link_id)


def _event(db: Session, machine: Machine, message: str, action: str, actor: str) -> None:
    db.add(MachineEvent(machine_id=machine.id, from_state=machine.state,
                        to_state=machine.state, message=message, at=utcnow()))
    record(db, action, actor=actor, target=f"machine {machine.id}", detail=message)


def shared(db: Session, machine: Machine, user_id: int) -> bool:
    """True when a join or leave of ``user_id`` is worth an event: someone else's, or the
    owner's on a machine that was ever shared (the owner alone on their desktop is not news).
    Raises SQLAlchemy errors only."""
    return user_id != machine.user_id or db.get(SharePolicy, machine.id) is not None


def open_connection(store: TokenStore, machine_id: str, grant: Grant) -> int:
    """Record a new desktop connection and its "joined" event; the owner's return gives the
    others back the role their token had. Returns the connection's id. Raises SQLAlchemy
    errors only."""
    with session(store) as db:
        machine = db.get(Machine, machine_id)
        assert machine is not None, "the token's machine exists"
        row = DesktopConnection(machine_id=machine_id, user_id=grant.user_id,
                                link_id=grant.link_id, granted_role=grant.role.value,
                                role=grant.role.value, ended="", opened_at=utcnow(),
                                seen_at=utcnow())
        db.add(row)
        db.execute(delete(DesktopConnection).where(
            DesktopConnection.machine_id == machine_id,
            DesktopConnection.closed_at < utcnow() - KEEP_CLOSED))
        via = f" through link #{grant.link_id}" if grant.link_id else ""
        if shared(db, machine, grant.user_id):
            _event(db, machine,
                   f"{grant.username} joined the desktop as {grant.role.value}{via}",
                   "desktop.join", grant.username)
        if grant.user_id == machine.user_id:
            db.execute(update(DesktopConnection).where(
                DesktopConnection.machine_id == machine_id,
                DesktopConnection.closed_at.is_(None),
                DesktopConnection.granted_role != Role.OWNER.value,
                DesktopConnection.role != DesktopConnection.granted_role)
                .values(role=DesktopConnection.granted_role))
        db.flush()
        return row.id


def check(store: TokenStore, connection_id: int, *, touch: bool = False) -> tuple[Role, str]:
    """Return the connection's current role and why it was ended ("" while it may go on);
    with ``touch`` also mark it as still open. Raises SQLAlchemy errors only."""
    with session(store) as db:
        if touch:
            db.execute(update(DesktopConnection).where(DesktopConnection.id == connection_id)
                       .values(seen_at=utcnow()))
        row = db.execute(select(DesktopConnection.role, DesktopConnection.ended)
                         .where(DesktopConnection.id == connection_id)).first()
    if row is None:
        return Role.VIEWER, "the connection's record is gone"
    return Role(row.role), row.ended


def close_connection(store: TokenStore, connection_id: int) -> None:
    """Record that the connection closed (a "left" event); when it was the owner's last, apply
    the machine's owner-away policy to the others: view-only links always end, the members
    stay, become viewers or are disconnected. Raises SQLAlchemy errors only."""
    with session(store) as db:
        row = db.get(DesktopConnection, connection_id)
        if row is None or row.closed_at is not None:
            return
        row.closed_at = utcnow()
        machine = db.get(Machine, row.machine_id)
        user = db.get(User, row.user_id)
        assert machine is not None and user is not None
        how = f" ({row.ended})" if row.ended else ""
        if shared(db, machine, user.id):
            _event(db, machine, f"{user.username} left the desktop{how}", "desktop.leave",
                   user.username)
        if row.user_id == machine.user_id:
            db.flush()
            owner_left(db, machine)


def owner_left(db: Session, machine: Machine) -> None:
    """Apply the owner-away policy if the owner has no other open connection. Raises
    SQLAlchemy errors only."""
    still = db.scalar(select(func.count(DesktopConnection.id)).where(
        DesktopConnection.machine_id == machine.id, DesktopConnection.closed_at.is_(None),
        DesktopConnection.user_id == machine.user_id))
    if still:
        return
    others = [DesktopConnection.machine_id == machine.id, DesktopConnection.closed_at.is_(None),
              DesktopConnection.ended == "", DesktopConnection.granted_role != Role.OWNER.value]
    db.execute(update(DesktopConnection).where(*others, DesktopConnection.link_id.is_not(None))
               .values(ended="the owner left (view-only link)"))
    found = db.get(SharePolicy, machine.id)
    away = OwnerAway(found.owner_away) if found else OwnerAway.STAY
    if away is OwnerAway.DISCONNECT:
        db.execute(update(DesktopConnection).where(*others).values(ended="the owner left"))
    elif away is OwnerAway.VIEW_ONLY:
        db.execute(update(DesktopConnection).where(*others)
                   .values(role=Role.VIEWER.value))
    if away is not OwnerAway.STAY:
        _event(db, machine, f"the owner left: the others {away.value.replace('_', ' ')}",
               "sharing.owner_away", "proxy")
