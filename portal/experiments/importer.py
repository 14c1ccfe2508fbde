"""Import a facility's experiments into the embedded catalogue from a YAML or JSON file.

The format (documented in docs/experiments.md)::

    facilities:
      - {name: DLS, full_name: Diamond Light Source,
         instruments: [{name: I03, full_name: "I03: macromolecular crystallography"}]}
    users: [{name: alice, full_name: Alice Beam}]
    instrument_scientists: [{facility: DLS, instrument: I03, user: alice}]
    investigations:
      - facility: DLS
        name: MX12345
        visit_id: MX12345-1
        title: Structure of a membrane transporter
        start_date: 2026-11-18T08:00:00Z
        end_date: 2026-11-25T08:00:00Z
        instruments: [I03]
        users: [{name: alice, role: principal_experimenter}]
        datasets:
          - {name: xtal1, location: /data/i03/2026/MX12345-1/xtal1,
             files: [{name: xtal1_0001.cbf, size: 6291456}]}

Importing is idempotent: everything is matched by its natural key (names, visit id) and updated.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from sqlalchemy import select
from sqlalchemy.orm import Session

from daaas.portal.errors import InvalidInput
from daaas.portal.experiments.models import (
    Datafile,
    Dataset,
    Facility,
    IcatUser,
    Instrument,
    InstrumentScientist,
    Investigation,
    InvestigationInstrument,
    InvestigationUser,
)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class FileInstrument(_Strict):
    """An instrument of a facility."""

    name: str
    full_name: str = ""


class FileFacility(_Strict):
    """A facility with its instruments."""

    name: str
    full_name: str = ""
    instruments: list[FileInstrument] = Field(default_factory=list)


class FileUser(_Strict):
    """A person (their portal user name)."""

    name: str
    full_name: str = ""


class FileMember(_Strict):
    """A member of an investigation."""

    name: str
    role: str = "experimenter"


class FileScientist(_Strict):
    """An instrument scientist."""

    facility: str
    instrument: str
    user: str


class FileDatafile(_Strict):
    """A data file."""

    name: str
    size: int = 0
    location: str = ""


class FileDataset(_Strict):
    """A dataset and its files."""

    name: str
    location: str = ""
    description: str = ""
    files: list[FileDatafile] = Field(default_factory=list)


class FileInvestigation(_Strict):
    """An investigation."""

    facility: str
    name: str
    visit_id: str
    title: str
    start_date: datetime | None = None
    end_date: datetime | None = None
    instruments: list[str] = Field(default_factory=list)
    users: list[FileMember] = Field(default_factory=list)
    datasets: list[FileDataset] = Field(default_factory=list)


class ExperimentsFile(_Strict):
    """A whole import file."""

    facilities: list[FileFacility] = Field(default_factory=list)
    users: list[FileUser] = Field(default_factory=list)
    instrument_scientists: list[FileScientist] = Field(default_factory=list)
    investigations: list[FileInvestigation] = Field(default_factory=list)


def read_file(path: Path) -> ExperimentsFile:
    """Parse and check an import file (YAML or JSON).

    Raises InvalidInput naming the file, the field and what was expected.
    """
    try:
        text = path.read_text(encoding="utf-8")
        data = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
    except (OSError, ValueError, yaml.YAMLError) as exc:
        raise InvalidInput(f"{path}: cannot read the experiments file: {exc}") from None
    return parse(data, str(path))


def parse(data: Any, source: str) -> ExperimentsFile:
    """Check already-loaded data; raises InvalidInput naming ``source`` and the field."""
    try:
        return ExperimentsFile.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(part) for part in first["loc"])
        raise InvalidInput(f"{source}: field '{field}': {first['msg']}") from None


def import_experiments(db: Session, content: ExperimentsFile) -> dict[str, int]:
    """Create or update everything in ``content``; returns counts per kind.

    Raises InvalidInput for a reference to a facility, instrument or user that is not defined.
    """
    for facility in content.facilities:
        row = _facility(db, facility.name, facility.full_name)
        for instrument in facility.instruments:
            _instrument(db, row, instrument.name, instrument.full_name)
    for user in content.users:
        _user(db, user.name, user.full_name)
    for scientist in content.instrument_scientists:
        known = _existing_instrument(db, scientist.facility, scientist.instrument)
        person = _existing_user(db, scientist.user)
        if not db.scalar(select(InstrumentScientist).where(
                InstrumentScientist.instrument_id == known.id,
                InstrumentScientist.user_id == person.id)):
            db.add(InstrumentScientist(instrument=known, user=person))
    for investigation in content.investigations:
        _investigation(db, investigation)
    db.flush()
    return {"facilities": len(content.facilities), "users": len(content.users),
            "investigations": len(content.investigations)}


def _facility(db: Session, name: str, full_name: str) -> Facility:
    row = db.scalar(select(Facility).where(Facility.name == name))
    if row is None:
        row = Facility(name=name)
        db.add(row)
    row.full_name = full_name or row.full_name or name
    return row


def _instrument(db: Session, facility: Facility, name: str, full_name: str) -> Instrument:
    db.flush()
    row = db.scalar(select(Instrument).where(Instrument.facility_id == facility.id,
                                             Instrument.name == name))
    if row is None:
        row = Instrument(facility=facility, name=name)
        db.add(row)
    row.full_name = full_name or row.full_name or name
    return row


def _user(db: Session, name: str, full_name: str = "") -> IcatUser:
    row = db.scalar(select(IcatUser).where(IcatUser.name == name))
    if row is None:
        row = IcatUser(name=name)
        db.add(row)
    row.full_name = full_name or row.full_name or name
    return row


def _existing_instrument(db: Session, facility: str, name: str) -> Instrument:
    db.flush()
    row = db.scalar(select(Instrument).join(Facility).where(Facility.name == facility,
                                                            Instrument.name == name))
    if row is None:
        raise InvalidInput(f"Instrument '{name}' of facility '{facility}' is not defined; "
                           "list it under its facility's instruments.")
    return row


def _existing_user(db: Session, name: str) -> IcatUser:
    db.flush()
    row = db.scalar(select(IcatUser).where(IcatUser.name == name))
    return row if row is not None else _user(db, name)


def _investigation(db: Session, item: FileInvestigation) -> None:
    facility = db.scalar(select(Facility).where(Facility.name == item.facility))
    if facility is None:
        raise InvalidInput(f"Investigation {item.visit_id}: facility '{item.facility}' is not "
                           "defined; list it under facilities.")
    row = db.scalar(select(Investigation).where(
        Investigation.facility_id == facility.id, Investigation.name == item.name,
        Investigation.visit_id == item.visit_id))
    if row is None:
        row = Investigation(facility=facility, name=item.name, visit_id=item.visit_id)
        db.add(row)
    row.title, row.start_date, row.end_date = item.title, _utc(item.start_date), \
        _utc(item.end_date)
    db.flush()
    for name in item.instruments:
        instrument = _existing_instrument(db, item.facility, name)
        if not any(link.instrument_id == instrument.id for link in row.instruments):
            db.add(InvestigationInstrument(investigation=row, instrument=instrument))
    for member in item.users:
        user = _existing_user(db, member.name)
        if not any(u.user_id == user.id and u.role == member.role for u in row.users):
            db.add(InvestigationUser(investigation=row, user=user, role=member.role))
    for dataset in item.datasets:
        _dataset(db, row, dataset)


def _dataset(db: Session, investigation: Investigation, item: FileDataset) -> None:
    row = next((d for d in investigation.datasets if d.name == item.name), None)
    if row is None:
        row = Dataset(investigation=investigation, name=item.name)
        db.add(row)
    row.location, row.description = item.location, item.description
    db.flush()
    for datafile in item.files:
        existing = next((f for f in row.datafiles if f.name == datafile.name), None)
        if existing is None:
            existing = Datafile(dataset=row, name=datafile.name)
            db.add(existing)
        existing.file_size = datafile.size
        existing.location = datafile.location or f"{item.location.rstrip('/')}/{datafile.name}"


def _utc(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
