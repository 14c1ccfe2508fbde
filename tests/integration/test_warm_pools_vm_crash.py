"""Warm pools on cloud machines (issue 20): a real `daaas worker` SIGKILLed between a claim and
its hand-over. The machine stays the claimer's (the next worker hands it over and the real
agent sets it up for them) or, when it never reports, the ready timeout fails and deletes it;
it never goes back to the pool, which is refilled with a new machine. And the VM's ready report
wakes the worker: a claimed VM is ready within seconds although the worker's cycle is minutes.

The portal is served over HTTP in the test; the workers are real processes over the file
cloud double (tests/support/vmpool.py), so the cloud outlives each of them.
"""

from __future__ import annotations

import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from flask import Flask

from tests.integration.context_support import bootstrap_document
from tests.support.machines import launch, machines_in, start_worker, wait_for
from tests.support.vmpool import PoolCloud, Vm, boot, serve_portal

POOL = {"DAAAS_WARM_POOLS": "dawn=1", "DAAAS_WARM_POOL_FREE_SESSIONS": "0"}
CLOUD, PAUSED = "tests.support.vmpool:PoolCloud", "tests.support.vmpool:PausedCloud"


@pytest.fixture
def settings_override(settings_override: dict[str, Any]) -> dict[str, Any]:
    return {**settings_override, "provider": CLOUD, "warm_pools": "dawn=1",
            "warm_pool_free_sessions": 0}


@pytest.fixture
def portal(settings_override: dict[str, Any]) -> Iterator[Flask]:
    with serve_portal(settings_override) as app:
        yield app


def worker(override: dict[str, Any], app: Flask, provider: str = CLOUD,
           **environ: str) -> subprocess.Popen[bytes]:
    """A real worker over the file cloud, its machines calling the served portal."""
    return start_worker(override, provider, DAAAS_PUBLIC_URL=app.extensions[
        "daaas"].settings.public_url, **POOL, **environ)


def stop(process: subprocess.Popen[bytes], kill: bool = False) -> None:
    if kill:
        process.send_signal(signal.SIGKILL)
    else:
        process.terminate()
    process.wait(30)


def row(url: str, machine_id: str) -> Any:
    return next(m for m in machines_in(url) if m.id == machine_id)


def a_ready_pooled_machine(override: dict[str, Any], app: Flask,
                           ready: Any) -> tuple[str, PoolCloud]:
    """Fill the pool of one with a worker, make its machine report pooled-ready with
    ``ready(machine_id, user_data)``, wait until the worker puts it in the pool; return its
    id and the cloud."""
    url = override["database_url"]
    cloud = PoolCloud(Path(override["var_dir"]) / "pool-cloud")
    filler = worker(override, app)
    try:
        wait_for(lambda: any(m.pool and cloud.record(m.id).exists() for m in machines_in(url)),
                 60, "a pooled machine launched")
        [waiting] = [m.id for m in machines_in(url) if m.pool]
        ready(waiting, cloud.user_data(waiting))
        wait_for(lambda: row(url, waiting).state == "ready", 60, "the machine in its pool")
    finally:
        stop(filler)
    return waiting, cloud


def killed_at_the_hand_over(override: dict[str, Any], app: Flask, claimed: str) -> None:
    """Run a worker that hands ``claimed`` over and hangs; SIGKILL it there."""
    first = worker(override, app, PAUSED)
    try:
        wait_for(lambda: (Path(override["var_dir"]) / f"personalised-{claimed}").exists(), 60,
                 "the hand-over")
    finally:
        stop(first, kill=True)


