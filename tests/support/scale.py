"""Many machines at once, for the statement-count tests and benchmarks/scale.py.

Rows are written as a launch leaves them after it reached ``ready`` (four events: requested,
provisioning, contextualising, ready), without the reconciler, so 10,000 take seconds.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import Any

from sqlalchemy import event, update
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session, sessionmaker

from daaas.catalogue import Environment
from daaas.portal.auth.models import User
from daaas.portal.db import unit_of_work, utcnow
from daaas.portal.machines.models import Machine, MachineEvent
from daaas.portal.machines.spec import launch_spec
from daaas.portal.providers import Provider

STEPS = ("requested", "provisioning", "contextualising", "ready")


def add_machines(factory: sessionmaker[Session], environment: Environment,
                 users: list[User] | list[str], count: int, *, provider: str = "memory",
                 experiment: dict[str, Any] | None = None) -> list[str]:
    """Write ``count`` ready machines of ``environment`` (owners in turn from ``users``, given
    as rows or usernames), each with its four events; returns their ids, oldest first."""
    ids: list[str] = []
    now = utcnow()
    with unit_of_work(factory) as db:
        owners = [db.merge(u) if isinstance(u, User) else
                  db.query(User).filter_by(username=u).one() for u in users]
        for index in range(count):
            machine_id = uuid.uuid4().hex
            at = now - timedelta(seconds=count - index)
            db.add(Machine(id=machine_id, user=owners[index % len(owners)],
                           name=f"{environment.title} {index}",
                           environment_name=environment.name, environment=environment,
                           flavor=environment.flavors.default, provider=provider,
                           state="ready", created_at=at, state_changed_at=at,
                           expires_at=now + timedelta(days=7),
                           experiment_id=experiment["id"] if experiment else None,
                           experiment=experiment))
            previous = None
            for state in STEPS:
                db.add(MachineEvent(machine_id=machine_id, from_state=previous, to_state=state,
                                    message=state, at=at))
                previous = state
            ids.append(machine_id)
    return ids


def launch_at(provider: Provider, factory: sessionmaker[Session], ids: list[str],
              secret_key: str) -> None:
    """Launch the machines ``ids`` at ``provider`` (a test double), as the reconciler would
    have, so its polls know them."""
    with factory() as db:
        for machine_id in ids:
            machine = db.get(Machine, machine_id)
            assert machine is not None
            provider.launch(launch_spec(None, secret_key, machine))


@contextmanager
def counting(engine: Engine | type[Engine]) -> Iterator[Callable[[], dict[str, int]]]:
    """Count, in the ``with`` block, the SQL statements ``engine`` runs and the transactions it
    begins (``Engine`` itself: every engine's); yields a function returning {"statements",
    "writes", "transactions"} so far. Writes are INSERT, UPDATE and DELETE statements."""
    counts = {"statements": 0, "writes": 0, "transactions": 0}

    def statement(_conn: object, _cursor: object, sql: str, *_args: object) -> None:
        counts["statements"] += 1
        if sql.lstrip().split(None, 1)[0].upper() in ("INSERT", "UPDATE", "DELETE"):
            counts["writes"] += 1

    def begin(_conn: object) -> None:
        counts["transactions"] += 1

    event.listen(engine, "before_cursor_execute", statement)
    event.listen(engine, "begin", begin)
    try:
        yield lambda: dict(counts)
    finally:
        event.remove(engine, "before_cursor_execute", statement)
        event.remove(engine, "begin", begin)


def add_requested(factory: sessionmaker[Session], environment: Environment,
                  users: list[str], count: int, *, provider: str = "memory") -> list[str]:
    """Write ``count`` machines of ``environment`` as a launch request leaves them (state
    ``requested``, one event; owners in turn from ``users``); returns their ids, oldest
    first."""
    ids: list[str] = []
    now = utcnow()
    with unit_of_work(factory) as db:
        owners = [db.query(User).filter_by(username=u).one() for u in users]
        for index in range(count):
            machine_id = uuid.uuid4().hex
            at = now - timedelta(seconds=count - index)
            db.add(Machine(id=machine_id, user=owners[index % len(owners)],
                           name=f"{environment.title} {index}",
                           environment_name=environment.name, environment=environment,
                           flavor=environment.flavors.default, provider=provider,
                           state="requested", created_at=at, state_changed_at=at,
                           expires_at=now + timedelta(days=7)))
            db.add(MachineEvent(machine_id=machine_id, from_state=None, to_state="requested",
                                message="requested", at=at))
            ids.append(machine_id)
    return ids


#: The share of machines :func:`mix_states` leaves in each state (the rest stay ready)
MIX = (("stopped", 0.15), ("deleted", 0.25), ("error", 0.05))


def mix_states(factory: sessionmaker[Session], provider: Provider,
               ids: list[str]) -> dict[str, int]:
    """Move parts of the ready machines ``ids`` (launched at ``provider``, a test double) to
    the states of :data:`MIX`, in the database and at the provider alike, as a portal that
    has run for a while holds them (stopped ones kept by the provider, deleted and failed ones
    gone and cleaned up). Returns how many machines are in each state."""
    counts = {"ready": len(ids)}
    start = 0
    with unit_of_work(factory) as db:
        for state, share in MIX:
            chosen = ids[start:start + round(share * len(ids))]
            start += len(chosen)
            db.execute(update(Machine).where(Machine.id.in_(chosen)).values(
                state=state, cleanup_pending=False))
            for machine_id in chosen:
                if state == "stopped":
                    provider.stop(machine_id)
                else:
                    provider.delete(machine_id)
            counts[state] = len(chosen)
            counts["ready"] -= len(chosen)
    return counts
