"""Provider test doubles: real Provider subclasses that keep their machines in memory.

Like JupyterHub's test spawners, they let the reconciler's tests drive every path (slow
launches, machines that never get ready, failures) without a desktop or a cloud. They are
thread-safe: the reconciler's worker thread and the test share one instance. ``calls`` counts
each method's calls, e.g. ``provider.calls["poll"]``.

tests/conftest.py registers each under its ``name`` in
:data:`daaas.portal.providers.PROVIDERS` for the whole test session (:func:`register_doubles`),
so ``provider = "memory"`` (or "slow", "never-ready", "unstoppable", "failing",
"unisolated") works in a
test's settings; the portal itself never knows them.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Collection, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from daaas.portal.providers import PROVIDERS
from daaas.portal.providers.base import (
    Capacity,
    ConnectionTarget,
    LaunchSpec,
    Provider,
    ProviderState,
    ProviderStatus,
)
from daaas.portal.providers.errors import (
    CapacityExhausted,
    LaunchFailed,
    MachineGone,
    ProviderError,
)

if TYPE_CHECKING:
    from daaas.portal.config import Settings


@dataclass
class _Machine:
    spec: LaunchSpec
    port: int
    polls: int = 0
    error: str = ""
    stopped: bool = False
    personalised: bool = False  # handed to a user from a warm pool


class InMemoryProvider(Provider):
    """Machines are dict entries: BUILDING on the first poll, READY after ``ready_after_polls``.

    ``stop`` marks a machine STOPPED at once; ``start`` brings it back through BUILDING as a
    launch does. Stopped machines hold no session slot. With ``stoppable=False`` it answers
    :attr:`supports_stop` False and refuses stop/start, as a provider without them does.
    """

    name = "memory"

    def __init__(self, ready_after_polls: int = 1, max_sessions: int = 8,
                 gpus: int | None = None, stoppable: bool = True) -> None:
        self.ready_after_polls = ready_after_polls
        self.max_sessions = max_sessions
        self.gpus = gpus
        self.stoppable = stoppable
        self.calls: Counter[str] = Counter()
        self._machines: dict[str, _Machine] = {}
        self._next_port = 5900
        self._lock = threading.Lock()
        #: Every spec each machine was given: its launch's, then its personalisation's
        self.specs_by_machine: dict[str, list[LaunchSpec]] = {}

    @classmethod
    def from_settings(cls, settings: Settings) -> InMemoryProvider:
        """Return a double with its default options (the settings are not read)."""
        return cls()

    @property
    def supports_stop(self) -> bool:
        """Return ``stoppable``: whether stop and start work on this double."""
        return self.stoppable

    @property
    def supports_pools(self) -> bool:
        """Return True: this double keeps warm-pool machines (``personalise``)."""
        return True

    def personalise(self, spec: LaunchSpec) -> None:
        """Hand the machine to ``spec``'s user: its spec becomes theirs and it starts their
        session (BUILDING, then READY as after a launch). Records every spec it was given in
        ``specs_by_machine``. The same user again is success; another user raises LaunchFailed
        (a real machine is never handed to two people). Raises MachineGone for an unknown id."""
        with self._lock:
            self.calls["personalise"] += 1
            machine = self._held(spec.machine_id)
            if machine.spec.uid == spec.uid:
                return
            if machine.personalised:
                raise LaunchFailed("This machine is someone else's.",
                                   f"{spec.machine_id}: already handed to {machine.spec.uid}")
            machine.spec, machine.polls, machine.personalised = spec, 0, True
            self.specs_by_machine.setdefault(spec.machine_id, []).append(spec)

    def spec_of(self, machine_id: str) -> LaunchSpec:
        """Return the spec the machine now runs with. Raises KeyError for an unknown id."""
        with self._lock:
            return self._machines[machine_id].spec

    def launch(self, spec: LaunchSpec) -> None:
        """Record the machine (once per id). Raises CapacityExhausted past ``max_sessions``."""
        with self._lock:
            self.calls["launch"] += 1
            if spec.machine_id in self._machines:
                return
            if self._running() >= self.max_sessions:
                raise CapacityExhausted(
                    "All desktop slots are in use; try again when a session has ended.",
                    f"{self.name}: {self.max_sessions} of {self.max_sessions} sessions used",
                )
            self._next_port += 1
            self._machines[spec.machine_id] = _Machine(spec, self._next_port)
            self.specs_by_machine.setdefault(spec.machine_id, []).append(spec)

    def poll(self, machine_ids: Collection[str]) -> dict[str, ProviderStatus]:
        """Return each id's status (GONE if unknown); each call counts one poll per machine."""
        with self._lock:
            self.calls["poll"] += 1
            return {mid: self._advance(mid) for mid in machine_ids}

    def delete(self, machine_id: str) -> None:
        """Forget the machine; an unknown id is success. Raises nothing."""
        with self._lock:
            self.calls["delete"] += 1
            self._machines.pop(machine_id, None)

    def stop(self, machine_id: str) -> None:
        """Mark the machine stopped (already stopped is success). Raises MachineGone if unknown,
        StopNotSupported when not ``stoppable``."""
        if not self.stoppable:
            super().stop(machine_id)
        with self._lock:
            self.calls["stop"] += 1
            self._held(machine_id).stopped = True

    def start(self, spec: LaunchSpec) -> None:
        """Start a stopped machine again (running is success). Raises MachineGone if unknown,
        CapacityExhausted past ``max_sessions`` running machines, StopNotSupported when not
        ``stoppable``."""
        if not self.stoppable:
            super().start(spec)
        with self._lock:
            self.calls["start"] += 1
            machine = self._held(spec.machine_id)
            if not machine.stopped:
                return
            if self._running() >= self.max_sessions:
                raise CapacityExhausted("All desktop slots are in use; try again later.",
                                        f"{self.name}: no slot to start {spec.machine_id}")
            machine.stopped, machine.polls = False, 0

    def stop_behind_the_portal(self, machine_id: str) -> None:
        """Stop a held machine as an administrator would, not through the portal. Raises
        KeyError for an unknown id."""
        with self._lock:
            self._machines[machine_id].stopped = True

    def list_machine_ids(self) -> set[str]:
        """Return the ids currently held. Raises nothing."""
        with self._lock:
            self.calls["list_machine_ids"] += 1
            return set(self._machines)

    def capacity(self) -> Capacity:
        """Return free slots out of ``max_sessions`` and the configured GPUs. Raises nothing."""
        with self._lock:
            self.calls["capacity"] += 1
            free = self.max_sessions - self._running()
            return Capacity(gpus_free=self.gpus, sessions_free=free,
                            sessions_total=self.max_sessions)

    def connection_target(self, machine_id: str) -> ConnectionTarget:
        """Return 127.0.0.1 and a made-up port. Raises MachineGone for an unknown id."""
        with self._lock:
            self.calls["connection_target"] += 1
            machine = self._machines.get(machine_id)
            if machine is None:
                raise MachineGone("This machine no longer exists.", f"{machine_id}: unknown")
            return ConnectionTarget(host="127.0.0.1", vnc_port=machine.port)

    def fail(self, machine_id: str, reason: str) -> None:
        """Put a held machine into ERROR with ``reason`` (simulates a crash). Raises KeyError."""
        with self._lock:
            self._machines[machine_id].error = reason

    def _held(self, machine_id: str) -> _Machine:
        machine = self._machines.get(machine_id)
        if machine is None:
            raise MachineGone("This machine no longer exists.", f"{machine_id}: unknown")
        return machine

    def _running(self) -> int:
        return sum(not machine.stopped for machine in self._machines.values())

    def _advance(self, machine_id: str) -> ProviderStatus:
        machine = self._machines.get(machine_id)
        if machine is None:
            return ProviderStatus(ProviderState.GONE)
        if machine.stopped:
            return ProviderStatus(ProviderState.STOPPED)
        machine.polls += 1
        if machine.error:
            return ProviderStatus(ProviderState.ERROR, machine.error)
        return ProviderStatus(self._state_after(machine.polls))

    def _state_after(self, polls: int) -> ProviderState:
        if polls >= self.ready_after_polls:
            return ProviderState.READY
        return ProviderState.BUILDING if polls == 1 else ProviderState.RUNNING