def test_the_next_worker_hands_it_over_and_the_agent_sets_it_up_for_its_claimer(
        settings_override: dict[str, Any], portal: Flask, tmp_path: Path) -> None:
    url = settings_override["database_url"]
    vm: dict[str, Vm] = {}
    waiting, cloud = a_ready_pooled_machine(
        settings_override, portal,
        lambda machine_id, user_data: vm.setdefault("it", boot(tmp_path, "vm", user_data)))
    agent = vm["it"]
    try:
        claimed = launch(portal, "scientist", "dawn")
        assert claimed == waiting
        killed_at_the_hand_over(settings_override, portal, claimed)
        machine = row(url, claimed)
        assert (machine.state, machine.pool, machine.personalised_at) == \
            ("contextualising", None, None)
        assert machine.user.username == "scientist"
        time.sleep(1.5)  # the agent asks meanwhile: the hand-over was never recorded
        assert agent.process is not None and agent.process.poll() is None
        assert agent.recorded("useradd") == "" and not (agent.root / "home").exists()
        second = worker(settings_override, portal)
        try:
            status, stderr = agent.finish(60)
            assert status == 0, stderr
            wait_for(lambda: row(url, claimed).state == "ready", 60, "ready for its user")
            wait_for(lambda: any(m.pool and m.state not in ("deleting", "deleted")
                                 for m in machines_in(url)), 60, "the pool refilled")
        finally:
            stop(second)
    finally:
        if agent.process is not None and agent.process.poll() is None:
            agent.process.kill()
            agent.process.wait(10)
    machine = row(url, claimed)
    assert (machine.pool, machine.user.username) == (None, "scientist")
    assert agent.recorded("useradd").split()[-1] == "scientist"
    assert cloud.handed(claimed) == ["scientist", "scientist"]  # the hand-over, repeated
    assert claimed not in {m.id for m in machines_in(url) if m.pool}


def test_a_machine_that_never_reports_after_the_crash_is_deleted_not_pooled(
        settings_override: dict[str, Any], portal: Flask) -> None:
    url = settings_override["database_url"]
    base = portal.extensions["daaas"].settings.public_url

    def pooled_ready_by_hand(machine_id: str, user_data: bytes) -> None:
        """The agent's pool phase, by HTTP: trade the token, report pooled-ready."""
        token = bootstrap_document(user_data)["token"]
        answer = requests.post(f"{base}/api/v1/context/{machine_id}/bootstrap",
                               json={"token": token}, timeout=30).json()
        assert answer == {"pooled": True, "files": [], "report_token": answer["report_token"]}
        assert requests.post(f"{base}/api/v1/context/{machine_id}/status",
                             json={"status": "pooled-ready"}, timeout=30, headers={
                                 "Authorization": f"Bearer {answer['report_token']}"}
                             ).status_code == 202

    waiting, cloud = a_ready_pooled_machine(settings_override, portal, pooled_ready_by_hand)
    claimed = launch(portal, "scientist", "dawn")
    assert claimed == waiting
    killed_at_the_hand_over(settings_override, portal, claimed)
    # its agent died too: nothing will report; the ready timeout counts from the claim
    second = worker(settings_override, portal, DAAAS_MACHINE_READY_TIMEOUT_SECONDS="5")
    try:
        wait_for(lambda: row(url, claimed).state in ("error", "deleted")
                 and not cloud.record(claimed).exists(), 60, "the machine failed and deleted")
        wait_for(lambda: any(m.pool and m.state not in ("deleting", "deleted")
                             for m in machines_in(url)), 60, "the pool refilled")
    finally:
        stop(second)
    machine = row(url, claimed)
    assert machine.pool is None and machine.user.username == "scientist"
    assert "did not become ready" in machine.error_reason
    assert claimed not in {m.id for m in machines_in(url) if m.pool}


def test_the_vms_ready_report_wakes_the_worker(settings_override: dict[str, Any],
                                                portal: Flask, tmp_path: Path) -> None:
    url = settings_override["database_url"]
    vm: dict[str, Vm] = {}
    waiting, _ = a_ready_pooled_machine(
        settings_override, portal,
        lambda machine_id, user_data: vm.setdefault("it", boot(tmp_path, "vm", user_data)))
    agent = vm["it"]
    try:
        claimed = launch(portal, "scientist", "dawn")
        assert claimed == waiting
        # a cycle every two minutes: only the report's wake-up can make it ready in time
        slow = worker(settings_override, portal, DAAAS_RECONCILE_INTERVAL_SECONDS="120")
        try:
            status, stderr = agent.finish(60)
            assert status == 0, stderr
            reported = time.monotonic()
            wait_for(lambda: row(url, claimed).state == "ready", 20, "ready on the VM's report")
            assert time.monotonic() - reported < 20
        finally:
            stop(slow)
    finally:
        if agent.process is not None and agent.process.poll() is None:
            agent.process.kill()
            agent.process.wait(10)
    assert row(url, claimed).user.username == "scientist"
