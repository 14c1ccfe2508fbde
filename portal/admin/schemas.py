"""Bodies of the admin console's routes of /api/v1 (see :mod:`daaas.portal.api.schema`)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import ConfigDict, Field

from daaas.portal.api.schema import Body, Day, Instant, Query, Reply, Timestamp
from daaas.portal.machines.schemas import Machine


class UserQuery(Query):
    """Which users to list."""

    q: str = Field("", max_length=200, description="Part of a user name, display name, "
                                                     "e-mail or group (case-insensitive).")
    limit: int = Field(100, ge=1, le=500, description="Users on this page.")


class UserUsage(Reply):
    """What a user holds now."""

    machines: int = Field(description="Machines not deleted, deleting or failed.")
    running: int = Field(description="Of those, holding cores and GPUs at the provider.")
    vcpus: int
    gpus: int


class QuotaLimit(Reply):
    """One limit of a user's effective quota: the tightest per key ("used of limit", held
    by "your", "group 'x'" or "the site's")."""

    key: str = Field(description="machines, vcpus, memory_gib or gpu:<model>.")
    used: str
    limit: str
    holder: str


class AdminUser(Reply):
    """A user as administrators see them."""

    username: str
    display_name: str
    email: str
    groups: list[str]
    is_admin: bool
    is_active: bool
    disabled_at: Timestamp | None
    disabled_reason: str
    last_sign_in_at: Timestamp | None
    usage: UserUsage
    quota: list[QuotaLimit] = Field(description="The effective compute quota (quotas "
                                                "service), tightest limit per key.")


class UserList(Reply):
    """Users matching the search, by user name."""

    users: list[AdminUser]


class UserDetail(Reply):
    """One user with their machines (not deleted)."""

    user: AdminUser
    machines: list[Machine]


class DisableRequest(Body):
    """Why the account is disabled (the user is told), and whether to stop their machines."""

    model_config = ConfigDict(json_schema_extra={"examples": [
        {"reason": "Account under review; contact the service desk.", "stop_machines": True}]})

    reason: str = Field(max_length=500, description="1 to 500 characters.")
    stop_machines: bool = Field(True, description="Ask the user's ready machines to stop "
                                                  "(ends their open desktop connections).")


class MachineQuery(Query):
    """Which machines to list; each parameter given narrows the list."""

    state: str = Field("", max_length=20, description="A machine state.")
    user: str = Field("", max_length=64, description="The owner's user name.")
    environment: str = Field("", max_length=64, description="An environment's name.")
    flavor: str = Field("", max_length=100, description="A flavour.")
    older_than_hours: float | None = Field(None, ge=0, le=100000,
                                           description="Launched at least this long ago.")
    idle_hours: float | None = Field(None, ge=0, le=100000, description="Ready, with no "
                                     "desktop connection for at least this long.")


class AdminMachineList(Reply):
    """The matching machines, newest first (at most 500), and how many match."""

    machines: list[Machine]
    total: int


class BulkRequest(Body):
    """Stop or delete several machines, with a reason their owners see."""

    model_config = ConfigDict(json_schema_extra={"examples": [
        {"action": "stop", "machines": ["0f3c9a6e2b7d4c1e8f5a3b2c1d0e9f8a"],
         "reason": "Maintenance of the GPU hosts tonight."}]})

    action: Literal["stop", "delete"]
    machines: list[Annotated[str, Field(max_length=64)]] = Field(
        min_length=1, max_length=200, description="Machine ids (1 to 200).")
    reason: str = Field(max_length=500, description="1 to 500 characters; shown to owners.")


class Refused(Reply):
    """A machine the action could not be applied to, and why."""

    machine: str
    reason: str


class BulkResult(Reply):
    """What the bulk action asked for (the reconciler does the work)."""

    action: str
    reason: str
    done: list[str]
    refused: list[Refused]


class FlavorCapacity(Reply):
    """One flavour: its size, its running machines and what they hold, how many more fit now
    (null: unknown), and when one more is estimated to fit (``now`` when it fits now; null
    when unknown or not within the running machines' lifetimes). The page shows it too."""

    flavor: str
    label: str
    gpus: int
    gpu_model: str
    running: int
    vcpus_used: int
    gpus_used: int
    fits_now: int | None
    next_free: Instant | None


class GpuCapacity(Reply):
    """One GPU model: used by running machines, free and total (null: unknown), next free."""

    model: str
    used: int
    free: int | None
    total: int | None
    next_free: Instant | None


class CapacityReport(Reply):
    """Capacity per flavour and GPU model, from the reconciler's last reading (null when
    there is none); the capacity page and the API's reply."""

    read_at: Instant | None
    sessions_free: int | None
    sessions_total: int | None
    gpus_free: int | None
    gpus_total: int | None
    flavors: list[FlavorCapacity]
    gpu_models: list[GpuCapacity]
    method: str = Field(description="How free now and next free were computed.")


class UsageQuery(Query):
    """The period (UTC days, both included) and the grouping of a usage report."""

    by: Literal["environment", "group", "user"] = "environment"
    start: Day | None = Field(None, description="First day (default: 6 days before end).")
    end: Day | None = Field(None, description="Last day, included (default: today).")


class UsageLine(Reply):
    """One environment, group or user in the period."""

    key: str
    machine_hours: float
    gpu_hours: float


class UsageReport(Reply):
    """Machine-hours and GPU-hours per key, most machine-hours first."""

    by: str
    start: Timestamp
    end: Timestamp
    rows: list[UsageLine]


__all__ = ["Machine"]  # the machine reply the admin lists share with /machines

REQUESTS = (DisableRequest, BulkRequest)
REPLIES = (UserList, UserDetail, AdminUser, AdminMachineList, BulkResult, CapacityReport,
           UsageReport)
