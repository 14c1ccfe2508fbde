"""Bodies of the experiments routes of /api/v1 (see :mod:`daaas.portal.api.schema`)."""

from __future__ import annotations

from pydantic import BaseModel

from daaas.portal.api.schema import Reply
from daaas.portal.machines.schemas import Machine


class Member(Reply):
    """A person on an experiment, with their role in it."""

    name: str
    full_name: str
    role: str


class Experiment(Reply):
    """An experiment (an ICAT investigation); ``sessions`` only on the route for one."""

    id: int
    facility: str
    name: str
    visit_id: str
    title: str
    instruments: list[str]
    start_date: str | None
    end_date: str | None
    current: bool
    members: list[Member]
    data_path: str
    sessions: list[Machine] = []


class ExperimentList(Reply):
    """The user's experiments (member or instrument scientist), current ones first."""

    experiments: list[Experiment]


REQUESTS: tuple[type[BaseModel], ...] = ()
REPLIES = (Experiment, ExperimentList)