class SlowProvider(InMemoryProvider):
    """``launch`` blocks for ``launch_seconds``; READY only after ``ready_after_polls`` polls."""

    name = "slow"

    def __init__(self, launch_seconds: float = 0.5, ready_after_polls: int = 5,
                 max_sessions: int = 8) -> None:
        super().__init__(ready_after_polls=ready_after_polls, max_sessions=max_sessions)
        self.launch_seconds = launch_seconds

    def launch(self, spec: LaunchSpec) -> None:
        """Sleep ``launch_seconds`` (without holding the lock), then launch as the parent does."""
        time.sleep(self.launch_seconds)
        super().launch(spec)


class NeverReadyProvider(InMemoryProvider):
    """Machines stay RUNNING (contextualising) forever: for the reconciler's timeouts."""

    name = "never-ready"

    def _state_after(self, polls: int) -> ProviderState:
        return ProviderState.BUILDING if polls == 1 else ProviderState.RUNNING


class UnstoppableProvider(InMemoryProvider):
    """Machines that cannot be stopped (as QEMU's): ``supports_stop`` is False."""

    name = "unstoppable"

    def __init__(self, ready_after_polls: int = 1, max_sessions: int = 8) -> None:
        super().__init__(ready_after_polls=ready_after_polls, max_sessions=max_sessions,
                         stoppable=False)


