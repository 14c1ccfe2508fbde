"""The user's storage outlives every local session; experiment data is read-only in it."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest
from flask import Flask

from daaas.portal.providers.local import LocalProvider
from tests.support.machines import delete_now, launch_ready

pytestmark = pytest.mark.skipif(not Path("/usr/bin/Xvnc").exists() and not os.environ.get("CI"),
                                reason="TigerVNC (Xvnc) not installed")


def home_of(app: Flask, machine_id: str) -> Path:
    """The local desktop's home folder (in the session's folder)."""
    return Path(app.extensions["daaas"].settings.var_path / "sessions" / machine_id / "home")


def test_a_file_written_in_one_session_is_in_the_next(app: Flask) -> None:
    first = launch_ready(app)
    home = home_of(app, first)
    try:
        (home / "storage" / "results.txt").write_text("refined model R=0.19\n")
    finally:
        delete_now(app, "scientist", first)
    storage = app.extensions["daaas"].settings.var_path / "storage" / "scientist"
    assert (storage / "results.txt").read_text() == "refined model R=0.19\n"
    second = launch_ready(app)
    home = home_of(app, second)
    try:
        assert (home / "storage" / "results.txt").read_text() == "refined model R=0.19\n"
    finally:
        delete_now(app, "scientist", second)
    assert (storage / "results.txt").exists()


@pytest.mark.skipif(os.geteuid() != 0, reason="read-only bind mounts need root")
def test_experiment_data_is_read_only_in_the_session(app: Flask) -> None:
    rt = app.extensions["daaas"]
    mine = rt.experiments.investigations_for("scientist")[0]
    from daaas.portal.experiments.service import snapshot

    record = snapshot(mine, rt.settings.experiment_data_path_template)
    machine_id = launch_ready(app, experiment=record)
    home = home_of(app, machine_id)
    data = home / f"experiment-{mine.visit_id}"
    try:
        assert sorted(p.name for p in data.iterdir()) == ["xtal1", "xtal2"]
        with pytest.raises(OSError) as refused:
            (data / "xtal1" / "tampered.cbf").write_text("x")
        assert refused.value.errno == errno.EROFS
    finally:
        delete_now(app, "scientist", machine_id)
    assert (Path(record["data_path"]) / "xtal1" / "xtal1_0001.cbf").is_file()
    assert not (Path(record["data_path"]) / "xtal1" / "tampered.cbf").exists()
    assert LocalProvider(var_dir=rt.settings.var_dir).list_machine_ids() == set()
