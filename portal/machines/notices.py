"""What the portal tells a machine's owner by e-mail, queued in the outbox
(:mod:`daaas.portal.notifications.service`) in the transaction that decides the event.

Each kind has one key per event, so deciding it again (another cycle, another worker) adds
nothing: an expiry warning per (machine, threshold, end time) — an extension moves the end, so
the warnings come again before the new end —, an expiry per machine, a decision per extension
request, a "ready" per start of the machine.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.orm import Session

from daaas.portal.config import Settings
from daaas.portal.machines.homes import KeptHome, restored_name
from daaas.portal.machines.lifetime import hours_text
from daaas.portal.machines.models import Machine
from daaas.portal.notifications.models import Notification
from daaas.portal.notifications.service import machine_url, portal_url, queue


def _when(at: datetime) -> str:
    return at.strftime("%d %b %Y, %H:%M UTC")


def _hours_key(hours: float) -> str:
    return f"{hours:g}h"


def expiry_warning_key(machine_id: str, hours: float, expires_at: datetime) -> str:
    """Return the outbox key of the warning ``hours`` before ``expires_at``. Raises nothing."""
    return f"expiry-warning:{machine_id}:{_hours_key(hours)}:{expires_at.isoformat()}"


def expiry_warning(db: Session, settings: Settings, machine: Machine, hours: float,
                   now: datetime) -> Notification | None:
    """Queue the warning that ``machine`` expires within ``hours``; None if queued before for
    this threshold and end time. Raises what :func:`queue` raises."""
    left = hours_text(machine.expires_at - now)
    return queue(
        db, key=expiry_warning_key(machine.id, hours, machine.expires_at),
        kind="expiry_warning", user=machine.user, machine_id=machine.id, now=now,
        subject=f"Your machine '{machine.name}' will be deleted in {left}",
        body=f"Hello {machine.user.display_name or machine.user.username},\n\n"
             f"your machine '{machine.name}' ({machine.environment.title}) reaches the end of "
             f"its lifetime on {_when(machine.expires_at)} and will then be deleted.\n\n"
             "Files in your storage (~/storage on the desktop) are kept; anything saved "
             "elsewhere on the machine is lost. Copy what you need to your storage, or extend "
             "the machine's life from its page if its environment allows:\n\n"
             f"    {machine_url(settings, machine.id)}\n")


def expired(db: Session, settings: Settings, machine: Machine, maximum: str,
            now: datetime, kept: KeptHome | None = None) -> Notification | None:
    """Queue the news that ``machine`` was deleted at the end of its lifetime (``maximum`` in
    words); with ``kept``, where its home folder's files are and until when. Raises what
    :func:`queue` raises."""
    home = ("" if kept is None else
            "The files of the machine's home folder (everything outside ~/storage) are kept "
            f"until {_when(kept.purge_after)}. To have them back, ask the facility's support "
            "before then: an administrator restores them into your storage, as the folder "
            f"~/storage/{restored_name(machine, kept.decided_at)} (also in My Data).\n\n")
    return queue(
        db, key=f"expired:{machine.id}", kind="expired", user=machine.user,
        machine_id=machine.id, now=now,
        subject=f"Your machine '{machine.name}' has been deleted (lifetime ended)",
        body=f"Hello {machine.user.display_name or machine.user.username},\n\n"
             f"your machine '{machine.name}' ({machine.environment.title}) reached the end of "
             f"its lifetime ({maximum}) on {_when(machine.expires_at)} and is being deleted.\n\n"
             "Your storage is untouched: its files are in My Data and on any new machine "
             f"under ~/storage.\n\n{home}Launch a new machine from the Analysis page:\n\n"
             f"    {portal_url(settings)}/analysis\n\n"
             f"The machine's history: {machine_url(settings, machine.id)}\n")


def extension_decided(db: Session, settings: Settings, machine: Machine, request_id: int,
                      approved: bool, reason: str, now: datetime) -> Notification | None:
    """Queue the outcome of an extension request. Raises what :func:`queue` raises."""
    outcome = "approved" if approved else "refused"
    detail = (f"It now ends on {_when(machine.expires_at)}." if approved else
              f"It still ends on {_when(machine.expires_at)}.")
    because = f"\n\nThe administrator's reason: {reason}" if reason else ""
    return queue(
        db, key=f"extension:{request_id}", kind=f"extension_{outcome}", user=machine.user,
        machine_id=machine.id, now=now,
        subject=f"Extension of '{machine.name}' {outcome}",
        body=f"Hello {machine.user.display_name or machine.user.username},\n\n"
             f"your request to extend the life of '{machine.name}' was {outcome}. {detail}"
             f"{because}\n\n    {machine_url(settings, machine.id)}\n")


def machine_ready(db: Session, settings: Settings, machine: Machine,
                  now: datetime) -> Notification | None:
    """Queue the news that ``machine`` is ready (sent when its owner is not on a portal page
    at the time), once per time it became ready. Raises what :func:`queue` raises."""
    return queue(
        db, key=f"ready:{machine.id}:{machine.state_changed_at.isoformat()}", kind="ready",
        user=machine.user,
        machine_id=machine.id, now=now,
        subject=f"Your machine '{machine.name}' is ready",
        body=f"Hello {machine.user.display_name or machine.user.username},\n\n"
             f"your machine '{machine.name}' ({machine.environment.title}) is ready. Open its "
             f"desktop from its page:\n\n    {machine_url(settings, machine.id)}\n\n"
             f"It will be deleted on {_when(machine.expires_at)} unless its life is "
             "extended.\n")


def idle_stopped(db: Session, settings: Settings, machine: Machine, minutes: int,
                 since: datetime, now: datetime) -> Notification | None:
    """Queue the news that ``machine`` was stopped after ``minutes`` without a desktop
    connection (idle since ``since``). Raises what :func:`queue` raises."""
    return queue(
        db, key=f"idle:{machine.id}:{since.isoformat()}", kind="idle_stopped",
        user=machine.user, machine_id=machine.id, now=now,
        subject=f"Your machine '{machine.name}' was stopped (idle)",
        body=f"Hello {machine.user.display_name or machine.user.username},\n\n"
             f"your machine '{machine.name}' ({machine.environment.title}) had no desktop "
             f"connection for {minutes} minutes and was stopped to free its cores"
             f"{' and GPU' if machine.environment.gpu != 'none' else ''}. Its disk and your "
             "storage are kept: start it again from its page when you need it.\n\n"
             f"    {machine_url(settings, machine.id)}\n\n"
             f"It will still be deleted on {_when(machine.expires_at)} unless extended.\n")


def idle_warning_key(machine_id: str, since: datetime) -> str:
    """Return the outbox key of the warning before an idle stop of a machine idle since
    ``since`` (one per idle spell). Raises nothing."""
    return f"idle-warning:{machine_id}:{since.isoformat()}"


def idle_warning(db: Session, settings: Settings, machine: Machine, stop_at: datetime,
                 since: datetime, now: datetime) -> Notification | None:
    """Queue the warning that ``machine``, without a desktop connection since ``since``, will
    be stopped at ``stop_at``. Raises what :func:`queue` raises."""
    minutes = max(1, round((stop_at - now).total_seconds() / 60))
    return queue(
        db, key=idle_warning_key(machine.id, since), kind="idle_warning", user=machine.user,
        machine_id=machine.id, now=now,
        subject=f"Your machine '{machine.name}' will be stopped in {minutes} minutes (idle)",
        body=f"Hello {machine.user.display_name or machine.user.username},\n\n"
             f"your machine '{machine.name}' ({machine.environment.title}) has had no desktop "
             f"connection since {_when(since)}. It will be stopped at {_when(stop_at)} to free "
             "its resources; its disk and your storage are kept. Open its desktop to keep it "
             f"running:\n\n    {machine_url(settings, machine.id)}\n")
