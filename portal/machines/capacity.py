"""The provider's capacity as the reconciler last read it, kept for the pages.

Pages never ask the provider (a cloud call per page view would be slow and would hammer the
cloud): the reconciler reads :meth:`Provider.capacity` at most every
:data:`REFRESH_SECONDS` and writes it to ``<var_dir>/capacity.json`` (atomically, by rename);
web processes read that file. A reading older than :data:`STALE_SECONDS` (no worker running)
counts as unknown, and unknown never disables anything: the launch then meets the provider's
own answer.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from pathlib import Path

from daaas.catalogue import Environment
from daaas.portal.config import FlavorSize, Settings, parse_flavor_sizes
from daaas.portal.providers import Capacity

#: How often the reconciler reads the provider's capacity (seconds).
REFRESH_SECONDS = 30.0
#: A reading older than this is not shown (the worker is probably not running).
STALE_SECONDS = 600.0
FILE_NAME = "capacity.json"


def capacity_path(settings: Settings) -> Path:
    """Return where the reconciler keeps the capacity it read. Raises nothing."""
    return settings.var_path / FILE_NAME


def write_capacity(path: Path, capacity: Capacity, now: datetime) -> None:
    """Record ``capacity`` as read at ``now`` (atomically: a reader sees the old or the new
    file whole). Raises OSError when the file cannot be written."""
    temporary = path.with_name(f".{path.name}.{os.getpid()}")
    temporary.write_text(json.dumps({"read_at": now.isoformat(), **asdict(capacity)}),
                         encoding="utf-8")
    os.replace(temporary, path)


@dataclass(frozen=True)
class KnownCapacity:
    """The capacity the reconciler read, and when."""

    capacity: Capacity
    read_at: datetime


def read_capacity(path: Path, now: datetime) -> KnownCapacity | None:
    """Return the capacity recorded at ``path``, or None when there is none, it cannot be read
    or it is older than :data:`STALE_SECONDS`. Raises nothing."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        read_at = datetime.fromisoformat(data.pop("read_at"))
        capacity = Capacity(**data)
        stale = now - read_at > timedelta(seconds=STALE_SECONDS)
    except (OSError, ValueError, TypeError, KeyError, AttributeError):
        return None
    return None if stale else KnownCapacity(capacity, read_at)


def gpu_reason(capacity: Capacity | None, model: str = "") -> str | None:
    """Return why a GPU machine cannot start now, or None when it can (or nobody can tell).

    ``model`` names the GPU for the person ("NVIDIA A100"). Raises nothing.
    """
    if capacity is None or capacity.gpus_free is None or capacity.gpus_free > 0:
        return None
    if capacity.gpus_total == 0:
        return "This portal's machines have no GPU."
    if capacity.gpus_total:
        return (f"All {capacity.gpus_total} {model or 'GPUs'} are in use; try again later or "
                "choose a size without a GPU.")
    return "No GPU is free on this portal's machines."


def gpu_availability(capacity: Capacity | None, model: str = "") -> str:
    """Return "2 of 8 NVIDIA A100 free" ("3 GPUs free" without a total), or "" when no GPU is
    free or nobody can tell. Raises nothing."""
    if capacity is None or not capacity.gpus_free:
        return ""
    what = model or ("GPU" if capacity.gpus_free == 1 and not capacity.gpus_total else "GPUs")
    if capacity.gpus_total:
        return f"{capacity.gpus_free} of {capacity.gpus_total} {what} free"
    return f"{capacity.gpus_free} {what} free"


def launch_gpu_reason(settings: Settings, environment: Environment, flavor: str,
                      now: datetime) -> str | None:
    """Return why a launch of ``environment`` on ``flavor`` needs a GPU it cannot have now, by
    the capacity the reconciler last read; None when it needs none, can have one, or nobody
    can tell. Raises nothing."""
    if flavor not in environment.flavors.gpu:
        return None
    known = read_capacity(capacity_path(settings), now)
    size = describe_flavors(settings).get(flavor)
    return gpu_reason(known.capacity if known else None, size.gpu_model if size else "")


def describe_flavors(settings: Settings) -> dict[str, FlavorSize]:
    """Return the flavours the site's ``flavor_sizes`` setting describes, by name (the setting
    was checked at start-up). Raises nothing."""
    return parse_flavor_sizes(settings.flavor_sizes)


def age_text(read_at: datetime, now: datetime) -> str:
    """Return how long ago the reconciler read something, for a page: "20 s ago",
    "3 min ago" (whole units, never negative). Raises nothing."""
    seconds = max(0, int((now - read_at).total_seconds()))
    return f"{seconds} s ago" if seconds < 120 else f"{seconds // 60} min ago"
