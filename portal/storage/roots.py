"""The folders My Data shows: the user's own storage (read-write) and the data of each of
their experiments (read-only)."""

from __future__ import annotations

from pathlib import Path

from daaas.portal.auth.models import User
from daaas.portal.errors import NotFound, PortalError
from daaas.portal.experiments.backends import InvestigationInfo
from daaas.portal.runtime import Runtime
from daaas.portal.storage.files import Root
from daaas.portal.storage.service import StorageArea, storage_area

STORAGE_KEY = "storage"
EXPERIMENT_PREFIX = "experiment-"


def own_storage(rt: Runtime, user: User) -> tuple[Root, StorageArea]:
    """Return the user's storage as a writable root, with its usage and quota."""
    area = storage_area(rt.settings, user)
    return Root(key=STORAGE_KEY, title="your storage", path=area.path, writable=True), area


def experiment_root(rt: Runtime, investigation: InvestigationInfo) -> Root:
    """Return an experiment's data folder as a read-only root."""
    path = Path(investigation.data_path(rt.settings.experiment_data_path_template))
    return Root(key=f"{EXPERIMENT_PREFIX}{investigation.id}",
                title=f"the data of experiment {investigation.visit_id}", path=path,
                writable=False)


def experiments_of(rt: Runtime, user: User) -> tuple[list[InvestigationInfo], str]:
    """Return the user's experiments, or none and why when the catalogue cannot answer."""
    try:
        return rt.experiments.investigations_for(user.username), ""
    except PortalError as exc:
        return [], exc.user_message


def root_for(rt: Runtime, user: User, key: str) -> Root:
    """Return the root called ``key`` if the user may see it; raises NotFound."""
    if key == STORAGE_KEY:
        return own_storage(rt, user)[0]
    number = key.removeprefix(EXPERIMENT_PREFIX)
    if key.startswith(EXPERIMENT_PREFIX) and number.isdigit():
        for investigation in rt.experiments.investigations_for(user.username):
            if investigation.id == int(number):
                root = experiment_root(rt, investigation)
                if not root.path.is_dir():
                    raise NotFound(f"The data of experiment {investigation.visit_id} is not "
                                   "reachable from the portal yet. Try again later or ask the "
                                   "facility.", f"{root.path} is not a folder")
                return root
    raise NotFound(f"There is no data area called '{key[:60]}' for you.")
