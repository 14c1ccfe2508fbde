"""What a session sees besides its home: the user's storage and its experiment's data."""

from __future__ import annotations

from daaas.contextualisation import Mount
from daaas.portal.config import Settings
from daaas.portal.machines.models import Machine
from daaas.portal.providers import SessionMount
from daaas.portal.storage.service import machine_mounts, storage_area


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


# -- cloud-init machines: the storage backend's mount line (portal/storage/backends.py) --------

def cloud_mounts(settings: Settings, machine: Machine) -> tuple[Mount, ...]:
    """Return what a cloud-init machine mounts: the user's storage, read-write at
    ``/home/<user>/storage`` as the storage backend says (none for the local backend).

    Creates the storage on first need. Raises OSError or a StorageError (a ProviderError).
    """
    return machine_mounts(settings, machine.user, machine.id)
