"""Launch step 4, provider launch: what the provider is given to start one machine.

:func:`launch_spec` is the whole of it: the owner's account, the machine's snapshot of its
catalogue environment, the VNC password derived from the secret key, the user-data from step 3
(cloud-init providers only), the flavor and the folders the session sees
(:func:`session_mounts`). The same spec starts a stopped machine again.
"""

from __future__ import annotations

from daaas.portal.config import Settings
from daaas.portal.machines.models import Machine
from daaas.portal.machines.naming import STORAGE_FOLDER, experiment_folder
from daaas.portal.machines.secrets import vnc_password
from daaas.portal.providers import LaunchSpec, SessionMount
from daaas.portal.storage.service import storage_area


def launch_spec(settings: Settings | None, secret_key: str, machine: Machine,
                user_data: bytes | None = None) -> LaunchSpec:
    """Return the provider's LaunchSpec for ``machine``.

    Without ``settings`` (a reconciler built for tests) the session gets no mounts. Raises
    OSError when the user's storage cannot be created.
    """
    user = machine.user
    return LaunchSpec(machine_id=machine.id, username=user.username, uid=user.uid, gid=user.gid,
                      environment=machine.environment,
                      vnc_password=vnc_password(secret_key, machine.id), user_data=user_data,
                      flavor=machine.flavor, pooled=machine.pool is not None,
                      # a warm pool's machine (pool account) gets no one's folders
                      mounts=session_mounts(settings, machine)
                      if settings and machine.pool is None else ())


def session_mounts(settings: Settings, machine: Machine) -> tuple[SessionMount, ...]:
    """Return the machine's mounts: storage read-write, experiment data read-only.

    Raises OSError when the user's storage cannot be created.
    """
    storage = storage_area(settings, machine.user)
    mounts = [SessionMount(name=STORAGE_FOLDER, source=str(storage.path), read_only=False,
                           description="your storage", quota_bytes=storage.quota_bytes)]
    experiment = machine.experiment
    if experiment:
        mounts.append(SessionMount(name=experiment_folder(str(experiment["visit_id"])),
                                   source=str(experiment["data_path"]), read_only=True,
                                   description=f"experiment {experiment['visit_id']}"))
    return tuple(mounts)
