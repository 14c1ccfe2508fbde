"""The settings ``warm_pools`` and ``warm_pool_schedules``, pool keys and the size in force
at a moment: pure functions, no database."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo

from daaas.portal.config import ConfigError

_ENTRY = re.compile(r"^\s*([A-Za-z0-9_.-]+)(?:/([A-Za-z0-9_.-]+))?\s*=\s*(\d+)\s*$")


@dataclass(frozen=True)
class PoolSize:
    """One configured pool: ``size`` machines of ``environment`` on ``flavor`` (None: the
    environment's default flavor, resolved by the worker against the catalogue)."""

    environment: str
    flavor: str | None
    size: int


def parse_pools(text: str) -> tuple[PoolSize, ...]:
    """Return the pools of the setting ``warm_pools`` ('ENV[/FLAVOR]=N; ...').

    Raises ConfigError naming the entry that is not of that form.
    """
    pools = []
    for raw in (part for part in text.split(";") if part.strip()):
        match = _ENTRY.match(raw)
        if match is None:
            raise ConfigError(f"warm_pools: {raw.strip()!r} is not ENVIRONMENT[/FLAVOR]=N")
        pools.append(PoolSize(match.group(1), match.group(2), int(match.group(3))))
    return tuple(pools)


def pool_key(environment: str, flavor: str) -> str:
    """Return the pool a machine of ``environment`` on ``flavor`` waits in. Raises nothing."""
    return f"{environment}/{flavor}"


# -- schedules ------------------------------------------------------------------------------

DAY_NAMES = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_DAY = {name.lower(): index for index, name in enumerate(DAY_NAMES)}
_TIME = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)$|^24:00$")
_WINDOW = re.compile(r"^\s*(.+?)\s+(\d\d:\d\d)\s*-\s*(\d\d:\d\d)\s*=\s*(\d+)\s*$")
_POOL = re.compile(r"^\s*([A-Za-z0-9_.-]+)(?:/([A-Za-z0-9_.-]+))?\s*:(.*)$")
#: The largest size a pool may have, in the setting's schedule or set by an administrator
MAX_SIZE = 100


@dataclass(frozen=True)
class Window:
    """``size`` machines on ``days`` (0 = Monday) from ``start`` to ``end`` ("HH:MM", facility
    time); an end at or before the start runs past midnight into the next day."""

    days: tuple[int, ...]
    start: str
    end: str
    size: int

    @property
    def days_text(self) -> str:
        """Return the days as written back ("Mon-Fri", "Sat,Sun", "daily"). Raises nothing."""
        return days_text(self.days)

    def text(self) -> str:
        """Return the window as the setting writes it ("Mon-Fri 08:00-18:00=3"). Raises
        nothing."""
        return f"{self.days_text} {self.start}-{self.end}={self.size}"

    def contains(self, moment: datetime) -> bool:
        """Return True when the facility-local ``moment`` falls in this window. Raises
        nothing."""
        minute = moment.hour * 60 + moment.minute
        start, end = _minutes(self.start), _minutes(self.end)
        if start < end:
            return moment.weekday() in self.days and start <= minute < end
        # past midnight: the evening of a listed day or the morning after it
        return (moment.weekday() in self.days and minute >= start) or \
            ((moment.weekday() - 1) % 7 in self.days and minute < end)


@dataclass(frozen=True)
class PoolSchedule:
    """The schedule of one pool (``flavor`` None: the environment's default)."""

    environment: str
    flavor: str | None
    windows: tuple[Window, ...]


def _minutes(text: str) -> int:
    hours, minutes = text.split(":")
    return int(hours) * 60 + int(minutes)


def days_text(days: tuple[int, ...]) -> str:
    """Return ``days`` (0 = Monday) as short text: "daily", "Mon-Fri", "Sat,Sun". Raises
    nothing."""
    if len(days) == 7:
        return "daily"
    if len(days) > 2 and list(days) == list(range(days[0], days[-1] + 1)):
        return f"{DAY_NAMES[days[0]]}-{DAY_NAMES[days[-1]]}"
    return ",".join(DAY_NAMES[day] for day in days)


