"""Warm pools on cloud machines (issue 20): a pooled VM boots with nothing of any user, its
real agent waits for a claim, and after a claim it sets up its claimer's session only.

The portal is real (SQLite and PostgreSQL) and served over HTTP; the worker is the real
Reconciler with the app's settings over a cloud double whose machines are files
(tests/support/vmpool.py: it keeps each machine's user-data and sends nothing into a
machine, as QEMU and OpenStack do). The agent (contextualisation/agent/daaas-bootstrap) runs as
a host process in pool mode, its machine's file system a folder (bootstrap.json's ``root``),
with the commands that need root or change the host's accounts (useradd, groupadd, getent,
mount, systemctl, chpasswd) scripts on $PATH recording their arguments.
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import requests
from cryptography.hazmat.primitives import serialization as ser
from cryptography.hazmat.primitives.asymmetric import ed25519
from flask import Flask
from sqlalchemy import select

from daaas.portal.auth.service import create_user, get_user
from daaas.portal.bootstrap import service as bootstrap
from daaas.portal.bootstrap.models import MachineContext
from daaas.portal.bootstrap.pooling import ClaimStep, take_claim
from daaas.portal.bootstrap.userdata import inspectable_user_data
from daaas.portal.config import resolve_secret_key
from daaas.portal.db import unit_of_work, utcnow, worker_session_factory
from daaas.portal.experiments.backends import InvestigationInfo
from daaas.portal.experiments.service import snapshot
from daaas.portal.machines import service
from daaas.portal.machines.models import Machine
from daaas.portal.machines.reconciler import Reconciler
from daaas.portal.machines.secrets import bootstrap_token, vnc_password
from daaas.portal.sshkeys.service import add_key
from tests.integration.context_support import bootstrap_document, cloud_config
from tests.support.vmpool import PoolCloud, boot, serve_portal

PROVIDER = "tests.support.vmpool:PoolCloud"
LOCATIONS = ("/archive/MARI/cycle_23_1/RB1234/run1",)


@pytest.fixture
def settings_override(settings_override: dict[str, Any], tmp_path: Path) -> dict[str, Any]:
    """A pool of two dawn desktops on the cloud double; users' storage on an NFS export (its
    folders under ``exports``); experiment data exported by NFS per instrument and cycle."""
    (tmp_path / "exports").mkdir()
    return {**settings_override, "provider": PROVIDER, "warm_pools": "dawn=2",
            "warm_pool_free_sessions": 0, "warm_pool_max_age_minutes": 60,
            "storage_backend": "nfs", "storage_export": "nfs.example.org:/export/{username}",
            "storage_portal_root_template": str(tmp_path / "exports" / "{username}"),
            "experiment_export": "nfs",
            "experiment_export_location": "/archive/{instrument}/{cycle}",
            "experiment_export_source": "nfs.facility.example:/exports/{instrument}/{cycle}"}


@pytest.fixture
def portal(settings_override: dict[str, Any]) -> Iterator[Flask]:
    """The portal on a real HTTP server in a thread; its public_url is that server."""
    with serve_portal(settings_override) as app:
        yield app


def worker(app: Flask) -> tuple[Reconciler, PoolCloud]:
    """The worker as `daaas worker` builds it, over the cloud double."""
    settings = app.extensions["daaas"].settings
    cloud = PoolCloud.from_settings(settings)
    return Reconciler(worker_session_factory(settings.effective_database_url), cloud,
                      secret_key=resolve_secret_key(settings), ready_timeout_seconds=600,
                      settings=settings), cloud


def people(app: Flask, *names: str) -> dict[str, str]:
    """Create the users ``names``, each with an SSH key; return each one's key line."""
    rt = app.extensions["daaas"]
    keys = {}
    with unit_of_work(rt.session_factory) as db:
        for name in names:
            user = create_user(db, rt.settings, name, f"{name}-password")
            line = ed25519.Ed25519PrivateKey.generate().public_key().public_bytes(
                ser.Encoding.OpenSSH, ser.PublicFormat.OpenSSH).decode()
            add_key(db, user, f"{line} {name}@laptop")
            keys[name] = line
    return keys


def claim(app: Flask, username: str, experiment: bool = False) -> str:
    """Launch dawn as ``username`` (bound to an experiment when asked), as the portal does;
    return the machine's id."""
    rt = app.extensions["daaas"]
    bound = None
    if experiment:
        info = InvestigationInfo(id=42, facility="ISIS", name="RB1234", visit_id="RB1234-1",
                                 title="Spin waves", instruments=("MARI",), start_date=None,
                                 end_date=None, members=(), data_locations=LOCATIONS)
        bound = snapshot(info, rt.settings.experiment_data_path_template)
    with unit_of_work(rt.session_factory) as db:
        return service.request_launch(db, rt.settings, rt.catalogue, get_user(db, username),
                                      "dawn", experiment=bound).id


def machine(app: Flask, machine_id: str) -> Machine:
    with app.extensions["daaas"].session_factory() as db:
        row = db.get(Machine, machine_id)
        assert row is not None
        _ = row.user
        return row


