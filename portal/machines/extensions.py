"""Extending a machine's life: at once within the policy, or by an administrator's approval.

Every extension (granted, asked for, approved, refused) is a machine event (from and to its
current state: not a state change). A decision is queued for e-mail in the same transaction
(:mod:`daaas.portal.machines.notices`).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import ForeignKey, Integer, String, Text, select
from sqlalchemy.orm import Mapped, Session, joinedload, mapped_column, relationship

from daaas.portal.audit.service import record
from daaas.portal.auth.models import User
from daaas.portal.config import Settings
from daaas.portal.db import Base, UTCDateTime, utcnow
from daaas.portal.errors import Conflict, Forbidden, NotFound
from daaas.portal.machines import notices
from daaas.portal.machines.lifetime import (
    LifetimePolicy,
    extension_target,
    hours_text,
    latest_end,
    policy_for,
)
from daaas.portal.machines.models import Machine, MachineEvent
from daaas.portal.machines.service import audit_machine
from daaas.portal.machines.states import AT_PROVIDER, State

PENDING, APPROVED, REFUSED = "pending", "approved", "refused"
#: The longest reason an administrator may give for a decision.
MAX_REASON = 500


class ExtensionRequest(Base):
    """An owner's request for a longer life that needs an administrator's approval."""

    __tablename__ = "extension_requests"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    machine_id: Mapped[str] = mapped_column(ForeignKey("machines.id", ondelete="CASCADE"),
                                            index=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    status: Mapped[str] = mapped_column(String(20), default=PENDING, index=True)
    asked_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at_then: Mapped[datetime] = mapped_column(UTCDateTime)
    decided_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    decided_by: Mapped[str] = mapped_column(String(200), default="")
    reason: Mapped[str] = mapped_column(Text, default="")

    machine: Mapped[Machine] = relationship()
    user: Mapped[User] = relationship()


@dataclass(frozen=True)
class Extended:
    """What an extension request got: the machine, and the pending request when it waits for
    an administrator (None when it was extended at once)."""

    machine: Machine
    pending: ExtensionRequest | None = None


def machine_policy(machine: Machine) -> LifetimePolicy:
    """Return the lifetime policy of ``machine`` (its snapshot, flavor and owner's groups).
    Raises nothing."""
    return policy_for(machine.environment, machine.flavor, machine.user.groups or [])


def pending_request(db: Session, machine_id: str) -> ExtensionRequest | None:
    """Return the machine's pending extension request, or None. Raises nothing beyond
    database errors."""
    return db.scalar(select(ExtensionRequest).where(ExtensionRequest.machine_id == machine_id,
                                                    ExtensionRequest.status == PENDING))


def _event(db: Session, machine: Machine, message: str, now: datetime) -> None:
    db.add(MachineEvent(machine_id=machine.id, from_state=machine.state,
                        to_state=machine.state, message=message, at=now))


def extend(db: Session, user: User, machine: Machine, now: datetime | None = None) -> Extended:
    """Extend ``machine`` (already checked to be ``user``'s or an admin's, locked) by one step
    of its policy, or record a request for an administrator when the policy says so; a
    pending request is returned again rather than doubled.

    Raises Forbidden when its environment allows no extension or someone other than the
    owner (an admin) asks, and Conflict when it is not running (deleting, failed …) or
    already ends at the latest its policy allows.
    """
    now = now or utcnow()
    if machine.user_id != user.id:
        raise Forbidden("Only its owner can ask to extend a machine's life.")
    if State(machine.state) not in AT_PROVIDER or machine.state == State.DELETING.value:
        raise Conflict(f"This machine is {machine.state}; only a machine that is running, "
                       "starting or stopped can be extended.")
    policy = machine_policy(machine)
    if policy.extension == "none":
        raise Forbidden(f"Machines of {machine.environment.title} cannot be extended: they "
                        f"live {hours_text(policy.initial)}. Save your work to ~/storage and "
                        "launch a new machine when this one ends.")
    target = extension_target(machine.created_at, machine.expires_at, policy)
    if target is None:
        raise Conflict(f"This machine already lives as long as its policy allows "
                       f"({hours_text(policy.maximum)} from its launch, until "
                       f"{latest_end(machine.created_at, policy):%d %b %H:%M} UTC). Save your "
                       "work to ~/storage and launch a new machine when it ends.")
    if policy.extension == "approval":
        waiting = pending_request(db, machine.id)
        if waiting is not None:
            return Extended(machine, waiting)
        waiting = ExtensionRequest(machine_id=machine.id, user_id=user.id, status=PENDING,
                                   asked_at=now, expires_at_then=machine.expires_at)
        db.add(waiting)
        _event(db, machine, f"{user.username} asked to extend its life by "
               f"{hours_text(target - machine.expires_at)}; waiting for an administrator", now)
        db.flush()
        audit_machine(db, user, "machine.extension_request", machine, f"request {waiting.id}")
        return Extended(machine, waiting)
    _event(db, machine, f"life extended by {hours_text(target - machine.expires_at)} to "
           f"{target:%d %b %H:%M} UTC by {user.username}", now)
    audit_machine(db, user, "machine.extend", machine, f"until {target:%Y-%m-%d %H:%M} UTC")
    machine.expires_at = target
    return Extended(machine)


def list_pending(db: Session) -> list[ExtensionRequest]:
    """Return every pending extension request, oldest first, with machine and owner loaded.
    Raises nothing beyond database errors."""
    return list(db.scalars(select(ExtensionRequest).where(ExtensionRequest.status == PENDING)
                           .options(joinedload(ExtensionRequest.machine),
                                    joinedload(ExtensionRequest.user))
                           .order_by(ExtensionRequest.asked_at, ExtensionRequest.id)))


#: The most machines the "ending soon" list shows.
ENDING_SOON_LIMIT = 200


def ending_soon(db: Session, before: datetime) -> list[Machine]:
    """Return the machines that are still at the provider and end before ``before``, soonest
    first (at most ENDING_SOON_LIMIT), owners loaded; read through the expiry's index. Raises
    nothing beyond database errors."""
    return list(db.scalars(select(Machine).options(joinedload(Machine.user)).where(
        Machine.expires_at <= before, Machine.state.in_([s.value for s in AT_PROVIDER]))
        .order_by(Machine.expires_at).limit(ENDING_SOON_LIMIT)))


def decide(db: Session, settings: Settings, admin: User, request_id: int, approve: bool,
           reason: str = "", now: datetime | None = None) -> ExtensionRequest:
    """Approve or refuse a pending extension request as ``admin``; the machine moves by one
    step (at most to its latest end), an event is recorded and the owner's e-mail queued.
    An approval of a machine that can no longer be extended (its end passed the latest
    meanwhile, or it was deleted) is recorded as refused, saying why.

    Raises Forbidden for a non-admin, NotFound for an unknown request, Conflict for one
    decided already.
    """
    now = now or utcnow()
    if not admin.is_admin:
        raise Forbidden("Only administrators decide extension requests.")
    found = db.scalar(select(ExtensionRequest).where(ExtensionRequest.id == request_id)
                      .with_for_update())
    if found is None:
        raise NotFound("There is no such extension request.")
    if found.status != PENDING:
        raise Conflict(f"This request was {found.status} already, by {found.decided_by}.")
    machine = db.scalar(select(Machine).where(Machine.id == found.machine_id).with_for_update())
    assert machine is not None  # the request's foreign key
    reason = reason.strip()[:MAX_REASON]
    target = extension_target(machine.created_at, machine.expires_at, machine_policy(machine))
    alive = State(machine.state) in AT_PROVIDER and machine.state != State.DELETING.value
    if approve and (target is None or not alive):
        approve = False
        reason = reason or "the machine can no longer be extended"
    found.status = APPROVED if approve else REFUSED
    found.decided_at, found.decided_by, found.reason = now, admin.username, reason
    if approve and target is not None:
        step = hours_text(target - machine.expires_at)
        machine.expires_at = target
        _event(db, machine, f"life extended by {step} to {target:%d %b %H:%M} UTC, approved "
               f"by {admin.username}", now)
    else:
        _event(db, machine, f"extension refused by {admin.username}"
               + (f": {reason}" if reason else ""), now)
    notices.extension_decided(db, settings, machine, found.id, approve, reason, now)
    record(db, "machine.extension_approved" if approve else "machine.extension_refused",
           actor=admin.username, target=f"machine {machine.id}", admin=True,
           detail=f"request {found.id}" + (f"; {reason}" if reason else ""))
    return found
