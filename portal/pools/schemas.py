"""Bodies of the warm pools' admin API, /api/v1/admin/pools (see :mod:`daaas.portal.api.schema`)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import ConfigDict, Field

from daaas.portal.api.schema import Body, Reply, Timestamp
from daaas.portal.pools.rules import MAX_SIZE

_DAYS = "Days: Mon-Fri, Sat,Sun, Mon,Wed,Fri or daily (case ignored)."
_TIME = r"^([01][0-9]|2[0-3]):[0-5][0-9]$|^24:00$"


class ScheduleWindow(Body):
    """A window of a pool's schedule: ``size`` machines on ``days`` from ``start`` to ``end``
    (facility time; an end at or before the start runs past midnight)."""

    days: str = Field(min_length=1, max_length=60, description=_DAYS)
    start: str = Field(pattern=_TIME, max_length=5, description="HH:MM, 00:00 to 23:59.")
    end: str = Field(pattern=_TIME, max_length=5, description="HH:MM, 00:01 to 24:00.")
    size: int = Field(ge=0, le=MAX_SIZE)


_EXAMPLE: dict[str, Any] = {"size": 2, "schedule": [
    {"days": "Mon-Fri", "start": "08:00", "end": "20:00", "size": 5}]}


class PoolResize(Body):
    """PUT: the pool's base size (null: back to the setting's) and, if given, its schedule
    (an empty list: no schedule; null: the setting's)."""

    model_config = ConfigDict(json_schema_extra={"examples": [_EXAMPLE]})

    size: int | None = Field(ge=0, le=MAX_SIZE, description="Machines kept outside the "
                             "schedule's windows; null: the setting warm_pools' size.")
    schedule: list[ScheduleWindow] | None = Field(
        None, max_length=50, description="Replaces the schedule; [] for none; null: the "
        "setting's; left out: unchanged.")


class PoolChange(Body):
    """PATCH: what is given changes, the rest stays."""

    model_config = ConfigDict(json_schema_extra={"examples": [{"size": 3}]})

    size: int | None = Field(None, ge=0, le=MAX_SIZE, description="The base size; null: the "
                             "setting's.")
    schedule: list[ScheduleWindow] | None = Field(
        None, max_length=50, description="The schedule; [] for none; null: the setting's.")


class ScheduleReply(Reply):
    """One window of a schedule as in force."""

    days: str
    start: str
    end: str
    size: int


class PoolFiguresReply(Reply):
    """What the worker last counted of the pool (its last cycle)."""

    size: int = Field(description="The size the worker last applied.")
    ready: int
    starting: int
    claimed_last_hour: int
    launches_last_hour: int
    hit_rate: float | None
    held_sessions: int
    held_gpus: int
    expected_wait: float | None = Field(description="Median seconds from Launch to ready of "
                                        "the last launches a pool did not serve.")


class Pool(Reply):
    """One warm pool: its sizes, schedule and what the worker counted."""

    key: str = Field(description="environment/flavor")
    environment: str
    flavor: str
    setting_size: int = Field(description="The size in the setting warm_pools.")
    size: int = Field(description="The base size: an administrator's, else the setting's.")
    size_source: Literal["setting", "admin"]
    schedule: list[ScheduleReply]
    schedule_source: Literal["setting", "admin", "none"]
    size_now: int = Field(description="The size in force now: the schedule's window, else "
                                      "the base size.")
    window_now: ScheduleReply | None = Field(description="The window in force now, if any.")
    timezone: str = Field(description="The facility's time zone the schedule is read in.")
    updated_at: Timestamp | None = Field(description="When an administrator last changed it.")
    updated_by: str
    figures: PoolFiguresReply | None = Field(description="None: the worker has not counted "
                                             "it in the last two minutes.")


class PoolList(Reply):
    """Every configured pool, in the setting's order."""

    pools: list[Pool]
    supported: bool = Field(description="Whether the running provider keeps pools.")


REQUESTS = (PoolResize, PoolChange, ScheduleWindow)
REPLIES = (PoolList, Pool, ScheduleReply, PoolFiguresReply)
