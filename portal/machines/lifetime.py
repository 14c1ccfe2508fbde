"""Lifetime policy: how long a machine lives, how it is extended, and when its owner is warned.

The policy of a machine comes from its environment's ``limits`` (the snapshot taken at launch),
with the environment's ``lifetime_overrides`` for the machine's flavor and its owner's groups
applied in order (:func:`policy_for`). A machine's ``expires_at`` is its launch plus the
initial lifetime; an extension moves it by the extension step, never past launch plus the
maximum (:func:`extension_target`). Pure functions: no database, no clock of their own.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from daaas.catalogue import Environment
from daaas.catalogue.model import Extension


@dataclass(frozen=True)
class LifetimePolicy:
    """A machine's lifetime rules, resolved: ``initial`` from launch, ``step`` per extension,
    ``maximum`` from launch in all, and how an extension is granted (``extension``)."""

    initial: timedelta
    step: timedelta
    maximum: timedelta
    extension: Extension


def policy_for(environment: Environment, flavor: str, groups: Iterable[str]) -> LifetimePolicy:
    """Return the lifetime policy of a machine of ``environment`` on ``flavor`` for a user in
    ``groups``: the environment's limits, then each override whose flavor and group (those it
    names) match, in the catalogue's order. The initial lifetime never exceeds the maximum.
    Raises nothing."""
    limits = environment.limits
    member = set(groups)
    initial, step = limits.initial_lifetime_hours, limits.extension_hours
    maximum, extension = limits.max_lifetime_hours, limits.extension
    for rule in limits.lifetime_overrides:
        if (rule.flavor is not None and rule.flavor != flavor) or (
                rule.group is not None and rule.group not in member):
            continue
        initial = rule.initial_lifetime_hours or initial
        step = rule.extension_hours or step
        maximum = rule.max_lifetime_hours or maximum
        extension = rule.extension or extension
    first = maximum if initial is None else min(initial, maximum)
    return LifetimePolicy(initial=timedelta(hours=first), step=timedelta(hours=step),
                          maximum=timedelta(hours=maximum), extension=extension)


def latest_end(created_at: datetime, policy: LifetimePolicy) -> datetime:
    """Return the latest a machine launched at ``created_at`` may live to. Raises nothing."""
    return created_at + policy.maximum


def extension_target(created_at: datetime, expires_at: datetime,
                     policy: LifetimePolicy) -> datetime | None:
    """Return the new end of a machine after one extension (its end plus the step, at most
    its latest end), or None when it already ends at its latest. Raises nothing."""
    limit = latest_end(created_at, policy)
    if expires_at >= limit:
        return None
    return min(expires_at + policy.step, limit)


def hours_text(delta: timedelta) -> str:
    """Return a duration as people say it: '12 hours', '3 days', '1 day 6 hours'. Raises
    nothing."""
    hours = round(delta.total_seconds() / 3600)
    days, rest = divmod(hours, 24)
    parts = ([f"{days} day{'s' if days != 1 else ''}"] if days else []) + (
        [f"{rest} hour{'s' if rest != 1 else ''}"] if rest or not days else [])
    return " ".join(parts)


def idle_since(ready_at: datetime, seen_at: datetime | None,
               busy_until: datetime | None = None) -> datetime:
    """Return since when a ready machine is idle: the latest of when it became ready, its
    last desktop connection and ``busy_until`` (the other activity signals: "keep running
    until", the VM agent's last active report; in the future while kept running). Raises
    nothing."""
    return max([ready_at] + [at for at in (seen_at, busy_until) if at is not None])


#: The desktop proxy records an open connection again every 60 seconds: a record younger than
#: this may belong to a connection still open, so no idle stop is decided on it (this matters
#: only for idle timeouts of a minute or two).
CONNECTION_HEARTBEAT = timedelta(seconds=75)


def maybe_connected(seen_at: datetime | None, now: datetime) -> bool:
    """Return True when the proxy's last record of a connection (``seen_at``) is recent enough
    that the connection may still be open (:data:`CONNECTION_HEARTBEAT`). Raises nothing."""
    return seen_at is not None and now - seen_at < CONNECTION_HEARTBEAT


def warning_due(left: timedelta, thresholds: Sequence[float]) -> float | None:
    """Return the warning threshold (hours) a machine with ``left`` before expiry is within:
    the smallest threshold at or above what is left, so a machine that appears with 1 hour
    left gets one warning (the 2 h one), not the 48 h one too. None when none applies (more
    time left than every threshold, or already expired). Raises nothing."""
    if left <= timedelta(0):
        return None
    hours = left.total_seconds() / 3600
    within = [t for t in thresholds if hours <= t]
    return min(within) if within else None
