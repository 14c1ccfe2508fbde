"""A machine keeps the catalogue entry it was launched from: stored as JSON, read back typed."""

from __future__ import annotations

import pytest
from flask import Flask
from pydantic import ValidationError
from sqlalchemy import JSON, select, type_coerce, update

from daaas.catalogue import Environment
from daaas.portal.auth.service import get_user
from daaas.portal.db import unit_of_work
from daaas.portal.machines import service
from daaas.portal.machines.models import Machine


def launch(app: Flask, environment: str = "ccp4") -> str:
    rt = app.extensions["daaas"]
    with unit_of_work(rt.session_factory) as db:
        return service.request_launch(db, rt.settings, rt.catalogue,
                                      get_user(db, "scientist"), environment).id


def test_the_row_holds_the_entry_as_json_and_reads_back_the_typed_environment(app: Flask) -> None:
    machine_id = launch(app)
    entry = app.extensions["daaas"].catalogue.environments["ccp4"]
    with app.extensions["daaas"].session_factory() as db:
        stored = db.execute(select(type_coerce(Machine.__table__.c.environment, JSON))
                            .where(Machine.id == machine_id)).scalar_one()
        machine = db.get(Machine, machine_id)
        assert machine is not None
        assert isinstance(machine.environment, Environment) and machine.environment == entry
    assert stored == entry.to_dict()  # plain JSON in the database, typed everywhere else


def test_machines_of_one_entry_share_one_parsed_snapshot(app: Flask) -> None:
    first, second = launch(app), launch(app)
    with app.extensions["daaas"].session_factory() as db:
        one, two = db.get(Machine, first), db.get(Machine, second)
        assert one is not None and two is not None
        assert one.environment is two.environment


def test_a_snapshot_that_is_not_an_environment_is_refused_when_read(app: Flask) -> None:
    machine_id = launch(app)
    with unit_of_work(app.extensions["daaas"].session_factory) as db:
        db.execute(update(Machine.__table__).where(Machine.__table__.c.id == machine_id)
                   .values(environment=type_coerce({"name": "ccp4", "title": "no flavors"}, JSON)))
    with app.extensions["daaas"].session_factory() as db, pytest.raises(ValidationError):
        db.get(Machine, machine_id)
