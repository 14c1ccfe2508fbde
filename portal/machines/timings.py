"""Per-phase durations of a launch, derived from the machine's events."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import datetime

from daaas.portal.machines.models import Machine
from daaas.portal.machines.states import State

PHASES = (
    ("queue", State.REQUESTED, State.PROVISIONING),
    ("provision", State.PROVISIONING, State.CONTEXTUALISING),
    ("contextualise", State.CONTEXTUALISING, State.READY),
    ("total_to_ready", State.REQUESTED, State.READY),
)


@dataclass(frozen=True)
class PhaseTimings:
    """Seconds spent in each launch phase; None for a phase not (yet) completed."""

    queue: float | None
    provision: float | None
    contextualise: float | None
    total_to_ready: float | None

    def as_dict(self) -> dict[str, float | None]:
        """Return the timings as a plain dict."""
        return asdict(self)


def first_entries(machine: Machine) -> dict[State, datetime]:
    """Return when the machine first entered each state it has been in."""
    entered: dict[State, datetime] = {}
    for event in machine.events:
        entered.setdefault(State(event.to_state), event.at)
    return entered


def phase_timings(machine: Machine) -> PhaseTimings:
    """Return the machine's per-phase durations in seconds."""
    entered = first_entries(machine)
    values: dict[str, float | None] = {}
    for name, start, end in PHASES:
        if start in entered and end in entered:
            values[name] = round((entered[end] - entered[start]).total_seconds(), 3)
        else:
            values[name] = None
    return PhaseTimings(**values)
