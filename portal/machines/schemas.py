"""Bodies of the machines routes of /api/v1 (see :mod:`daaas.portal.api.schema`)."""

from __future__ import annotations

from pydantic import ConfigDict, Field

from daaas.portal.api.schema import MAX_ID, Body, Query, Reply, Timestamp
from daaas.portal.machines.states import State


class MachineListQuery(Query):
    """Which page of machines to list, and whose."""

    all: bool = Field(False, description="Admins: true (or 1) for everyone's machines.")
    limit: int = Field(100, ge=1, le=500, description="Machines on this page.")
    offset: int = Field(0, ge=0, le=MAX_ID, description="Machines to skip, newest first.")


class LaunchRequest(Body):
    """What to launch: an environment, optionally a flavor and an experiment to bind."""

    model_config = ConfigDict(json_schema_extra={"examples": [
        {"environment": "ccp4", "flavor": "m1.large", "experiment": 12}]})

    environment: str = Field(min_length=1, max_length=200,
                             description="A catalogue environment's name.")
    flavor: str | None = Field(None, max_length=200, description="One of the environment's "
                               "flavors; default: its default flavor.")
    experiment: int | None = Field(None, ge=1, le=MAX_ID,
                                   description="Bind to this investigation (its id).")


class RenameRequest(Body):
    """A machine's new name."""

    model_config = ConfigDict(json_schema_extra={"examples": [
        {"name": "Refinement of crystal 1"}]})

    name: str = Field(max_length=1000,
                      description="1 to 80 printable characters (no line breaks, tabs or "
                                  "control characters); outer spaces are removed. It must "
                                  "differ from the names of the owner's other machines.")


class KeepRunningRequest(Body):
    """How long to keep a ready machine running whatever its desktop connections."""

    model_config = ConfigDict(json_schema_extra={"examples": [{"hours": 8}, {"hours": 0}]})

    hours: float = Field(ge=0, le=720, description="Keep it running this many hours from "
                                                   "now (at most the portal's "
                                                   "keep_running_max_hours, never past its "
                                                   "end); 0 stops keeping it.")


class ActivityReport(Body):
    """A VM agent's periodic report of what happens on the machine (not people's input)."""

    model_config = ConfigDict(json_schema_extra={"examples": [
        {"cpu_percent": 83.5, "sessions": 1, "detail": "load 1.9"}]})

    cpu_percent: float = Field(ge=0, le=100_000, description="CPU use since the last report, "
                                                             "percent of one core summed over "
                                                             "cores.")
    sessions: int = Field(ge=0, le=100_000, description="Logged-in sessions (desktop, RDP, "
                                                        "SSH) of people.")
    detail: str = Field("", max_length=200, description="A short note for administrators.")


class ActivityAccepted(Reply):
    """The report was recorded; ``active``: it counts as activity (no idle stop)."""

    machine_id: str
    active: bool


class MachineEnvironment(Reply):
    """The environment a machine runs."""

    name: str
    title: str


class Phases(Reply):
    """Seconds spent in each phase of the launch; null until the phase has ended."""

    queue: float | None
    provision: float | None
    contextualise: float | None
    total_to_ready: float | None


class MachineLinks(Reply):
    """Where to see, use, stop and start the machine."""

    page: str
    desktop: str
    rdp: str
    stop: str
    start: str
    rename: str
    extend: str


class MachineLifetime(Reply):
    """How long a machine lives (its environment's policy, for its flavor and owner)."""

    expires_at: Timestamp = Field(description="When it will be deleted unless extended.")
    latest_end: Timestamp = Field(description="The latest extensions can take it to.")
    extension: str = Field(description="'auto' (extended at once), 'approval' (an "
                                       "administrator decides) or 'none'.")
    extension_hours: float = Field(description="How much one extension adds.")
    can_extend: bool = Field(description="An extension may be asked for now.")
    extension_pending: bool = Field(description="A request waits for an administrator.")
    idle_stop_at: Timestamp | None = Field(description="When a ready machine will be stopped "
                                                       "as idle unless a desktop is opened; "
                                                       "null when it will not be.")
    keep_running_until: Timestamp | None = Field(description="Its owner keeps it running "
                                                             "until then (not stopped as "
                                                             "idle); null when not.")
    keep_running_limit: Timestamp | None = Field(description="The latest it can be kept "
                                                             "running until now; null when "
                                                             "it cannot be.")


class MachineExperiment(Reply):
    """The experiment a machine was bound to, as recorded at launch."""

    model_config = ConfigDict(extra="allow")  # records keep what their launch wrote

    id: int
    visit_id: str = ""
    title: str = ""
    data_path: str = ""
    facility: str = ""
    name: str = ""
    instruments: list[str] = []


class MachineFolders(Reply):
    """Where the machine's desktop shows the user's folders, as the user sees them there."""

    storage: str | None = Field(description="'~/storage', or null when this machine does not "
                                            "get the user's storage.")
    experiment: str | None = Field(description="'~/experiment-MX31850-12' (read-only), or "
                                               "null without an experiment or when this "
                                               "machine does not get its data.")


class MachineEvent(Reply):
    """One state change of a machine."""

    from_: State | None = Field(alias="from", description="Null on the first event.")
    to: State
    at: Timestamp
    message: str


class Machine(Reply):
    """A machine; ``events`` only on the routes for one machine."""

    id: str
    name: str = Field(description="What its owner calls it; new machines are named after "
                                  "their environment, experiment and launch day "
                                  "('Analysis desktop · MX31850-12 · 3 Dec').")
    owner: str
    environment: MachineEnvironment
    flavor: str
    size: str = Field(description="What its flavor is ('4 cores · 16 GiB'), or the flavor's "
                                  "name where the site does not describe it.")
    state: State
    error_reason: str
    admin_reason: str = Field("", description="Why an administrator stopped or deleted it "
                                              "(shown to its owner); empty otherwise.")
    created_at: Timestamp
    state_changed_at: Timestamp
    expires_at: Timestamp
    lifetime: MachineLifetime
    phases: Phases
    experiment: MachineExperiment | None
    folders: MachineFolders
    can_stop: bool = Field(description="Its provider can stop and start it.")
    links: MachineLinks
    events: list[MachineEvent] = []


class MachineList(Reply):
    """One page of machines, newest first."""

    machines: list[Machine]
    total: int
    limit: int
    offset: int


REQUESTS = (LaunchRequest, RenameRequest, KeepRunningRequest, ActivityReport)
REPLIES = (Machine, MachineList, ActivityAccepted)
