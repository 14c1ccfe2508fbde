"""Orphans: what the provider runs for the portal that no live machine row accounts for
(a crash in the wrong place, a server created by hand with the portal's tag).

Pages never ask the provider: the reconciler finds the orphans with the capacity (at most every
:data:`daaas.portal.machines.capacity.REFRESH_SECONDS`) and writes them to
``<var_dir>/orphans.json`` (atomically, by rename); the admin page reads that file and says how
old the reading is. ``daaas orphans`` (the CLI) still asks the provider itself.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session

from daaas.portal.config import Settings
from daaas.portal.machines.capacity import STALE_SECONDS
from daaas.portal.machines.models import Machine
from daaas.portal.machines.states import State
from daaas.portal.providers import Provider

FILE_NAME = "orphans.json"


def find_orphans(db: Session, provider: Provider) -> list[str]:
    """Return the provider's machine ids with no machine row, or whose row is deleted.

    The provider is asked before the database is read, so no transaction is open during the
    call. Raises ProviderUnavailable when the provider cannot be asked.
    """
    running = provider.list_machine_ids()
    if not running:
        return []
    # every live id through the (state, id) index: cheaper than binding thousands of ids
    live = set(db.scalars(select(Machine.id).where(
        Machine.state.in_([s.value for s in State if s is not State.DELETED]))))
    return sorted(running - live)


def orphans_path(settings: Settings) -> Path:
    """Return where the reconciler keeps the orphans it found. Raises nothing."""
    return settings.var_path / FILE_NAME


@dataclass(frozen=True)
class KnownOrphans:
    """The orphans the reconciler found, and when it asked the provider."""

    machine_ids: list[str]
    read_at: datetime


def write_orphans(path: Path, machine_ids: list[str], now: datetime) -> None:
    """Record ``machine_ids`` as found at ``now`` (atomically: a reader sees the old or the new
    file whole). Raises OSError when the file cannot be written."""
    temporary = path.with_name(f".{path.name}.{os.getpid()}")
    temporary.write_text(json.dumps({"read_at": now.isoformat(), "machine_ids": machine_ids}),
                         encoding="utf-8")
    os.replace(temporary, path)


def read_orphans(path: Path, now: datetime) -> KnownOrphans | None:
    """Return the orphans recorded at ``path``, or None when there is no reading, it cannot be
    read or it is older than :data:`STALE_SECONDS` (no worker running). Raises nothing."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        read_at = datetime.fromisoformat(data["read_at"])
        ids = [str(machine_id) for machine_id in data["machine_ids"]]
        stale = now - read_at > timedelta(seconds=STALE_SECONDS)
    except (OSError, ValueError, TypeError, KeyError, AttributeError):
        return None
    return None if stale else KnownOrphans(ids, read_at)
