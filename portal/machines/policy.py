"""What the lifetime policy would do now, without doing it: `daaas machines expire --dry-run`
and the administrators' Extensions page. The reconciler's warning, idle-stop and expiry phases
take the same decisions (the same functions: :func:`~daaas.portal.machines.lifetime.warning_due`,
:func:`~daaas.portal.machines.lifetime.idle_since`)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session, joinedload

from daaas.portal.config import Settings, parse_hours_list
from daaas.portal.machines.activity import MachineActivity, busy_until
from daaas.portal.machines.lifetime import (
    hours_text,
    idle_since,
    maybe_connected,
    warning_due,
)
from daaas.portal.machines.models import Machine
from daaas.portal.machines.notices import expiry_warning_key
from daaas.portal.machines.states import AT_PROVIDER, State
from daaas.portal.notifications.models import Notification


@dataclass(frozen=True)
class Planned:
    """One thing the policy would do to one machine now."""

    machine: Machine
    action: str  # "delete", "warn" or "stop"
    detail: str


def policy_plan(db: Session, settings: Settings, now: datetime,
                stop_idle: bool = True) -> list[Planned]:
    """Return what the policy would do now, machine by machine: deletions of machines past
    their end, warnings due and not yet queued, idle machines to stop (when ``stop_idle`` and
    the ``idle_stop`` setting). Reads only; raises nothing beyond database errors."""
    live = [s.value for s in AT_PROVIDER]
    thresholds = parse_hours_list(settings.expiry_warning_hours)
    horizon = now + timedelta(hours=max(thresholds, default=0))
    machines = list(db.scalars(select(Machine).options(joinedload(Machine.user)).where(
        Machine.state.in_(live), Machine.expires_at <= horizon).order_by(Machine.expires_at)))
    queued = set(db.scalars(select(Notification.key).where(
        Notification.kind == "expiry_warning",
        Notification.machine_id.in_([m.id for m in machines]))))
    plan: list[Planned] = []
    for machine in machines:
        left = machine.expires_at - now
        if left <= timedelta(0):
            plan.append(Planned(machine, "delete", f"its end passed {hours_text(-left)} ago"))
            continue
        hours = warning_due(left, thresholds)
        if hours is not None and expiry_warning_key(machine.id, hours,
                                                    machine.expires_at) not in queued:
            plan.append(Planned(machine, "warn", f"{hours_text(left)} left ({hours:g} h "
                                                 "warning)"))
    if stop_idle and settings.idle_stop:
        for idle in idle_machines(db, now):
            if idle.stop_at <= now and not maybe_connected(idle.machine.desktop_seen_at, now):
                plan.append(Planned(idle.machine, "stop", f"idle since {idle.since:%d %b %H:%M} "
                                    f"UTC (stopped after {idle.minutes} min)"))
    return plan


@dataclass(frozen=True)
class Idle:
    """A ready machine and since when it is idle (no desktop connection, not kept running,
    no active agent report); ``stop_at`` is when the idle stop takes it (an unfinished HPC job
    launched from it still holds it off, which the reconciler asks the cluster about)."""

    machine: Machine
    since: datetime
    stop_at: datetime
    minutes: int
    keep_running_until: datetime | None


def idle_machines(db: Session, now: datetime, within: timedelta | None = None) -> list[Idle]:
    """Return the ready machines with an idle timeout, longest idle first, owners loaded;
    with ``within``, only those the idle stop takes before ``now + within``. Reads only;
    raises nothing beyond database errors."""
    found: list[Idle] = []
    for machine, keep, active in db.execute(
            select(Machine, MachineActivity.keep_running_until, MachineActivity.vm_active_at)
            .outerjoin(MachineActivity).options(joinedload(Machine.user))
            .where(Machine.state == State.READY.value)):
        minutes = machine.environment.limits.idle_timeout_minutes
        if not minutes:
            continue
        since = idle_since(machine.state_changed_at, machine.desktop_seen_at,
                           busy_until(keep, active))
        stop_at = since + timedelta(minutes=minutes)
        if within is None or stop_at <= now + within:
            found.append(Idle(machine, min(since, now), stop_at, minutes,
                              keep if keep is not None and keep > now else None))
    return sorted(found, key=lambda idle: idle.stop_at)
