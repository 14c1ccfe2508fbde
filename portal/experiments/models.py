"""The embedded experiment catalogue: tables that follow ICAT's core schema and names.

Facility, Instrument, User, Investigation (name + visitId + title + startDate/endDate),
InvestigationUser (with role), InvestigationInstrument, InstrumentScientist, Dataset (with
location) and Datafile. Table names carry an ``icat_`` prefix; ICAT's ``User.name`` is the
portal's user name.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, ForeignKey, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from daaas.portal.db import Base, UTCDateTime


class Facility(Base):
    """A facility (ICAT Facility)."""

    __tablename__ = "icat_facility"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(255), unique=True)
    full_name: Mapped[str] = mapped_column(String(255), default="")


class Instrument(Base):
    """An instrument or beamline (ICAT Instrument)."""

    __tablename__ = "icat_instrument"
    __table_args__ = (UniqueConstraint("facility_id", "name"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    facility_id: Mapped[int] = mapped_column(ForeignKey("icat_facility.id"))
    name: Mapped[str] = mapped_column(String(255))
    full_name: Mapped[str] = mapped_column(String(255), default="")

    facility: Mapped[Facility] = relationship()


class IcatUser(Base):
    """A person known to the experiment catalogue (ICAT User); ``name`` is the user name."""

    __tablename__ = "icat_user"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(255), unique=True)
    full_name: Mapped[str] = mapped_column(String(255), default="")


class Investigation(Base):
    """An experiment or visit (ICAT Investigation)."""

    __tablename__ = "icat_investigation"
    __table_args__ = (UniqueConstraint("facility_id", "name", "visit_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    facility_id: Mapped[int] = mapped_column(ForeignKey("icat_facility.id"))
    name: Mapped[str] = mapped_column(String(255))
    visit_id: Mapped[str] = mapped_column(String(255))
    title: Mapped[str] = mapped_column(String(255))
    start_date: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    end_date: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)

    facility: Mapped[Facility] = relationship()
    users: Mapped[list[InvestigationUser]] = relationship(back_populates="investigation")
    instruments: Mapped[list[InvestigationInstrument]] = relationship(
        back_populates="investigation")
    datasets: Mapped[list[Dataset]] = relationship(back_populates="investigation")


class InvestigationUser(Base):
    """A person's membership of an investigation, with their role (ICAT InvestigationUser)."""

    __tablename__ = "icat_investigation_user"
    __table_args__ = (UniqueConstraint("investigation_id", "user_id", "role"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    investigation_id: Mapped[int] = mapped_column(ForeignKey("icat_investigation.id"),
                                                  index=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("icat_user.id"), index=True)
    role: Mapped[str] = mapped_column(String(255), default="experimenter")

    investigation: Mapped[Investigation] = relationship(back_populates="users")
    user: Mapped[IcatUser] = relationship()


class InvestigationInstrument(Base):
    """An instrument used by an investigation (ICAT InvestigationInstrument)."""

    __tablename__ = "icat_investigation_instrument"
    __table_args__ = (UniqueConstraint("investigation_id", "instrument_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    investigation_id: Mapped[int] = mapped_column(ForeignKey("icat_investigation.id"),
                                                  index=True)
    instrument_id: Mapped[int] = mapped_column(ForeignKey("icat_instrument.id"))

    investigation: Mapped[Investigation] = relationship(back_populates="instruments")
    instrument: Mapped[Instrument] = relationship()


class InstrumentScientist(Base):
    """A scientist responsible for an instrument (ICAT InstrumentScientist)."""

    __tablename__ = "icat_instrument_scientist"
    __table_args__ = (UniqueConstraint("instrument_id", "user_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    instrument_id: Mapped[int] = mapped_column(ForeignKey("icat_instrument.id"), index=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("icat_user.id"), index=True)

    instrument: Mapped[Instrument] = relationship()
    user: Mapped[IcatUser] = relationship()


class Dataset(Base):
    """A set of data files of an investigation, with where it lives (ICAT Dataset)."""

    __tablename__ = "icat_dataset"
    __table_args__ = (UniqueConstraint("investigation_id", "name"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    investigation_id: Mapped[int] = mapped_column(ForeignKey("icat_investigation.id"),
                                                  index=True)
    name: Mapped[str] = mapped_column(String(255))
    location: Mapped[str] = mapped_column(Text, default="")
    description: Mapped[str] = mapped_column(Text, default="")

    investigation: Mapped[Investigation] = relationship(back_populates="datasets")
    datafiles: Mapped[list[Datafile]] = relationship(back_populates="dataset")


class Datafile(Base):
    """One data file (ICAT Datafile)."""

    __tablename__ = "icat_datafile"
    __table_args__ = (UniqueConstraint("dataset_id", "name"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    dataset_id: Mapped[int] = mapped_column(ForeignKey("icat_dataset.id"), index=True)
    name: Mapped[str] = mapped_column(String(255))
    location: Mapped[str] = mapped_column(Text, default="")
    file_size: Mapped[int] = mapped_column(BigInteger, default=0)

    dataset: Mapped[Dataset] = relationship(back_populates="datafiles")
