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
    # provisioning -> stopped: a start the provider refused for now (no GPU free)
    S.PROVISIONING: frozenset({S.CONTEXTUALISING, S.STOPPED, S.DELETING, S.ERROR}),
    # contextualising/ready -> stopped: stopped outside the portal (administrator, maintenance)
    S.CONTEXTUALISING: frozenset({S.READY, S.STOPPED, S.DELETING, S.ERROR}),
    # ready -> contextualising: a warm pool's machine claimed, set up for its user (issue 20)
    S.READY: frozenset({S.CONTEXTUALISING, S.STOPPING, S.STOPPED, S.DELETING, S.ERROR}),
    S.STOPPING: frozenset({S.STOPPED, S.DELETING, S.ERROR}),
    S.STOPPED: frozenset({S.PROVISIONING, S.DELETING, S.ERROR}),
    S.DELETING: frozenset({S.DELETED, S.ERROR}),
    S.ERROR: frozenset({S.DELETING}),
    S.DELETED: frozenset(),
}

#: States in which the provider may hold something for the machine.
AT_PROVIDER = frozenset({S.PROVISIONING, S.CONTEXTUALISING, S.READY, S.STOPPING, S.STOPPED})
#: States the reconciler polls the provider about.
POLLED = frozenset({S.PROVISIONING, S.CONTEXTUALISING, S.READY, S.STOPPING, S.STOPPED})
#: States on the way to ready, subject to the ready timeout (a start from stopped too).
STARTING = frozenset({S.REQUESTED, S.PROVISIONING, S.CONTEXTUALISING})
#: States after which nothing more happens.
FINAL = frozenset({S.DELETED})


def can_move(current: State, target: State) -> bool:
    """Return True when ``current -> target`` is in the transition table."""
    return target in TRANSITIONS[current]
