"""Activity besides a desktop connection, which keeps a ready machine from being stopped as
idle: the owner's "keep running until" (bounded by the policy), the VM agent's periodic
report of CPU use and logged-in sessions, and (read by the reconciler from
:mod:`daaas.portal.hpc.activity`) an unfinished HPC job launched from the machine.

One row per machine in ``machine_activity`` (migration 0018), written only when one of those
signals changes, so the idle stop's read (:func:`activity_columns`) stays one query.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import Float, ForeignKey, Integer, String
from sqlalchemy.orm import Mapped, Session, mapped_column

from daaas.portal.auth.models import User
from daaas.portal.config import Settings
from daaas.portal.db import Base, UTCDateTime
from daaas.portal.errors import Conflict, Forbidden, InvalidInput
from daaas.portal.machines.models import Machine, MachineEvent
from daaas.portal.machines.states import State


class MachineActivity(Base):
    """What keeps one machine busy besides its desktop connections."""

    __tablename__ = "machine_activity"

    machine_id: Mapped[str] = mapped_column(ForeignKey("machines.id", ondelete="CASCADE"),
                                            primary_key=True)
    #: The owner asked to keep it running until then, whatever its connections.
    keep_running_until: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    #: The last agent report that showed activity (CPU above the threshold, a logged-in user).
    vm_active_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    #: The last agent report at all, and what it said.
    vm_reported_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    vm_cpu_percent: Mapped[float | None] = mapped_column(Float, nullable=True)
    vm_sessions: Mapped[int | None] = mapped_column(Integer, nullable=True)
    vm_detail: Mapped[str] = mapped_column(String(200), default="")


def activity_of(db: Session, machine_id: str) -> MachineActivity:
    """Return the machine's activity row, added (not yet flushed) when it has none. Raises
    nothing beyond database errors."""
    row = db.get(MachineActivity, machine_id)
    if row is None:
        row = MachineActivity(machine_id=machine_id, vm_detail="")
        db.add(row)
    return row


def hours_from(now: datetime, hours: float) -> datetime | None:
    """Return ``now`` plus ``hours`` to the minute, or None for 0 (no longer kept running).
    Raises nothing."""
    if hours <= 0:
        return None
    return (now + timedelta(hours=hours)).replace(second=0, microsecond=0)


def keep_running_limit(settings: Settings, machine: Machine, now: datetime) -> datetime | None:
    """Return the latest "keep running until" the policy allows for ``machine`` now: at most
    ``keep_running_max_hours`` ahead and never past its end; None when not offered (setting
    0, or the machine has ended). Raises nothing."""
    if settings.keep_running_max_hours <= 0:
        return None
    limit = min(now + timedelta(hours=settings.keep_running_max_hours), machine.expires_at)
    return limit if limit > now else None


def keep_running(db: Session, settings: Settings, user: User, machine: Machine,
                 until: datetime | None, now: datetime) -> MachineActivity:
    """Keep the ready ``machine`` (the caller's, locked) running until ``until`` whatever its
    desktop connections, or stop keeping it (``until`` None or not in the future); an event
    either way. Returns its activity row.

    Raises Forbidden for someone other than the owner or when the setting is 0, Conflict
    when the machine is not ready, InvalidInput for a time past what the policy allows.
    """
    if machine.user_id != user.id:
        raise Forbidden("Only its owner can keep a machine running.")
    if machine.state != State.READY.value:
        raise Conflict(f"This machine is {machine.state}; only a ready machine can be kept "
                       "running.")
    row = activity_of(db, machine.id)
    if until is None or until <= now:
        row.keep_running_until = None
        _event(db, machine, f"{user.username} no longer keeps it running; it is stopped "
               "after its idle time without a connection", now)
        return row
    limit = keep_running_limit(settings, machine, now)
    if limit is None:
        raise Forbidden("Keeping machines running without a connection is not offered here.")
    if until > limit + timedelta(minutes=1):
        raise InvalidInput(f"A machine can be kept running until {limit:%d %b %H:%M} UTC at "
                           f"the latest ({settings.keep_running_max_hours} hours ahead, and "
                           "never past its end). Choose an earlier time.",
                           f"keep running of {machine.id} until {until.isoformat()} refused")
    row.keep_running_until = min(until, limit)
    _event(db, machine, f"kept running until {row.keep_running_until:%d %b %H:%M} UTC by "
           f"{user.username} (not stopped as idle before then)", now)
    return row


def record_vm_activity(db: Session, settings: Settings, machine_id: str, cpu_percent: float,
                       sessions: int, detail: str, now: datetime) -> bool:
    """Record an agent's report (already authenticated) of CPU use and logged-in sessions;
    return whether it counts as activity (CPU above ``vm_idle_cpu_percent`` or a session).
    Raises nothing beyond database errors."""
    row = activity_of(db, machine_id)
    active = sessions > 0 or cpu_percent > settings.vm_idle_cpu_percent
    row.vm_reported_at, row.vm_cpu_percent, row.vm_sessions = now, cpu_percent, sessions
    row.vm_detail = detail[:200]
    if active:
        row.vm_active_at = now
    return active


def busy_until(keep_until: datetime | None, vm_active_at: datetime | None) -> datetime | None:
    """Return the latest moment these signals say the machine was (or will be) in use: the
    later of "keep running until" and the last active agent report. Raises nothing."""
    known = [at for at in (keep_until, vm_active_at) if at is not None]
    return max(known) if known else None


def _event(db: Session, machine: Machine, message: str, now: datetime) -> None:
    db.add(MachineEvent(machine_id=machine.id, from_state=machine.state,
                        to_state=machine.state, message=message, at=now))