def parse_days(text: str) -> tuple[int, ...]:
    """Return the days of ``text`` ("Mon-Fri", "Sat,Sun", "daily"; case ignored), sorted.
    Raises ValueError naming what is not a day."""
    days: set[int] = set()
    for part in (part.strip().lower() for part in text.split(",")):
        if part in ("daily", "all", "every day"):
            days.update(range(7))
            continue
        first, _, last = part.partition("-")
        if first.strip()[:3] not in _DAY or (last and last.strip()[:3] not in _DAY):
            raise ValueError(f"{part!r} is not a day or a range of days (Mon-Fri, Sat,Sun, "
                             "daily)")
        a, b = _DAY[first.strip()[:3]], _DAY[(last or first).strip()[:3]]
        days.update(range(a, b + 1) if a <= b else [*range(a, 7), *range(0, b + 1)])
    if not days:
        raise ValueError("no days given")
    return tuple(sorted(days))


def make_window(days: str, start: str, end: str, size: int) -> Window:
    """Return the window of ``size`` machines on ``days`` from ``start`` to ``end``. Raises
    ValueError naming the part that is wrong (the days, a time that is not HH:MM, a size out
    of 0..:data:`MAX_SIZE`, an empty window)."""
    parsed = parse_days(days)
    for name, value in (("start", start), ("end", end)):
        if not _TIME.match(value):
            raise ValueError(f"{name} {value!r} is not a time HH:MM (00:00 to 24:00)")
    if start == "24:00":
        raise ValueError("start 24:00: a window starts at 23:59 at the latest")
    if not 0 <= size <= MAX_SIZE:
        raise ValueError(f"size {size} is not from 0 to {MAX_SIZE}")
    if start == end:
        raise ValueError(f"{start}-{end} is an empty window")
    return Window(parsed, start, end, size)


def parse_schedules(text: str) -> tuple[PoolSchedule, ...]:
    """Return the schedules of the setting ``warm_pool_schedules``
    ('ENV[/FLAVOR]: DAYS HH:MM-HH:MM=N, ...; ...').

    Raises ConfigError naming the entry and what is wrong in it.
    """
    schedules = []
    for raw in (part for part in text.split(";") if part.strip()):
        match = _POOL.match(raw)
        if match is None:
            raise ConfigError(f"warm_pool_schedules: {raw.strip()!r} is not "
                              "ENVIRONMENT[/FLAVOR]: DAYS HH:MM-HH:MM=N, ...")
        windows = []
        for item in (item for item in _split_windows(match.group(3)) if item.strip()):
            found = _WINDOW.match(item)
            try:
                if found is None:
                    raise ValueError("not DAYS HH:MM-HH:MM=N")
                windows.append(make_window(found.group(1), found.group(2), found.group(3),
                                           int(found.group(4))))
            except ValueError as exc:
                raise ConfigError(f"warm_pool_schedules: {item.strip()!r}: {exc}") from None
        schedules.append(PoolSchedule(match.group(1), match.group(2), tuple(windows)))
    return tuple(schedules)


def _split_windows(text: str) -> list[str]:
    """Split "Mon-Fri 08:00-18:00=3, Sat,Sun 10:00-14:00=1" at the commas that end a window
    (a comma may also separate days)."""
    items, current = [], ""
    for part in text.split(","):
        current = f"{current},{part}" if current else part
        if "=" in part:
            items.append(current)
            current = ""
    if current.strip():
        items.append(current)
    return items


def size_in_force(size: int, windows: tuple[Window, ...],
                  moment: datetime) -> tuple[int, Window | None]:
    """Return the size of a pool at the facility-local ``moment``: the largest size of the
    windows it falls in, else ``size``; with the window that gave it (None: ``size``).
    Raises nothing."""
    found = [window for window in windows if window.contains(moment)]
    if not found:
        return size, None
    best = max(found, key=lambda window: window.size)
    return best.size, best


def local_time(moment: datetime, timezone: str) -> datetime:
    """Return the aware ``moment`` in the facility's ``timezone`` (an IANA name the settings
    have checked). Raises nothing for a checked name."""
    return moment.astimezone(ZoneInfo(timezone))
