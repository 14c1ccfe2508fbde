"""ONE contract every provider keeps, run against each real backend (CloudBridge's way).

``local``: real Xvnc desktops on this host. ``openstack``: real Keystone/Glance/Placement/Nova
from ``.ci/openstack.sh`` (fake virt driver). Each backend skips locally, with the reason, when
it is not available, and fails in CI.
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from daaas.portal.providers import Capacity, LaunchSpec, MachineGone, Provider, ProviderState
from daaas.portal.providers.local import LocalProvider
from tests.openstack import support

UP = {ProviderState.RUNNING, ProviderState.READY}


@dataclass
class Backend:
    """A provider under test, a way to make another instance on the same backing (a restarted
    worker), and how many machines exist for an id, counted without the provider."""

    provider: Provider
    again: Callable[[], Provider]
    count: Callable[[str], int]
    timeout: float


def _local(tmp_path: Path) -> Iterator[Backend]:
    if shutil.which("Xvnc") is None and not os.environ.get("CI"):
        pytest.skip("Xvnc is not installed (apt-get install tigervnc-standalone-server)")
    var = tmp_path / "var"

    def make() -> LocalProvider:
        return LocalProvider(var, desktop="none", max_sessions=3)

    def count(machine_id: str) -> int:
        return int(make().poll([machine_id])[machine_id].state in UP)

    yield Backend(make(), make, count, 20)
    make().adopt_or_cleanup(set(), remove_homes=True)


def _openstack() -> Iterator[Backend]:
    cloud = support.cloud_name()
    tag = f"daaas-test-{uuid.uuid4().hex[:8]}"

    def make() -> Provider:
        return support.new_provider(cloud, server_tag=tag)

    def count(machine_id: str) -> int:
        return sum(s.metadata.get("daaas_machine_id") == machine_id
                   for s in support.servers_tagged(tag))

    try:
        yield Backend(make(), make, count, 120)
    finally:
        support.remove_tagged(tag)


@pytest.fixture(params=["local", "openstack"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Backend]:
    yield from (_local(tmp_path) if request.param == "local" else _openstack())


def spec(machine_id: str) -> LaunchSpec:
    return LaunchSpec(machine_id, "alice", 20000, 20000, support.environment(), "Pw4-vnc!",
                      user_data=support.USER_DATA)


def wait_up(backend: Backend, machine_id: str) -> ProviderState:
    def check() -> ProviderState | None:
        state = backend.provider.poll([machine_id])[machine_id].state
        assert state is not ProviderState.ERROR
        return state if state in UP else None
    result: ProviderState = support.wait_for(check, backend.timeout, interval=0.2)
    return result


def mid() -> str:
    return uuid.uuid4().hex


def test_launch_comes_up_and_is_listed(backend: Backend) -> None:
    machine = mid()
    backend.provider.launch(spec(machine))
    wait_up(backend, machine)
    assert machine in backend.provider.list_machine_ids()


def test_launch_is_idempotent_across_instances(backend: Backend) -> None:
    machine = mid()
    backend.provider.launch(spec(machine))
    backend.provider.launch(spec(machine))
    backend.again().launch(spec(machine))  # a worker restarted before recording the launch
    wait_up(backend, machine)
    assert backend.count(machine) == 1


def test_poll_answers_exactly_the_ids_asked_unknown_ones_gone(backend: Backend) -> None:
    machine, unknown = mid(), mid()
    backend.provider.launch(spec(machine))
    wait_up(backend, machine)
    statuses = backend.provider.poll([machine, unknown])
    assert set(statuses) == {machine, unknown}
    assert statuses[unknown].state is ProviderState.GONE
    assert statuses[machine].state in UP
    assert backend.provider.poll([]) == {}


def test_delete_removes_and_is_idempotent(backend: Backend) -> None:
    machine = mid()
    backend.provider.launch(spec(machine))
    wait_up(backend, machine)
    backend.provider.delete(machine)
    assert backend.provider.poll([machine])[machine].state is ProviderState.GONE
    assert backend.count(machine) == 0
    assert machine not in backend.provider.list_machine_ids()
    backend.provider.delete(machine)  # already gone: success
    backend.provider.delete(mid())  # never existed: success


def test_connection_target_of_unknown_machine_is_machine_gone(backend: Backend) -> None:
    with pytest.raises(MachineGone) as caught:
        backend.provider.connection_target(mid())
    assert caught.value.user_message


def test_adopt_or_cleanup_keeps_known_and_removes_orphans(backend: Backend) -> None:
    known, orphan = mid(), mid()
    for machine in (known, orphan):
        backend.provider.launch(spec(machine))
        wait_up(backend, machine)
    assert {known, orphan} <= backend.again().list_machine_ids()
    assert backend.again().adopt_or_cleanup({known}) == {known}
    assert backend.count(orphan) == 0 and backend.count(known) == 1


def test_capacity_is_consistent(backend: Backend) -> None:
    capacity = backend.provider.capacity()
    assert isinstance(capacity, Capacity)
    assert 0 <= capacity.sessions_free <= capacity.sessions_total
    assert capacity.gpus_free is None or capacity.gpus_free >= 0
