"""The experiment-metadata seam: which investigations a user may use, and what they hold.

The embedded default reads the ICAT-core tables in the portal's database
(:mod:`daaas.portal.experiments.models`); a real ICAT server plugs in behind the same interface
(:mod:`daaas.portal.experiments.icat`). The ``experiments_backend`` setting names one in
:data:`EXPERIMENT_BACKENDS` or any ``module:Class``.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from datetime import datetime
from functools import cached_property
from pathlib import PurePosixPath
from typing import TYPE_CHECKING, ClassVar

from sqlalchemy import Select, or_, select
from sqlalchemy.orm import Session, selectinload, sessionmaker

from daaas.portal.backends import Registry
from daaas.portal.db import make_engine, make_session_factory, utcnow
from daaas.portal.errors import NotFound
from daaas.portal.experiments.models import (
    IcatUser,
    InstrumentScientist,
    Investigation,
    InvestigationInstrument,
    InvestigationUser,
)

if TYPE_CHECKING:
    from daaas.portal.config import Settings


@dataclass(frozen=True)
class Member:
    """A person on an investigation and their role."""

    name: str
    full_name: str
    role: str


@dataclass(frozen=True)
class InvestigationInfo:
    """One investigation as the portal needs it."""

    id: int
    facility: str
    name: str
    visit_id: str
    title: str
    instruments: tuple[str, ...]
    start_date: datetime | None
    end_date: datetime | None
    members: tuple[Member, ...]
    data_locations: tuple[str, ...]

    @property
    def label(self) -> str:
        """A short label: ``MX12345-1 · Title``."""
        return f"{self.visit_id} · {self.title}"

    def is_current(self, now: datetime | None = None) -> bool:
        """Return True while the investigation's dates include ``now`` (default: now)."""
        moment = now or utcnow()
        return (self.start_date is None or self.start_date <= moment) and \
            (self.end_date is None or moment <= self.end_date)

    def data_path(self, template: str) -> str:
        """Return where the data lives: the datasets' common folder, else ``template``.

        ``template`` may use {facility}, {instrument}, {year}, {visit_id} and {name}.
        """
        if self.data_locations:
            parents = [PurePosixPath(location) for location in self.data_locations]
            common = parents[0]
            while not all(p == common or common in p.parents for p in parents):
                common = common.parent
            return str(common)
        year = self.start_date.year if self.start_date else utcnow().year
        instrument = self.instruments[0] if self.instruments else "unknown"
        return template.format(facility=self.facility, instrument=instrument, year=year,
                               visit_id=self.visit_id, name=self.name)


class ExperimentBackend(ABC):
    """Answers questions about investigations."""

    name: ClassVar[str]

    @classmethod
    @abstractmethod
    def from_settings(cls, settings: Settings) -> ExperimentBackend:
        """Return the backend configured by the settings.

        Raises ConfigError when a setting the backend needs is missing or unusable.
        """

    @abstractmethod
    def investigations_for(self, username: str) -> list[InvestigationInfo]:
        """Return the investigations ``username`` may use (member or instrument scientist),
        current ones first, then newest first. Raises ExperimentsUnavailable (a PortalError)
        when the catalogue cannot be reached."""

    @abstractmethod
    def get(self, investigation_id: int) -> InvestigationInfo:
        """Return one investigation. Raises NotFound, or ExperimentsUnavailable."""

    def may_use(self, username: str, investigation_id: int) -> bool:
        """Return True when ``username`` may use the investigation (member or scientist)."""
        return any(i.id == investigation_id for i in self.investigations_for(username))

    def never_observed(self, username: str) -> bool:
        """Return True when nothing is recorded about ``username``'s investigations yet, so
        :meth:`first_look` would ask the catalogue (a backend that records nothing: False).
        Raises nothing beyond database errors."""
        return False

    def first_look(self, username: str) -> None:
        """Ask the catalogue about ``username`` and record the answer, so that the pages
        that follow read it (a backend that records nothing: nothing to do). Raises
        nothing: a failure is logged, and the worker asks again at its next look."""
        return None

    def refresh_due(self) -> int:
        """Ask the catalogue again about the users whose recorded answer is due (the worker
        calls this; a backend that records nothing has nothing to do). Return how many users
        were asked. Raises nothing beyond database errors."""
        return 0


class EmbeddedExperiments(ExperimentBackend):
    """Investigations kept in the portal's own ICAT-core tables (read-only, own engine)."""

    name = "embedded"

    def __init__(self, database_url: str) -> None:
        self.database_url = database_url

    @classmethod
    def from_settings(cls, settings: Settings) -> EmbeddedExperiments:
        """Return the backend reading the portal's database. Raises nothing (the database is
        opened on first use)."""
        return cls(settings.effective_database_url)

    @cached_property
    def session_factory(self) -> sessionmaker[Session]:
        """The sessions this backend reads with, on an engine of its own made on first use that
        keeps no connection open between reads."""
        return make_session_factory(make_engine(self.database_url, pooled=False))

    def investigations_for(self, username: str) -> list[InvestigationInfo]:
        """Return the user's investigations as members or instrument scientists."""
        member = select(InvestigationUser.investigation_id).join(IcatUser).where(
            IcatUser.name == username)
        scientist = (select(InvestigationInstrument.investigation_id)
                     .join(InstrumentScientist, InstrumentScientist.instrument_id
                           == InvestigationInstrument.instrument_id)
                     .join(IcatUser, IcatUser.id == InstrumentScientist.user_id)
                     .where(IcatUser.name == username))
        query = _loaded().where(or_(Investigation.id.in_(member), Investigation.id.in_(scientist)))
        with self.session_factory() as db:
            found = [_info(row) for row in db.scalars(query)]
        return sort_current_first(found)

    def get(self, investigation_id: int) -> InvestigationInfo:
        """Return the investigation; raises NotFound."""
        with self.session_factory() as db:
            row = db.scalar(_loaded().where(Investigation.id == investigation_id))
            if row is None:
                raise NotFound("There is no such experiment. Pick one of yours from the list.")
            return _info(row)


def sort_current_first(found: list[InvestigationInfo]) -> list[InvestigationInfo]:
    """Return investigations with the current ones first, then the newest first."""
    now = utcnow()
    return sorted(found, key=lambda i: (not i.is_current(now),
                                        -(i.start_date.timestamp() if i.start_date else 0)))


def _loaded() -> Select[Investigation]:
    return select(Investigation).options(
        selectinload(Investigation.facility),
        selectinload(Investigation.instruments).selectinload(InvestigationInstrument.instrument),
        selectinload(Investigation.users).selectinload(InvestigationUser.user),
        selectinload(Investigation.datasets))


def _info(row: Investigation) -> InvestigationInfo:
    return InvestigationInfo(
        id=row.id, facility=row.facility.name, name=row.name, visit_id=row.visit_id,
        title=row.title, instruments=tuple(i.instrument.name for i in row.instruments),
        start_date=row.start_date, end_date=row.end_date,
        members=tuple(Member(u.user.name, u.user.full_name, u.role) for u in row.users),
        data_locations=tuple(d.location for d in row.datasets if d.location))


#: The experiment backends by ``experiments_backend`` name; the ICAT client is imported only
#: when chosen.
EXPERIMENT_BACKENDS: Registry[ExperimentBackend] = Registry(
    "experiments backend", "experiments_backend", ExperimentBackend,
    {"embedded": "daaas.portal.experiments.backends:EmbeddedExperiments",
     "icat": "daaas.portal.experiments.icat:IcatExperiments"})
