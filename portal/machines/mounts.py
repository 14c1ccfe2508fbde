"""What a session sees besides its home: the user's storage and its experiment's data."""

from __future__ import annotations

from portal.config import Settings
from portal.machines.models import Machine
from portal.providers import SessionMount
from portal.storage.service import storage_area


def session_mounts(settings: Settings, machine: Machine) -> tuple[SessionMount, ...]:
    """Return the machine's mounts: storage read-write, experiment data read-only.

    Raises OSError when the user's storage cannot be created.
    """
    mounts = [SessionMount(name="storage", source=str(storage_area(settings, machine.user).path),
                           read_only=False, description="your storage")]
    experiment = machine.experiment
    if experiment:
        mounts.append(SessionMount(name=f"experiment-{experiment['visit_id']}",
                                   source=str(experiment["data_path"]), read_only=True,
                                   description=f"experiment {experiment['visit_id']}"))
    return tuple(mounts)
