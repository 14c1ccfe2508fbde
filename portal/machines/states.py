"""The machine state machine: one table of allowed transitions."""

from __future__ import annotations

import enum


class State(enum.StrEnum):
    """Where a machine is in its life."""

    REQUESTED = "requested"
    PROVISIONING = "provisioning"
    CONTEXTUALISING = "contextualising"
    READY = "ready"
    STOPPING = "stopping"
    STOPPED = "stopped"
    DELETING = "deleting"
    DELETED = "deleted"
    ERROR = "error"


S = State
TRANSITIONS: dict[State, frozenset[State]] = {
    S.REQUESTED: frozenset({S.PROVISIONING, S.DELETING, S.ERROR}),
    S.PROVISIONING: frozenset({S.CONTEXTUALISING, S.DELETING, S.ERROR}),
    S.CONTEXTUALISING: frozenset({S.READY, S.DELETING, S.ERROR}),
    S.READY: frozenset({S.STOPPING, S.DELETING, S.ERROR}),
    S.STOPPING: frozenset({S.STOPPED, S.DELETING, S.ERROR}),
    S.STOPPED: frozenset({S.PROVISIONING, S.DELETING, S.ERROR}),
    S.DELETING: frozenset({S.DELETED, S.ERROR}),
    S.ERROR: frozenset({S.DELETING}),
    S.DELETED: frozenset(),
}

#: States in which the provider may hold something for the machine.
AT_PROVIDER = frozenset({S.PROVISIONING, S.CONTEXTUALISING, S.READY, S.STOPPING, S.STOPPED})
#: States the reconciler polls the provider about.
POLLED = frozenset({S.PROVISIONING, S.CONTEXTUALISING, S.READY})
#: States on the way to ready, subject to the ready timeout.
STARTING = frozenset({S.REQUESTED, S.PROVISIONING, S.CONTEXTUALISING})
#: States after which nothing more happens.
FINAL = frozenset({S.DELETED})


def can_move(current: State, target: State) -> bool:
    """Return True when ``current -> target`` is in the transition table."""
    return target in TRANSITIONS[current]
