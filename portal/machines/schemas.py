"""Bodies of the machines routes of /api/v1 (see :mod:`daaas.portal.api.schema`)."""

from __future__ import annotations

from pydantic import ConfigDict, Field

from daaas.portal.api.schema import Body, Reply, Timestamp
from daaas.portal.machines.states import State


class LaunchRequest(Body):
    """What to launch: an environment, optionally a flavor and an experiment to bind."""

    model_config = ConfigDict(json_schema_extra={"examples": [
        {"environment": "ccp4", "flavor": "m1.large", "experiment": 12}]})

    environment: str = Field(min_length=1, description="A catalogue environment's name.")
    flavor: str | None = Field(None, description="One of the environment's flavors; default: "
                                                 "its default flavor.")
    experiment: int | None = Field(None, description="Bind to this investigation (its id).")


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


class MachineEvent(Reply):
    """One state change of a machine."""

    from_: State | None = Field(alias="from", description="Null on the first event.")
    to: State
    at: Timestamp
    message: str


class Machine(Reply):
    """A machine; ``events`` only on the routes for one machine."""

    id: str
    owner: str
    environment: MachineEnvironment
    flavor: str
    state: State
    error_reason: str
    created_at: Timestamp
    state_changed_at: Timestamp
    expires_at: Timestamp
    phases: Phases
    experiment: MachineExperiment | None
    can_stop: bool = Field(description="Its provider can stop and start it.")
    links: MachineLinks
    events: list[MachineEvent] = []


class MachineList(Reply):
    """One page of machines, newest first."""

    machines: list[Machine]
    total: int
    limit: int
    offset: int


REQUESTS = (LaunchRequest,)
REPLIES = (Machine, MachineList)
