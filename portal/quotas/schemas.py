"""Bodies of the quota routes of /api/v1 (see :mod:`daaas.portal.api.schema`)."""

from __future__ import annotations

from typing import Annotated

from pydantic import ConfigDict, Field

from daaas.portal.api.schema import Body, Reply, Timestamp
from daaas.portal.quotas.edits import MAX_LIMIT

Limit = Annotated[int, Field(ge=0, le=MAX_LIMIT)]
Model = Annotated[str, Field(min_length=1, max_length=100)]


class QuotaLimits(Body):
    """A user's or group's quota: each limit optional (absent or null: not limited by this
    quota), GPUs by model as the site's ``flavor_sizes`` names them."""

    model_config = ConfigDict(json_schema_extra={"examples": [
        {"machines": 6, "vcpus": 64, "memory_gib": 512, "storage_gib": 500,
         "gpus": {"NVIDIA A100": 2}}]})

    machines: Limit | None = Field(None, description="Machines (a group's: all members').")
    vcpus: Limit | None = Field(None, description="Cores of machines not stopped.")
    memory_gib: Limit | None = Field(None, description="Memory (GiB) of machines not stopped.")
    storage_gib: Limit | None = Field(None, description="Storage (GiB) of each person.")
    gpus: dict[Model, Limit] = Field(default_factory=dict, max_length=50,
                                     description="GPUs of machines not stopped, by model.")


class Quota(Reply):
    """One user's or group's quota and where it comes from: the settings, or an
    administrator (who, when)."""

    scope: str = Field(description="user or group")
    name: str
    machines: int | None = None
    vcpus: int | None = None
    memory_gib: int | None = None
    storage_gib: int | None = None
    gpus: dict[str, int]
    source: str = Field(description="settings or admin")
    updated_by: str = ""
    updated_at: Timestamp | None = None


class QuotaList(Reply):
    """Every quota, and how a user's groups combine (most_generous or sum)."""

    policy: str
    quotas: list[Quota]


class QuotaUse(Reply):
    """One limit that applies to the signed-in user: what is in use of how much, and whose
    limit it is ("group 'beamline-i03'", "your", "the site's")."""

    label: str
    used: str
    limit: str
    holder: str
    full: bool


class MyQuota(Reply):
    """The signed-in user's quotas as the Analysis page shows them, and their storage quota."""

    limits: list[QuotaUse]
    storage_gib: int


REQUESTS = (QuotaLimits,)
REPLIES = (Quota, QuotaList, MyQuota)