def pooled_ids(app: Flask) -> list[str]:
    with app.extensions["daaas"].session_factory() as db:
        return list(db.scalars(select(Machine.id).where(Machine.pool.is_not(None),
                                                        Machine.state != "deleted")
                               .order_by(Machine.created_at)))


def reported(app: Flask, machine_id: str) -> str | None:
    with app.extensions["daaas"].session_factory() as db:
        return db.scalar(select(MachineContext.reported_status)
                         .where(MachineContext.machine_id == machine_id))


def wait_for(check: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def user_text(user_data: bytes) -> str:
    return json.dumps(cloud_config(user_data))


def test_before_a_claim_the_exchange_hands_out_nothing_and_after_it_only_the_claimers(
        portal: Flask) -> None:
    keys = people(portal, "alice", "bob")
    reconciler, cloud = worker(portal)
    reconciler.run_once()  # the pool is filled: two machines of no one, booting
    first, second = pooled_ids(portal)
    user_data = cloud.user_data(first)
    config = cloud_config(user_data)
    document = bootstrap_document(user_data)
    assert config["users"] == [] and "mounts" not in config
    assert document["mode"] == "pool" and "user" not in document
    text = user_text(user_data)
    for nobody in ("alice", "bob", "daaas-pool", "/home/", keys["alice"][:40]):
        assert nobody not in text
    base = portal.extensions["daaas"].settings.public_url + f"/api/v1/context/{first}"
    key = resolve_secret_key(portal.extensions["daaas"].settings)

    traded = requests.post(f"{base}/bootstrap", json={"token": document["token"]}, timeout=30)
    assert traded.status_code == 200
    answer = traded.json()
    r0 = answer.pop("report_token")
    assert answer == {"pooled": True, "files": []}  # no password, key, mount or verifier
    pool_token = {"Authorization": f"Bearer {r0}"}
    assert requests.post(f"{base}/claim", json={}, headers=pool_token,
                         timeout=30).status_code == 403  # not pooled-ready yet
    assert requests.post(f"{base}/status", json={"status": "ready"}, headers=pool_token,
                         timeout=30).status_code == 409  # a pool's machine is not anyone's
    assert requests.post(f"{base}/status", json={"status": "pooled-ready"}, headers=pool_token,
                         timeout=30).status_code == 202
    reconciler.run_once()
    assert machine(portal, first).state == "ready" and machine(portal, first).pool

    began = time.monotonic()
    waiting = requests.post(f"{base}/claim", json={}, headers=pool_token, timeout=30)
    assert waiting.status_code == 204 and waiting.headers["Retry-After"] == "1"
    assert time.monotonic() - began < 3  # in the pool: answered at once, not held 5 s
    assert requests.post(f"{base}/claim", json={}, headers={"Authorization": "Bearer nope"},
                         timeout=30).status_code == 403

    assert claim(portal, "alice", experiment=True) == first  # the oldest ready one
    threading.Timer(0.5, reconciler.run_asked).start()  # the worker hands it over meanwhile
    began = time.monotonic()
    taken = requests.post(f"{base}/claim", json={}, headers=pool_token, timeout=30)
    assert taken.status_code == 200, taken.text
    assert time.monotonic() - began < 5  # held until the hand-over, not answered 204
    answer = taken.json()
    alice = machine(portal, first).user
    assert answer["session"]["user"] == {"name": "alice", "uid": alice.uid, "gid": alice.gid,
                                         "home": "/home/alice", "full_name": alice.display_name}
    assert answer["vnc_password"] == vnc_password(key, first)
    assert answer["ssh_authorized_keys"] == f"{keys['alice']} alice@laptop\n"
    assert answer["session"]["storage_mounts"] == [
        {"fstype": "nfs", "source": "nfs.example.org:/export/alice",
         "target": "/home/alice/storage", "options": "rw,_netdev,nofail"}]
    assert [m["source"] for m in answer["mounts"]] == [
        "nfs.facility.example:/exports/MARI/cycle_23_1/RB1234/run1"]
    assert answer["session"]["vnc_users"] == ":1=alice\n"
    assert "bob" not in json.dumps(answer)
    assert requests.post(f"{base}/claim", json={}, headers=pool_token,
                         timeout=30).status_code == 403  # given once
    user_token = {"Authorization": f"Bearer {answer['report_token']}"}
    assert requests.post(f"{base}/status", json={"status": "ready"}, headers=pool_token,
                         timeout=30).status_code == 403  # the pool's token is dead
    assert requests.post(f"{base}/status", json={"status": "ready"}, headers=user_token,
                         timeout=30).status_code == 202
    reconciler.run_once()
    row = machine(portal, first)
    assert (row.state, row.pool, row.user.username) == ("ready", None, "alice")
    assert cloud.handed(first) == ["alice"] and cloud.handed(second) == []
    assert bootstrap_token(key, first) not in json.dumps(answer)
    with portal.extensions["daaas"].session_factory() as db:  # what administrators are shown
        shown = inspectable_user_data(portal.extensions["daaas"].settings, db.get(Machine, first))
    assert '"mode": "pool"' in shown and "alice" not in shown  # what it booted with
    with portal.extensions["daaas"].session_factory() as db:
        events = [e.message for e in db.get(Machine, first).events]
    assert any("handed to alice; the machine sets itself up" in e for e in events)


def test_the_real_agent_waits_in_the_pool_then_sets_up_its_claimer_only(
        portal: Flask, tmp_path: Path) -> None:
    keys = people(portal, "alice", "bob")
    reconciler, cloud = worker(portal)
    reconciler.run_once()
    ids = pooled_ids(portal)
    vms = {machine_id: boot(tmp_path, f"vm{i}", cloud.user_data(machine_id))
           for i, machine_id in enumerate(ids)}
    try:
        wait_for(lambda: all(reported(portal, m) == "pooled-ready" for m in ids), 60,
                 "both agents to report pooled-ready")
        reconciler.run_once()
        assert {machine(portal, m).state for m in ids} == {"ready"}
        time.sleep(1.5)  # the agents ask for their claim meanwhile: nothing of anyone
        for vm in vms.values():
            assert vm.process is not None and vm.process.poll() is None  # still waiting
            assert not (vm.root / "home").exists()
            assert vm.recorded("useradd") == vm.recorded("groupadd") == ""
            assert "tigervncserver" not in vm.recorded("systemctl")
            assert not (vm.root / "etc" / "tigervnc" / "vncserver.users").exists()
        owners = {claim(portal, "alice"): "alice", claim(portal, "bob"): "bob"}
        assert set(owners) == set(ids)
        reconciler.run_asked()  # the hand-over: the agents' next claim request gets it
        results = {m: vms[m].finish() for m in ids}
    finally:
        for vm in vms.values():
            if vm.process is not None and vm.process.poll() is None:
                vm.process.kill()
                vm.process.wait(10)
    key = resolve_secret_key(portal.extensions["daaas"].settings)
    for machine_id, (status, stderr) in results.items():
        owner = owners[machine_id]
        other = "bob" if owner == "alice" else "alice"
        vm = vms[machine_id]
        assert status == 0, stderr
        assert "claimed for " + owner in stderr and "daaas-bootstrap: ready" in stderr
        assert vnc_password(key, machine_id) not in stderr
        row = machine(portal, machine_id).user
        assert f"--uid {row.uid} --gid {row.gid} --home-dir /home/{owner}" \
            in vm.recorded("useradd")
        assert vm.recorded("useradd").split()[-1] == owner
        assert f"--gid {row.gid} {owner}" in vm.recorded("groupadd")
        home = vm.root / "home" / owner
        assert os.stat(home).st_uid == row.uid
        assert (home / ".vnc" / "passwd").exists()
        assert (home / ".ssh" / "authorized_keys").read_text() == \
            f"{keys[owner]} {owner}@laptop\n"
        assert f"nfs.example.org:/export/{owner} {home / 'storage'}" in vm.recorded("mount")
        assert other not in vm.recorded("mount") + vm.recorded("useradd")
        assert not (vm.root / "home" / other).exists()
        assert (vm.root / "etc" / "tigervnc" / "vncserver.users").read_text() == f":1={owner}\n"
        desktop = sorted(p.name for p in (home / "Desktop").iterdir())
        assert desktop and all(p.endswith(".desktop") for p in desktop)
        assert all(os.stat(home / "Desktop" / p).st_uid == row.uid for p in desktop)
        assert "enable --now tigervncserver@:1.service" in vm.recorded("systemctl")
        assert (vm.root / "etc" / "daaas" / "secrets" / "report-token").exists()
    reconciler.run_once()
    for machine_id, owner in owners.items():
        row = machine(portal, machine_id)
        assert (row.state, row.user.username, row.pool) == ("ready", owner, None)
        assert cloud.handed(machine_id) == [owner]


def test_the_phases_hold_when_the_web_hosts_clocks_differ(portal: Flask) -> None:
    """The exchange, the pooled-ready report, the claim's answer and the ready report each
    handled by a web host whose clock is further behind: the phases stay in order."""
    people(portal, "alice")
    reconciler, cloud = worker(portal)
    reconciler.run_once()
    first = pooled_ids(portal)[0]
    token = bootstrap_document(cloud.user_data(first))["token"]
    rt, now = portal.extensions["daaas"], utcnow()
    with unit_of_work(rt.session_factory) as db:
        r0 = bootstrap.exchange(db, rt.settings, first, token, now)["report_token"]
    with unit_of_work(rt.session_factory) as db:
        bootstrap.record_report(db, first, r0, "pooled-ready", "", now - timedelta(seconds=5))
    reconciler.run_once()
    assert claim(portal, "alice") == first
    reconciler.run_asked()
    with unit_of_work(rt.session_factory) as db:
        step, taken, r1 = take_claim(db, first, r0, now - timedelta(seconds=10))
        assert step is ClaimStep.TAKE and taken is not None
    with unit_of_work(rt.session_factory) as db:
        bootstrap.record_report(db, first, r1, "ready", "", now - timedelta(seconds=20))
    reconciler.run_once()
    row = machine(portal, first)
    assert (row.state, row.user.username) == ("ready", "alice")
