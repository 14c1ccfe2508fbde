"""A warm pool's size: the setting's, an administrator's, and the schedule's at a moment.

A pool's **base size** is its ``warm_pools`` entry, or the size an administrator set (page or
API). Its **schedule** is its ``warm_pool_schedules`` entry, or the one an administrator set
(an empty one: none). The **size in force** at a moment is the largest size of the schedule's
windows the moment falls in (facility time, ``facility_timezone``), else the base size. What
administrators set is a :class:`~daaas.portal.pools.models.PoolSetting` row, so every web host
and worker on the database agrees; the worker reads them every cycle (no restart).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from daaas.catalogue import Environment
from daaas.portal.audit.service import record
from daaas.portal.auth.models import User
from daaas.portal.config import ConfigError, Settings
from daaas.portal.errors import InvalidInput, NotFound
from daaas.portal.pools.models import PoolSetting
from daaas.portal.pools.rules import (
    MAX_SIZE,
    PoolSchedule,
    PoolSize,
    Window,
    local_time,
    make_window,
    parse_pools,
    parse_schedules,
    pool_key,
    size_in_force,
)

__all__ = ["MAX_SIZE", "PoolChoice", "PoolPlan", "change_pool", "choices_from_rows",
           "configured_size", "plan_pool", "pool_plans", "read_choices", "window_json"]


@dataclass(frozen=True)
class PoolChoice:
    """What an administrator set for one pool (None: left to the settings)."""

    size: int | None
    schedule: tuple[Window, ...] | None
    updated_at: datetime | None = None
    updated_by: str = ""


@dataclass(frozen=True)
class PoolPlan:
    """One configured pool resolved against the catalogue, with its size now."""

    key: str
    environment: str
    flavor: str
    #: The ``warm_pools`` entry's size, and the base size (an administrator's, else that)
    setting_size: int
    size: int
    size_set_by_admin: bool
    #: The schedule's windows and where they come from: "setting", "admin" or "none"
    windows: tuple[Window, ...]
    schedule_source: str
    #: The size in force at the moment asked, and the window that gives it (None: the base)
    size_now: int
    window_now: Window | None


def window_json(window: Window) -> dict[str, Any]:
    """Return ``window`` as stored and answered: {"days", "start", "end", "size"}. Raises
    nothing."""
    return {"days": window.days_text, "start": window.start, "end": window.end,
            "size": window.size}


def _windows(stored: Iterable[Mapping[str, Any]]) -> tuple[Window, ...]:
    """Return stored windows; a malformed one (never written by :func:`change_pool`) is
    skipped."""
    found = []
    for item in stored:
        try:
            found.append(make_window(str(item["days"]), str(item["start"]), str(item["end"]),
                                     int(item["size"])))
        except (KeyError, TypeError, ValueError):
            continue
    return tuple(found)


def choices_from_rows(rows: Iterable[Any]) -> dict[str, PoolChoice]:
    """Return the administrators' choices by pool key from ``pool_settings`` rows (or rows
    with its ``key``, ``size`` and ``schedule``). Raises nothing."""
    return {row.key: PoolChoice(
        size=row.size, schedule=None if row.schedule is None else _windows(row.schedule),
        updated_at=getattr(row, "updated_at", None), updated_by=getattr(row, "updated_by", ""))
        for row in rows}


def read_choices(db: Session) -> dict[str, PoolChoice]:
    """Return what administrators set, by pool key (one query). Raises only database
    errors."""
    return choices_from_rows(db.scalars(select(PoolSetting)))


def plan_pool(settings: Settings, entry: PoolSize, environment: Environment,
              choices: Mapping[str, PoolChoice], schedules: Sequence[PoolSchedule],
              now: datetime) -> PoolPlan | None:
    """Return the plan of the ``warm_pools`` ``entry`` of ``environment`` at ``now`` (aware),
    or None when its flavor is not one the environment allows. Raises nothing."""
    flavor = entry.flavor or environment.flavors.default
    if flavor not in environment.flavors.allowed:
        return None
    key = pool_key(environment.name, flavor)
    choice = choices.get(key)
    size = entry.size if choice is None or choice.size is None else choice.size
    if choice is not None and choice.schedule is not None:
        windows, source = choice.schedule, "admin"
    else:
        windows = next((schedule.windows for schedule in schedules
                        if schedule.environment == environment.name
                        and (schedule.flavor or environment.flavors.default) == flavor), ())
        source = "setting" if windows else "none"
    size_now, window = size_in_force(size, windows, local_time(now, settings.facility_timezone))
    return PoolPlan(key=key, environment=environment.name, flavor=flavor,
                    setting_size=entry.size, size=size,
                    size_set_by_admin=choice is not None and choice.size is not None,
                    windows=windows, schedule_source=source, size_now=size_now,
                    window_now=window)


def pool_plans(settings: Settings, environments: Mapping[str, Environment],
               choices: Mapping[str, PoolChoice], now: datetime) -> list[PoolPlan]:
    """Return the plan of every configured pool whose environment and flavor the catalogue
    has, in the setting's order. Raises ConfigError when ``warm_pools`` or
    ``warm_pool_schedules`` is not well formed."""
    schedules = parse_schedules(settings.warm_pool_schedules)
    plans = []
    for entry in parse_pools(settings.warm_pools):
        environment = environments.get(entry.environment)
        found = None if environment is None else plan_pool(settings, entry, environment,
                                                            choices, schedules, now)
        if found is not None:
            plans.append(found)
    return plans


def configured_size(db: Session, settings: Settings, environment: Environment, flavor: str,
                    now: datetime) -> int:
    """Return the size in force now of the pool of ``environment`` on ``flavor``; 0 when it
    has no pool. Raises only database errors (a malformed setting counts as no pool: the
    worker refuses to start with it)."""
    try:
        plans = pool_plans(settings, {environment.name: environment}, {}, now)
    except ConfigError:
        return 0
    if not any(plan.flavor == flavor for plan in plans):
        return 0
    choices = read_choices(db)
    return next((plan.size_now for plan in pool_plans(settings, {environment.name: environment},
                                                       choices, now)
                 if plan.flavor == flavor), 0)


def _plan_of(settings: Settings, environments: Mapping[str, Environment], key: str,
             choices: Mapping[str, PoolChoice], now: datetime) -> PoolPlan:
    try:
        plans = pool_plans(settings, environments, choices, now)
    except ConfigError:
        plans = []
    found = next((plan for plan in plans if plan.key == key), None)
    if found is None:
        raise NotFound(f"There is no warm pool {key}.")
    return found


#: ``change_pool``'s marker for "leave this as it is"
KEEP: Any = object()


def change_pool(db: Session, settings: Settings, environments: Mapping[str, Environment],
                admin: User, key: str, now: datetime, *, size: int | None = KEEP,
                schedule: Sequence[Mapping[str, Any]] | None = KEEP) -> PoolPlan:
    """Set the pool ``key``'s base ``size`` and/or ``schedule`` (a list of {"days", "start",
    "end", "size"}; ``[]``: no schedule; None for either: back to the settings'), record
    ``pool.resize`` / ``pool.schedule`` in the caller's transaction and return the pool's plan
    at ``now`` (the worker applies it in its next cycle). Raises NotFound for a pool not in
    ``warm_pools`` (or not in the catalogue), InvalidInput naming the field that is wrong."""
    choices = read_choices(db)
    before = _plan_of(settings, environments, key, choices, now)
    if size is not KEEP and size is not None and not 0 <= size <= MAX_SIZE:
        raise InvalidInput(f"size: a pool's size is a whole number from 0 to {MAX_SIZE}.")
    windows: list[dict[str, Any]] | None = None
    if schedule is not KEEP and schedule is not None:
        windows = []
        for index, item in enumerate(schedule):
            try:
                windows.append(window_json(make_window(
                    str(item["days"]), str(item["start"]), str(item["end"]),
                    int(item["size"]))))
            except ValueError as exc:
                raise InvalidInput(f"schedule[{index}]: {exc}.") from None
    row = db.get(PoolSetting, key) or PoolSetting(key=key)
    if size is not KEEP:
        row.size = size
        record(db, "pool.resize", actor=admin.username, target=f"pool {key}",
               detail=f"{before.size if before.size_set_by_admin else 'the setting'} -> "
               f"{'the setting' if size is None else size}", admin=True)
    if schedule is not KEEP:
        row.schedule = windows
        text = "the setting's" if windows is None else \
            (", ".join(f"{w['days']} {w['start']}-{w['end']}={w['size']}" for w in windows)
             or "none")
        record(db, "pool.schedule", actor=admin.username, target=f"pool {key}",
               detail=f"schedule: {text}", admin=True)
    row.updated_at, row.updated_by = now, admin.username
    db.add(row)
    db.flush()
    return _plan_of(settings, environments, key, read_choices(db), now)