class FailingProvider(InMemoryProvider):
    """Fails at ``fail_on``: launch raises LaunchFailed, poll reports ERROR, delete raises."""

    name = "failing"

    def __init__(self, fail_on: Literal["launch", "poll", "delete"] = "launch",
                 message: str = "The cloud refused to start the machine: no valid host found.",
                 max_sessions: int = 8) -> None:
        super().__init__(max_sessions=max_sessions)
        self.fail_on = fail_on
        self.message = message

    def launch(self, spec: LaunchSpec) -> None:
        """Raise LaunchFailed (``fail_on="launch"``) or launch as the parent does."""
        if self.fail_on == "launch":
            with self._lock:
                self.calls["launch"] += 1
            raise LaunchFailed(self.message, f"{spec.machine_id}: {self.message}")
        super().launch(spec)
        if self.fail_on == "poll":
            self.fail(spec.machine_id, self.message)

    def delete(self, machine_id: str) -> None:
        """Raise ProviderError (``fail_on="delete"``) or delete as the parent does."""
        if self.fail_on == "delete":
            with self._lock:
                self.calls["delete"] += 1
            raise ProviderError(self.message, f"{machine_id}: delete failed: {self.message}")
        super().delete(machine_id)


class UnisolatedProvider(InMemoryProvider):
    """Says, as a non-root local provider does, that its desktops are not isolated."""

    name = "unisolated"
    NOTICE = "Local desktops run in single-user mode: desktops are not isolated."

    def notices(self) -> list[str]:
        """Return :data:`NOTICE`."""
        return [self.NOTICE]


DOUBLES: tuple[type[InMemoryProvider], ...] = (InMemoryProvider, SlowProvider,
                                               NeverReadyProvider, UnstoppableProvider,
                                               FailingProvider, UnisolatedProvider)


@contextmanager
def register_doubles() -> Iterator[None]:
    """Register every double under its ``name`` in PROVIDERS for a ``with`` block."""
    for double in DOUBLES:
        PROVIDERS.register(double.name, double)
    try:
        yield
    finally:
        for double in DOUBLES:
            PROVIDERS.unregister(double.name)
