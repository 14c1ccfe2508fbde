"""Orphans: what the provider runs for the portal that no live machine row accounts for
(a crash in the wrong place, a server created by hand with the portal's tag)."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from daaas.portal.machines.models import Machine
from daaas.portal.machines.states import State
from daaas.portal.providers import Provider


def find_orphans(db: Session, provider: Provider) -> list[str]:
    """Return the provider's machine ids with no machine row, or whose row is deleted.

    Raises ProviderUnavailable when the provider cannot be asked.
    """
    running = provider.list_machine_ids()
    if not running:
        return []
    live = set(db.scalars(select(Machine.id).where(Machine.id.in_(running),
                                                   Machine.state != State.DELETED.value)))
    return sorted(running - live)
