"""The user's storage outlives every local session; experiment data is read-only in it."""

from __future__ import annotations

import errno
import os
import time
from pathlib import Path
from typing import Any

import pytest
from flask import Flask

from daaas.portal.auth.service import get_user
from daaas.portal.db import unit_of_work
from daaas.portal.machines import service
from daaas.portal.machines.models import Machine
from daaas.portal.machines.worker import make_reconciler
from daaas.portal.providers.local import LocalProvider
from tests.integration.process_scan import session_processes

pytestmark = pytest.mark.skipif(not Path("/usr/bin/Xvnc").exists() and not os.environ.get("CI"),
                                reason="TigerVNC (Xvnc) not installed")


def launch_ready(app: Flask, experiment: dict[str, Any] | None = None) -> tuple[str, Path]:
    rt = app.extensions["daaas"]
    with unit_of_work(rt.session_factory) as db:
        machine_id = service.request_launch(db, rt.settings, rt.catalogue,
                                            get_user(db, "scientist"), "base-desktop",
                                            experiment=experiment).id
    worker = make_reconciler(rt)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        worker.run_once()
        with rt.session_factory() as db:
            state = db.get(Machine, machine_id).state  # type: ignore[union-attr]
        if state == "ready":
            return machine_id, rt.settings.var_path / "sessions" / machine_id / "home"
        assert state != "error"
        time.sleep(0.3)
    raise AssertionError("machine did not become ready")


def delete(app: Flask, machine_id: str) -> None:
    rt = app.extensions["daaas"]
    with unit_of_work(rt.session_factory) as db:
        service.request_delete(db, get_user(db, "scientist"), machine_id)
    make_reconciler(rt).run_once()
    assert session_processes(machine_id) == []


def test_a_file_written_in_one_session_is_in_the_next(app: Flask) -> None:
    first, home = launch_ready(app)
    try:
        (home / "storage" / "results.txt").write_text("refined model R=0.19\n")
    finally:
        delete(app, first)
    storage = app.extensions["daaas"].settings.var_path / "storage" / "scientist"
    assert (storage / "results.txt").read_text() == "refined model R=0.19\n"
    second, home = launch_ready(app)
    try:
        assert (home / "storage" / "results.txt").read_text() == "refined model R=0.19\n"
    finally:
        delete(app, second)
    assert (storage / "results.txt").exists()


@pytest.mark.skipif(os.geteuid() != 0, reason="read-only bind mounts need root")
def test_experiment_data_is_read_only_in_the_session(app: Flask) -> None:
    rt = app.extensions["daaas"]
    mine = rt.experiments.investigations_for("scientist")[0]
    from daaas.portal.experiments.service import snapshot

    record = snapshot(mine, rt.settings.experiment_data_path_template)
    machine_id, home = launch_ready(app, record)
    data = home / f"experiment-{mine.visit_id}"
    try:
        assert sorted(p.name for p in data.iterdir()) == ["xtal1", "xtal2"]
        with pytest.raises(OSError) as refused:
            (data / "xtal1" / "tampered.cbf").write_text("x")
        assert refused.value.errno == errno.EROFS
    finally:
        delete(app, machine_id)
    assert (Path(record["data_path"]) / "xtal1" / "xtal1_0001.cbf").is_file()
    assert not (Path(record["data_path"]) / "xtal1" / "tampered.cbf").exists()
    assert LocalProvider(var_dir=rt.settings.var_dir).list_machine_ids() == set()
