"""Stop/start in the provider interface: the default refusal, Nova's statuses, the doubles."""

from __future__ import annotations

from collections.abc import Collection
from pathlib import Path
from types import SimpleNamespace

import pytest

from daaas.portal.machines.states import STARTING, TRANSITIONS, State
from daaas.portal.providers import (
    Capacity,
    CapacityExhausted,
    ConnectionTarget,
    LaunchSpec,
    MachineGone,
    Provider,
    ProviderState,
    ProviderStatus,
    StopNotSupported,
)
from daaas.portal.providers.local import LocalProvider
from daaas.portal.providers.openstack import OpenStackProvider
from daaas.portal.providers.openstack.servers import status_of
from daaas.portal.providers.qemu import QemuProvider
from tests.support.environments import make_environment
from tests.support.providers import InMemoryProvider


class MinimalProvider(Provider):
    """A provider written before stop/start existed: it must keep working unchanged."""

    name = "minimal"

    def launch(self, spec: LaunchSpec) -> None:
        """Accept anything."""

    def poll(self, machine_ids: Collection[str]) -> dict[str, ProviderStatus]:
        """Nothing exists."""
        return {mid: ProviderStatus(ProviderState.GONE) for mid in machine_ids}

    def delete(self, machine_id: str) -> None:
        """Nothing to delete."""

    def list_machine_ids(self) -> set[str]:
        """Nothing runs."""
        return set()

    def capacity(self) -> Capacity:
        """No room."""
        return Capacity(gpus_free=None, sessions_free=0, sessions_total=0)

    def connection_target(self, machine_id: str) -> ConnectionTarget:
        """Never reachable."""
        raise MachineGone("gone")


def spec(machine_id: str = "m1") -> LaunchSpec:
    return LaunchSpec(machine_id, "alice", 1, 1, make_environment(), "pw")


def test_a_provider_without_stop_refuses_with_a_typed_error_saying_delete_instead() -> None:
    provider = MinimalProvider()
    assert provider.supports_stop is False
    for call in (lambda: provider.stop("m1"), lambda: provider.start(spec())):
        with pytest.raises(StopNotSupported) as refused:
            call()
        assert refused.value.status_code == 409
        assert "cannot be stopped; delete it instead" in refused.value.user_message
        assert "minimal" in refused.value.log_message and "m1" in refused.value.log_message


def test_each_provider_answers_whether_it_can_stop(tmp_path: Path) -> None:
    assert LocalProvider(tmp_path).supports_stop
    assert OpenStackProvider(cloud="site").supports_stop
    assert not QemuProvider(tmp_path, image=str(tmp_path / "disk.img")).supports_stop
    assert InMemoryProvider().supports_stop
    assert not InMemoryProvider(stoppable=False).supports_stop


def test_a_double_that_cannot_stop_refuses_as_the_interface_does() -> None:
    provider = InMemoryProvider(stoppable=False)
    provider.launch(spec("m1"))
    for call in (lambda: provider.stop("m1"), lambda: provider.start(spec("m1"))):
        with pytest.raises(StopNotSupported):
            call()
    assert provider.poll(["m1"])["m1"].state is ProviderState.READY


@pytest.mark.parametrize(("status", "task", "state"), [
    ("SHELVED_OFFLOADED", None, ProviderState.STOPPED),
    ("SHELVED", None, ProviderState.STOPPED),
    ("SHUTOFF", None, ProviderState.STOPPED),
    ("SHELVED", "shelving_offloading", ProviderState.RUNNING),  # GPU not free yet
    ("SHELVED_OFFLOADED", "unshelving", ProviderState.BUILDING),
    ("SHELVED_OFFLOADED", "spawning", ProviderState.BUILDING),
    ("SHUTOFF", "powering-on", ProviderState.BUILDING),
    ("ACTIVE", "shelving", ProviderState.RUNNING),
    ("PAUSED", None, ProviderState.ERROR),
    ("SUSPENDED", None, ProviderState.ERROR),
    ("RESCUE", None, ProviderState.ERROR),
])
def test_nova_statuses(status: str, task: str | None, state: ProviderState) -> None:
    server = SimpleNamespace(id="s1", status=status, task_state=task, metadata={})
    assert status_of(server).state is state


def test_the_memory_double_stops_and_starts() -> None:
    provider = InMemoryProvider(ready_after_polls=1, max_sessions=1)
    provider.launch(spec("m1"))
    provider.stop("m1")
    provider.stop("m1")
    assert provider.poll(["m1"])["m1"].state is ProviderState.STOPPED
    assert provider.capacity().sessions_free == 1
    provider.launch(spec("m2"))
    with pytest.raises(CapacityExhausted, match="no slot to start m1"):
        provider.start(spec("m1"))
    provider.delete("m2")
    provider.start(spec("m1"))
    assert provider.poll(["m1"])["m1"].state is ProviderState.READY
    for call in (lambda: provider.stop("x"), lambda: provider.start(spec("x"))):
        with pytest.raises(MachineGone):
            call()


def test_the_state_table_allows_the_stop_paths() -> None:
    assert State.STOPPED in TRANSITIONS[State.READY]  # stopped outside the portal
    assert State.STOPPED in TRANSITIONS[State.CONTEXTUALISING]
    assert State.STOPPED in TRANSITIONS[State.PROVISIONING]  # a start without room
    assert TRANSITIONS[State.STOPPING] == {State.STOPPED, State.DELETING, State.ERROR}
    assert State.PROVISIONING in TRANSITIONS[State.STOPPED]
    assert State.STOPPED not in STARTING  # no ready timeout while stopped
