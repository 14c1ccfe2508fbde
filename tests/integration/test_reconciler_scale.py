"""The reconciler at scale: an idle cycle costs the same few transactions for 200 machines as
for 20 and writes nothing; a provider call in flight holds no lock a page or a token's use
waits for; a launch wakes a waiting worker at once."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from flask import Flask
from sqlalchemy.engine import Engine

from daaas.portal.db import worker_session_factory
from daaas.portal.metrics.worker import MeasuredReconciler
from daaas.portal.providers import PROVIDERS, LaunchSpec, ProviderStatus
from tests.support.machines import SECRET_KEY, launch, machine, reconciler
from tests.support.providers import InMemoryProvider
from tests.support.scale import add_machines, counting, launch_at, mix_states
from tests.support.web import bearer


class BlockingProvider(InMemoryProvider):
    """``launch`` and ``delete`` wait until :attr:`release` is set (:attr:`entered` says one
    is waiting): a cloud that takes as long as the test wants."""

    name = "blocking"

    def __init__(self) -> None:
        super().__init__(ready_after_polls=1, max_sessions=100)
        self.entered = threading.Event()
        self.release = threading.Event()

    def launch(self, spec: LaunchSpec) -> None:
        """Wait for :attr:`release`, then launch as the parent does."""
        self._block()
        super().launch(spec)

    def delete(self, machine_id: str) -> None:
        """Wait for :attr:`release`, then delete as the parent does."""
        self._block()
        super().delete(machine_id)

    def _block(self) -> None:
        self.entered.set()
        assert self.release.wait(60), "the test never released the provider"


class RecordingProvider(InMemoryProvider):
    """The in-memory double, keeping the ids of each poll (:attr:`polled`)."""

    def __init__(self) -> None:
        super().__init__(ready_after_polls=1, max_sessions=10_000)
        self.polled: list[list[str]] = []

    def poll(self, machine_ids: Any) -> dict[str, ProviderStatus]:
        """Note the ids, then poll as the parent does."""
        self.polled.append(list(machine_ids))
        return super().poll(machine_ids)


def real_worker(app: Flask, provider: InMemoryProvider) -> MeasuredReconciler:
    """Return the reconciler as `daaas worker` builds it (the portal's settings, measured for
    /metrics) on ``provider``."""
    settings = app.extensions["daaas"].settings
    return MeasuredReconciler(worker_session_factory(settings.effective_database_url),
                              provider, secret_key=SECRET_KEY, ready_timeout_seconds=600,
                              settings=settings)


@pytest.fixture(autouse=True)
def _blocking_provider() -> Iterator[None]:
    with PROVIDERS.registered(BlockingProvider.name, BlockingProvider):
        yield


@pytest.fixture
def settings_override(settings_override: dict[str, Any]) -> dict[str, Any]:
    """The portal runs on the blocking provider."""
    return {**settings_override, "provider": BlockingProvider.name}


def test_an_idle_cycle_costs_the_same_few_transactions_for_200_machines_as_for_20(
        app: Flask) -> None:
    rt = app.extensions["daaas"]
    provider = InMemoryProvider(ready_after_polls=1, max_sessions=1000)
    worker = reconciler(app, provider)
    costs = []
    for count in (20, 180):
        ids = add_machines(rt.session_factory, rt.catalogue.environments["ccp4"],
                           ["scientist", "neutron", "admin"], count)
        launch_at(provider, rt.session_factory, ids, SECRET_KEY)
        worker.run_once()  # the provider reports them READY, as the database says
        with counting(Engine) as counts:  # every engine: the worker reads on one of its own
            report = worker.run_once()
        assert report.polls == 1 and not report.changed and not report.launched
        costs.append(counts())
    assert costs[0]["writes"] == costs[1]["writes"] == 0
    assert costs[0]["transactions"] == costs[1]["transactions"] <= 8, costs
    assert costs[0]["statements"] == costs[1]["statements"], costs


def test_a_state_change_is_the_only_write_of_a_cycle(app: Flask) -> None:
    rt = app.extensions["daaas"]
    provider = InMemoryProvider(ready_after_polls=1, max_sessions=1000)
    ids = add_machines(rt.session_factory, rt.catalogue.environments["ccp4"], ["scientist"], 50)
    launch_at(provider, rt.session_factory, ids, SECRET_KEY)
    worker = reconciler(app, provider)
    worker.run_once()
    provider.stop_behind_the_portal(ids[7])
    with counting(Engine) as counts:
        report = worker.run_once()
    assert report.changed == [ids[7]] and machine(app, ids[7]).state == "stopped"
    idle = worker.run_once
    with counting(Engine) as idle_counts:
        idle()
    assert counts()["transactions"] == idle_counts()["transactions"] + 1
    assert counts()["writes"] == 2  # the machine's state and its event


@pytest.mark.parametrize("call", ["launch", "delete"])
def test_a_provider_call_in_flight_blocks_no_page_and_no_token(app: Flask, call: str) -> None:
    rt = app.extensions["daaas"]
    provider = rt.provider
    assert isinstance(provider, BlockingProvider)
    client = app.test_client()
    token = bearer(app, "scientist")
    other = client.post("/api/v1/machines", json={"environment": "ccp4"}, headers=token)
    assert other.status_code == 202, other.get_json()
    worker = reconciler(app, provider)
    if call == "delete":
        provider.release.set()
        worker.run_once()  # launched
        provider.release.clear()
        provider.entered.clear()
        deleting = client.delete(f"/api/v1/machines/{other.get_json()['id']}", headers=token)
        assert deleting.status_code == 202
    cycle = threading.Thread(target=worker.run_once)
    cycle.start()
    try:
        assert provider.entered.wait(10), f"the provider's {call} was not called"
        started = time.monotonic()
        listed = client.get("/api/v1/machines", headers=token)           # a token's use
        renamed = client.patch(f"/api/v1/machines/{other.get_json()['id']}",
                               json={"name": "Renamed meanwhile"}, headers=token)  # a write
        second = client.post("/api/v1/machines", json={"environment": "dawn"}, headers=token)
        elapsed = time.monotonic() - started
        assert listed.status_code == 200 and renamed.status_code == 200
        assert second.status_code == 202, second.get_json()
        assert cycle.is_alive() and not provider.release.is_set()  # still in the call
        assert elapsed < 5, f"pages waited {elapsed:.1f} s for the provider's {call}"
    finally:
        provider.release.set()
        cycle.join(30)
    expected = {"provisioning", "contextualising", "ready"} if call == "launch" else {"deleted"}
    assert machine(app, other.get_json()["id"]).state in expected
    assert machine(app, other.get_json()["id"]).name == "Renamed meanwhile"


def test_a_launch_wakes_a_waiting_worker_at_once(app: Flask) -> None:
    provider = InMemoryProvider()
    worker = reconciler(app, provider)
    stop = threading.Event()
    loop = threading.Thread(target=worker.run_forever, args=(stop, 60.0))
    loop.start()
    try:
        time.sleep(0.5)  # the first cycle has run; the worker now waits up to 60 s
        assert provider.calls["launch"] == 0
        started = time.monotonic()
        launch(app)
        while provider.calls["launch"] == 0 and time.monotonic() - started < 10:
            time.sleep(0.01)
        assert provider.calls["launch"] == 1, "the launch waited for the next cycle"
        assert time.monotonic() - started < 5
    finally:
        stop.set()
        loop.join(10)
    assert not loop.is_alive()


def test_idle_cycles_of_the_real_worker_cost_the_same_statements_for_600_machines_as_for_60(
        app: Flask) -> None:
    """Machines in mixed states (ready, stopped, deleted, failed): the cycle run every 2 s
    polls nothing (no machine on its way), the one run every 60 s polls once; neither opens a
    transaction or writes, and their statements do not grow with the machines."""
    rt = app.extensions["daaas"]
    provider = RecordingProvider()
    worker = real_worker(app, provider)
    light, steady = [], []
    at_provider = 0
    for count in (60, 540):
        ids = add_machines(rt.session_factory, rt.catalogue.environments["ccp4"],
                           ["scientist", "neutron", "admin"], count)
        launch_at(provider, rt.session_factory, ids, SECRET_KEY)
        states = mix_states(rt.session_factory, provider, ids)
        assert states["stopped"] and states["deleted"] and states["error"]
        at_provider += states["ready"] + states["stopped"]
        worker.run_once()
        worker.run_once()  # the capacity, orphans and idle-stop check are read (30 s, 60 s)
        polls = len(provider.polled)
        with counting(Engine) as counts:
            report = worker.run_once(steady=False)
        assert report.polls == 0 and len(provider.polled) == polls and not report.changed
        light.append(counts())
        with counting(Engine) as counts:
            report = worker.run_once()
        assert report.polls == 1 and not report.changed
        assert len(provider.polled[-1]) == at_provider  # the ready and stopped ones
        steady.append(counts())
    worker.waker.close()
    for costs in (light, steady):
        assert costs[0]["transactions"] == costs[1]["transactions"] == 0, costs
        assert costs[0]["writes"] == costs[1]["writes"] == 0, costs
        assert costs[0]["statements"] == costs[1]["statements"], costs


def test_the_worker_loop_polls_ready_machines_every_minute_and_a_stop_asked_at_once(
        app: Flask) -> None:
    rt = app.extensions["daaas"]
    provider = RecordingProvider()
    ids = add_machines(rt.session_factory, rt.catalogue.environments["ccp4"], ["scientist"], 30)
    launch_at(provider, rt.session_factory, ids, SECRET_KEY)
    worker = reconciler(app, provider)
    stop = threading.Event()
    loop = threading.Thread(target=worker.run_forever, args=(stop, 0.05))
    loop.start()
    try:
        deadline = time.monotonic() + 10
        while not provider.polled and time.monotonic() < deadline:
            time.sleep(0.01)
        assert provider.polled and len(provider.polled[0]) == 30  # the first cycle: all
        asked = app.test_client().post(f"/api/v1/machines/{ids[3]}/stop",
                                       headers=bearer(app, "scientist"))
        assert asked.status_code == 202, asked.get_json()
        while provider.calls["stop"] == 0 and time.monotonic() < deadline + 10:
            time.sleep(0.01)
        while machine(app, ids[3]).state != "stopped" and time.monotonic() < deadline + 20:
            time.sleep(0.05)
    finally:
        stop.set()
        loop.join(10)
    worker.waker.close()
    assert machine(app, ids[3]).state == "stopped"
    # after the first cycle only the machine on its way was polled (ready ones: every 60 s)
    assert provider.polled[1:] and all(p == [ids[3]] for p in provider.polled[1:]), \
        provider.polled[1:]
