"""The test-double providers behave like real providers: the reconciler's tests rely on it."""

from __future__ import annotations

import threading
import time

import pytest

from daaas.portal.providers import (
    CapacityExhausted,
    LaunchFailed,
    LaunchSpec,
    MachineGone,
    ProviderError,
    ProviderState,
)
from tests.support.environments import make_environment
from tests.support.providers import (
    FailingProvider,
    InMemoryProvider,
    NeverReadyProvider,
    SlowProvider,
)

B, R, OK, ERR, GONE = (ProviderState.BUILDING, ProviderState.RUNNING, ProviderState.READY,
                       ProviderState.ERROR, ProviderState.GONE)


def spec(machine_id: str = "m1") -> LaunchSpec:
    return LaunchSpec(machine_id=machine_id, username="alice", uid=20000, gid=20000,
                      environment=make_environment(applications=[]), vnc_password="pw")


def states(provider: InMemoryProvider, *ids: str) -> list[ProviderState]:
    return [status.state for status in provider.poll(ids).values()]


def test_in_memory_becomes_ready_after_n_polls_and_counts_calls() -> None:
    provider = InMemoryProvider(ready_after_polls=3)
    provider.launch(spec())
    assert [states(provider, "m1")[0] for _ in range(4)] == [B, R, OK, OK]
    assert provider.calls["launch"] == 1
    assert provider.calls["poll"] == 4


def test_poll_is_one_batched_call_and_unknown_ids_are_gone() -> None:
    provider = InMemoryProvider()
    provider.launch(spec("a"))
    result = provider.poll(["a", "never-launched"])
    assert set(result) == {"a", "never-launched"}
    assert result["never-launched"].state is GONE
    assert provider.calls["poll"] == 1


def test_launch_is_idempotent_and_delete_tolerates_gone() -> None:
    provider = InMemoryProvider(max_sessions=1)
    provider.launch(spec())
    provider.launch(spec())  # same id again: no second machine, no capacity error
    assert provider.list_machine_ids() == {"m1"}
    provider.delete("m1")
    provider.delete("m1")
    assert provider.list_machine_ids() == set()
    assert provider.calls["delete"] == 2


def test_capacity_and_connection_target() -> None:
    provider = InMemoryProvider(max_sessions=2, gpus=1)
    provider.launch(spec("a"))
    capacity = provider.capacity()
    assert (capacity.gpus_free, capacity.sessions_free, capacity.sessions_total) == (1, 1, 2)
    provider.launch(spec("b"))
    with pytest.raises(CapacityExhausted) as raised:
        provider.launch(spec("c"))
    assert "slots are in use" in raised.value.user_message
    assert provider.connection_target("a").host == "127.0.0.1"
    assert provider.connection_target("a").vnc_port != provider.connection_target("b").vnc_port
    with pytest.raises(MachineGone):
        provider.connection_target("c")


def test_fail_puts_a_machine_into_error_with_its_reason() -> None:
    provider = InMemoryProvider()
    provider.launch(spec())
    provider.fail("m1", "The hypervisor crashed.")
    status = provider.poll(["m1"])["m1"]
    assert (status.state, status.reason) == (ERR, "The hypervisor crashed.")


def test_adopt_or_cleanup_keeps_known_and_deletes_the_rest() -> None:
    provider = InMemoryProvider()
    for machine_id in ("known", "orphan"):
        provider.launch(spec(machine_id))
    assert provider.adopt_or_cleanup({"known", "deleted-meanwhile"}) == {"known"}
    assert provider.list_machine_ids() == {"known"}


def test_slow_provider_blocks_in_launch_and_needs_many_polls() -> None:
    provider = SlowProvider(launch_seconds=0.2, ready_after_polls=4)
    started = time.monotonic()
    provider.launch(spec())
    assert time.monotonic() - started >= 0.2
    assert [states(provider, "m1")[0] for _ in range(4)] == [B, R, R, OK]


def test_never_ready_provider_stays_running() -> None:
    provider = NeverReadyProvider()
    provider.launch(spec())
    assert {states(provider, "m1")[0] for _ in range(20)} == {B, R}


def test_failing_provider_failure_modes_have_readable_messages() -> None:
    on_launch = FailingProvider(fail_on="launch", message="No valid host was found.")
    with pytest.raises(LaunchFailed) as raised:
        on_launch.launch(spec())
    assert raised.value.user_message == "No valid host was found."
    assert "m1" in raised.value.log_message
    assert on_launch.list_machine_ids() == set()

    on_poll = FailingProvider(fail_on="poll", message="Disk image is corrupt.")
    on_poll.launch(spec())
    assert on_poll.poll(["m1"])["m1"].reason == "Disk image is corrupt."

    on_delete = FailingProvider(fail_on="delete")
    with pytest.raises(ProviderError):
        on_delete.delete("m1")
    assert on_delete.calls["delete"] == 1


def test_doubles_are_thread_safe() -> None:
    provider = InMemoryProvider(max_sessions=1000)

    def worker(offset: int) -> None:
        for number in range(50):
            provider.launch(spec(f"m{offset}-{number}"))
            provider.poll([f"m{offset}-{number}"])

    threads = [threading.Thread(target=worker, args=(offset,)) for offset in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(provider.list_machine_ids()) == 400
    assert provider.calls["launch"] == provider.calls["poll"] == 400
