"""Machine-hours of the admin usage report, from a machine's events."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from daaas.portal.admin.usage import running_hours
from daaas.portal.machines.models import Machine, MachineEvent
from daaas.portal.machines.states import State

START = datetime(2026, 12, 1, tzinfo=UTC)
END = START + timedelta(hours=10)


def test_a_machine_without_events_counts_no_hours() -> None:
    """The admin usage page answered 500 for such a machine (zip over an empty list)."""
    assert running_hours(Machine(id="m-1", events=[]), START, END) == 0.0


def test_ready_until_the_end_counts_from_its_event() -> None:
    event = MachineEvent(at=START + timedelta(hours=4), to_state=State.READY.value, message="")
    assert running_hours(Machine(id="m-2", events=[event]), START, END) == 6.0
