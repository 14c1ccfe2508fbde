"""Machine rules: launch, list, get, stop, start, delete, and the one way to change a state.

Views and the API call these; the reconciler drives machines onward through the provider.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session, joinedload, selectinload

from daaas.catalogue import Catalogue, Environment
from daaas.portal.analysis.service import get_environment
from daaas.portal.audit.service import record
from daaas.portal.auth.models import User
from daaas.portal.config import Settings
from daaas.portal.db import utcnow
from daaas.portal.errors import Conflict, Forbidden, InvalidInput, NotFound, PortalError
from daaas.portal.machines.capacity import launch_gpu_reason
from daaas.portal.machines.lifetime import policy_for
from daaas.portal.machines.models import LaunchKey, Machine, MachineEvent
from daaas.portal.machines.naming import clean_name, default_name, unique_name, unique_prefix
from daaas.portal.machines.states import FINAL, State, can_move
from daaas.portal.pools import service as pools
from daaas.portal.providers import Provider, StopNotSupported
from daaas.portal.quotas import service as quotas


class InvalidTransition(RuntimeError):
    """A programming error: a state change the transition table does not allow."""


def transition(db: Session, machine: Machine, target: State, message: str = "") -> MachineEvent:
    """Move ``machine`` to ``target`` and record the event; returns the event.

    Raises InvalidTransition when the table does not allow the move.
    """
    current = State(machine.state)
    if not can_move(current, target):
        raise InvalidTransition(f"machine {machine.id}: {current} -> {target} is not allowed")
    now = utcnow()
    event = MachineEvent(machine_id=machine.id, from_state=current.value, to_state=target.value,
                         message=message, at=now)
    machine.state, machine.state_changed_at = target.value, now
    if target is State.ERROR:
        machine.error_reason = message
    db.add(event)
    return event


class IdempotencyKeyReused(PortalError):
    """An idempotency key (or a launch form's id) already launched something else."""

    status_code = 422
    code = "idempotency_key_reused"


class LimitReached(Conflict):
    """A launch would take the user over a limit of the site (the machine limit)."""

    code = "limit_reached"


#: The longest idempotency key (``Idempotency-Key`` header, launch form id) accepted.
MAX_KEY = 200


@dataclass(frozen=True)
class Launch:
    """What a launch request got: the machine, and whether an earlier request with the same
    idempotency key had already launched it (``replayed``)."""

    machine: Machine
    replayed: bool = False


def launch_fingerprint(environment: str, flavor: object, experiment: object) -> str:
    """Return the SHA-256 (hex) of what a launch asks for, as sent (API body or form): the
    same key with another fingerprint is refused. Raises nothing."""
    def text(value: object) -> str:
        return "" if value in (None, "", "none") else str(value)
    asked = {"environment": environment, "flavor": text(flavor),
             "experiment": text(experiment)}
    return hashlib.sha256(json.dumps(asked, sort_keys=True).encode()).hexdigest()


def check_key(raw: str | None) -> str | None:
    """Return the idempotency key as sent, or None when there is none (absent or empty).

    Raises InvalidInput for one longer than :data:`MAX_KEY` or with characters other than
    printable ASCII.
    """
    if not raw:
        return None
    if len(raw) > MAX_KEY or not all("!" <= ch <= "~" for ch in raw):
        raise InvalidInput(f"An Idempotency-Key is 1 to {MAX_KEY} printable ASCII characters "
                           "without spaces (a UUID is a good one).")
    return raw


def request_launch(db: Session, settings: Settings, catalogue: Catalogue, user: User,
                   environment_name: str, flavor: str | None = None, *,
                   experiment: dict[str, Any] | None = None,
                   provider: Provider | None = None) -> Machine:
    """Record the user's wish for a machine of this environment; returns it in 'requested'.

    :func:`launch` without an idempotency key; raises what it raises.
    """
    return launch(db, settings, catalogue, user, environment_name, flavor,
                  experiment=experiment, provider=provider).machine


def launch(db: Session, settings: Settings, catalogue: Catalogue, user: User,
           environment_name: str, flavor: str | None = None, *,
           experiment: dict[str, Any] | None = None, provider: Provider | None = None,
           key: str | None = None, fingerprint: str = "") -> Launch:
    """Record the user's wish for a machine of this environment; returns the Launch, its
    machine in 'requested'.

    ``experiment`` is the investigation the session is bound to (already checked by
    :func:`daaas.portal.experiments.service.check_binding`), recorded with the machine.
    ``provider`` is the running provider (pages and the API pass it): an environment it gives
    a reason against (:meth:`Provider.unavailable_reason`) is refused, and so is a GPU flavor
    when the capacity the reconciler last read has no GPU free. The reconciler does the rest.
    ``key`` (an ``Idempotency-Key``, a launch form's id) with ``fingerprint``
    (:func:`launch_fingerprint` of the request): a key this user already launched with
    returns that machine (``replayed``) whatever its state, without a second launch.
    Everything from the key's look-up to the new machine runs under the user's launch lock
    (:func:`admit_launch`), so concurrent requests are decided one after the other.
    Raises NotFound for an environment the user may not use, InvalidInput for a flavor the
    environment does not allow, IdempotencyKeyReused (422) for a key that launched something
    else, Conflict when the environment cannot run here or no GPU is free, and LimitReached
    (409) when the user already has as many machines as the site allows.
    """
    lock_launches(db, user)
    if key is not None:
        earlier = _launched_with(db, user, key, fingerprint)
        if earlier is not None:
            return Launch(earlier, replayed=True)
    env = get_environment(catalogue, user, environment_name)
    chosen = _choose_flavor(env, flavor)
    now = utcnow()
    reason = provider.unavailable_reason(env) if provider is not None else None
    if reason:
        raise Conflict(f"{env.title} is not available on this portal: {reason}")
    gpu = launch_gpu_reason(settings, env, chosen, now) if provider is not None else None
    if gpu and pools.has_ready(db, settings, env, chosen, now):
        gpu = None  # a warm pool's machine holds a GPU for this launch to claim
    if gpu:
        raise Conflict(f"{env.title} cannot start on {chosen} now: {gpu}")
    admit_launch(db, settings, user, env, chosen)
    name = default_name(env.title, experiment["visit_id"] if experiment else None, now)
    name = unique_name(name, _names_in_use(db, user, starting=unique_prefix(name)))
    asked = f"{user.username} asked for {env.title} ({chosen})" \
        + (f" for experiment {experiment['visit_id']}" if experiment else "")
    expires_at = now + policy_for(env, chosen, user.groups or []).initial
    pooled = pools.claim(db, settings, user, env, chosen, now)  # warm pools (issue 20)
    if pooled is not None:
        machine = pooled
        machine.name, machine.expires_at = name, expires_at
        machine.experiment_id = experiment["id"] if experiment else None
        machine.experiment = experiment
        transition(db, machine, State.CONTEXTUALISING, f"{asked}; claimed from the warm pool")
    else:
        machine = Machine(id=uuid.uuid4().hex, user=user, name=name,
                          environment_name=env.name, environment=env, flavor=chosen,
                          provider=settings.provider, state=State.REQUESTED.value,
                          created_at=now, state_changed_at=now, expires_at=expires_at,
                          experiment_id=experiment["id"] if experiment else None,
                          experiment=experiment)
        db.add(machine)
        db.add(MachineEvent(machine_id=machine.id, from_state=None,
                            to_state=State.REQUESTED.value, message=asked, at=now))
        if settings.warm_pools and pools.configured_size(db, settings, env, chosen, now) > 0:
            db.add(MachineEvent(machine_id=machine.id, from_state=State.REQUESTED.value,
                                to_state=State.REQUESTED.value, message=pools.MISS_MESSAGE,
                                at=now))  # a warm pool miss, counted by /metrics
    db.flush()
    if key is not None:
        db.add(LaunchKey(user_id=user.id, key=key, fingerprint=fingerprint,
                         machine_id=machine.id, created_at=now))
        db.flush()
    audit_machine(db, user, "machine.launch", machine, f"{env.name} on {chosen}")
    return Launch(machine)


def _launched_with(db: Session, user: User, key: str, fingerprint: str) -> Machine | None:
    """The machine the user's earlier launch with ``key`` made, or None (a new key).

    Raises IdempotencyKeyReused when that launch asked for something else.
    """
    found = db.scalar(select(LaunchKey).where(LaunchKey.user_id == user.id,
                                              LaunchKey.key == key))
    if found is None:
        return None
    if found.fingerprint != fingerprint:
        raise IdempotencyKeyReused(
            "This Idempotency-Key was already used for a different launch (another "
            "environment, size or experiment). Send a new key for a new launch, or the same "
            "request to get the machine it made.")
    return db.get(Machine, found.machine_id)


def lock_launches(db: Session, user: User) -> None:
    """Take the user's launch lock until the transaction ends: the user's row, locked.

    On PostgreSQL a ``SELECT … FOR UPDATE`` of the row; on SQLite a write to it, which takes
    the database's one write lock (a deferred transaction could otherwise read, then write
    after another request's write). Requests of the same user (launches, and later anything
    weighed against a quota) wait for each other here; other users' requests do not on
    PostgreSQL. Taking it twice in one transaction is harmless. Raises only database errors
    (a lock wait past the database's timeout).
    """
    if db.get_bind().dialect.name == "sqlite":
        db.execute(update(User).where(User.id == user.id).values(is_active=User.is_active)
                   .execution_options(synchronize_session=False))
    else:
        db.execute(select(User.id).where(User.id == user.id).with_for_update())


def admit_launch(db: Session, settings: Settings, user: User, environment: Environment,
                 flavor: str) -> None:
    """Admit a launch of ``environment`` on ``flavor`` for ``user``, or refuse it: the one
    admission step every launch passes, under the user's launch lock
    (:func:`lock_launches`, taken here if the caller has not), so what it counts cannot
    change until the launch is recorded and committed.

    It checks the user's machine limit (failed, deleting and deleted machines do not
    count), then the quotas of the user and their groups (:func:`quotas.admit`, which locks
    each such group after the user, always in that order). Raises LimitReached (409) naming
    the limit, or QuotaExceeded (409) naming the quota, when a check fails.
    """
    lock_launches(db, user)
    reason = limit_reason(db, settings, user)
    if reason:
        raise LimitReached(reason)
    quotas.admit(db, settings, user, flavor)


def _names_in_use(db: Session, user: User, *, but: str | None = None,
                  starting: str = "") -> set[str]:
    """The names of the user's machines that are not deleted (all but machine ``but``; only
    those ``starting`` with a text, case aside), read from an index alone."""
    query = select(Machine.name).where(Machine.user_id == user.id,
                                       Machine.state != State.DELETED.value)
    if starting:
        query = query.where(Machine.name.startswith(starting, autoescape=True))
    if but is not None:
        query = query.where(Machine.id != but)
    return set(db.scalars(query))


def rename_machine(db: Session, user: User, machine_id: str, raw_name: object) -> Machine:
    """Give the user's machine the name they typed (outer spaces removed); returns it.

    Only the owner renames a machine. Raises NotFound as :func:`get_machine` does, Forbidden
    when an administrator tries to rename someone else's, Conflict for a deleted machine or a
    name another of the owner's machines has, and InvalidInput (from
    :func:`~daaas.portal.machines.naming.clean_name`) for a name that is empty, longer than 80
    characters or holds control characters.
    """
    machine = get_machine(db, user, machine_id, lock=True)
    if machine.user_id != user.id:
        raise Forbidden("Only its owner can rename a machine.")
    name = clean_name(raw_name)
    if machine.state == State.DELETED.value:
        raise Conflict("This machine has been deleted; it can no longer be renamed.")
    if name != machine.name and name in _names_in_use(db, user, but=machine.id):
        raise Conflict(f"You already have a machine called '{name}'; choose another name so "
                       "you can tell them apart.")
    machine.name = name
    return machine


def _choose_flavor(env: Environment, flavor: str | None) -> str:
    if not flavor:
        return env.flavors.default
    if flavor not in env.flavors.allowed:
        raise InvalidInput(f"{env.title} cannot run on flavor '{flavor}'. Choose one of: "
                           f"{', '.join(env.flavors.allowed)}.")
    return flavor


#: States that do not count against a user's machine limit: gone or going, and failed (a
#: machine that failed holds nothing at the provider once cleaned up).
NOT_COUNTED = (State.DELETED.value, State.DELETING.value, State.ERROR.value)


def counted_machines(db: Session, user: User) -> int:
    """Return how many of the user's machines count against ``max_machines_per_user`` (all
    but deleted, deleting and failed ones). Raises nothing beyond database errors."""
    return db.scalar(select(func.count()).where(  # count(*): from the index alone
        Machine.user_id == user.id, Machine.state.not_in(NOT_COUNTED))) or 0


def limit_reason(db: Session, settings: Settings, user: User) -> str | None:
    """Return why the user may not launch another machine now (the limit is reached), or None.
    Raises nothing beyond database errors."""
    active, most = counted_machines(db, user), quotas.machine_limit(db, settings, user)
    if active < most:
        return None
    whose = "this site allows" if most == settings.max_machines_per_user else "your quota allows"
    return (f"You already have {active} machine{'s' if active != 1 else ''}, the most {whose}. "
            "Delete one you no longer need, then launch again.")


MAX_PAGE = 500


def list_machines(db: Session, user: User, *, everyone: bool = False,
                  include_deleted: bool = False, limit: int = 100,
                  offset: int = 0, with_events: bool = True) -> tuple[list[Machine], int]:
    """Return one page of the user's machines, newest first, and how many there are in all.

    ``everyone`` lists all users' machines (admins only). The machines' owners are loaded, and
    their events (for the phase timings) unless ``with_events`` is False: a constant number of
    queries whatever the page's size. Raises Forbidden when a non-admin asks for everyone's,
    InvalidInput for a page outside 1..500 machines or a negative offset.
    """
    if everyone and not user.is_admin:
        raise Forbidden("Only administrators may list everyone's machines.")
    if not 1 <= limit <= MAX_PAGE or offset < 0:
        raise InvalidInput(f"Ask for 1 to {MAX_PAGE} machines at a time ('limit') from a "
                           "non-negative 'offset'.")
    conditions = [] if everyone else [Machine.user_id == user.id]
    if not include_deleted:
        conditions.append(Machine.state != State.DELETED.value)
    total = db.scalar(select(func.count(Machine.id)).where(*conditions)) or 0
    query = (select(Machine).where(*conditions)
             .options(joinedload(Machine.user))
             .order_by(Machine.created_at.desc(), Machine.id).limit(limit).offset(offset))
    if with_events:
        query = query.options(selectinload(Machine.events))
    return list(db.scalars(query)), total


def get_machine(db: Session, user: User, machine_id: str, *, lock: bool = False) -> Machine:
    """Return the machine if it is the user's (or the user is an admin).

    Raises NotFound otherwise, never revealing that someone else's machine exists.
    """
    query = select(Machine).where(Machine.id == machine_id)
    machine = db.scalar(query.with_for_update() if lock else query)
    if machine is None or (machine.user_id != user.id and not user.is_admin):
        raise NotFound("There is no such machine among yours. It may have been deleted; see "
                       "My machines on the Analysis page.")
    return machine


def request_delete(db: Session, user: User, machine_id: str, reason: str = "",
                   how: str = "") -> Machine:
    """Ask for the machine to be deleted; returns it in 'deleting' (or already deleted).

    ``reason`` (an administrator's, shown to the owner) goes into the event's message and
    ``admin_reason``; ``how`` it was asked for ("admin bulk delete") and the reason go into
    the one audit row's detail. Raises NotFound as :func:`get_machine` does.
    """
    machine = get_machine(db, user, machine_id, lock=True)
    if State(machine.state) in FINAL or machine.state == State.DELETING.value:
        return machine
    transition(db, machine, State.DELETING, f"deletion requested by {user.username}"
               + (f": {reason}" if reason else ""))
    machine.admin_reason = reason
    audit_machine(db, user, "machine.delete", machine, detail=_asked(how, reason))
    return machine


def request_stop(db: Session, user: User, machine_id: str, provider: Provider,
                 reason: str = "", how: str = "") -> Machine:
    """Ask for the ready machine to be stopped (disk kept); returns it in 'stopping'.

    ``provider`` is the running provider, which answers whether it can stop machines. Stopping
    or stopped already is success (and audited no second time). ``reason`` (an administrator's,
    shown to the owner) goes into the event's message and ``admin_reason``; ``how`` it was
    asked for ("admin bulk stop") and the reason go into the one audit row's detail. Raises
    NotFound as :func:`get_machine` does,
    StopNotSupported (409) when the provider cannot stop machines, Conflict when it is not
    ready.
    """
    machine = get_machine(db, user, machine_id, lock=True)
    if not provider.supports_stop:
        raise StopNotSupported(provider.name, machine.id)
    if machine.state in (State.STOPPING.value, State.STOPPED.value):
        return machine
    if machine.state != State.READY.value:
        raise Conflict(f"Only a ready machine can be stopped; this one is {machine.state}. "
                       "Wait until it is ready, or delete it.")
    transition(db, machine, State.STOPPING, f"stop requested by {user.username}"
               + (f": {reason}" if reason else ""))
    machine.admin_reason = reason
    audit_machine(db, user, "machine.stop", machine, detail=_asked(how, reason))
    return machine


def request_start(db: Session, user: User, machine_id: str, provider: Provider,
                  settings: Settings | None = None) -> Machine:
    """Ask for the stopped machine to be started again; returns it in 'provisioning'.

    The reconciler starts it at ``provider`` (the running one) and brings it to ready, under
    the ready timeout. With ``settings`` (pages and the API pass them) the start is weighed
    against the owner's quotas under the owner's launch lock, as a launch is. Raises NotFound
    as :func:`get_machine` does, StopNotSupported (409) when the provider cannot start
    machines, Conflict when it is not stopped (a stopping one: wait, then start), and
    QuotaExceeded (409) naming the quota its cores, memory or GPU would exceed.
    """
    machine = get_machine(db, user, machine_id, lock=True)
    if settings is not None and machine.state == State.STOPPED.value:
        lock_launches(db, machine.user)
        quotas.admit(db, settings, machine.user, machine.flavor, starting=True)
    if not provider.supports_stop:
        raise StopNotSupported(provider.name, machine.id)
    if machine.state != State.STOPPED.value:
        raise Conflict(f"Only a stopped machine can be started; this one is {machine.state}."
                       + (" Wait until it has stopped, then start it." if machine.state ==
                          State.STOPPING.value else ""))
    transition(db, machine, State.PROVISIONING, f"start requested by {user.username}")
    machine.admin_reason = ""
    audit_machine(db, user, "machine.start", machine)
    return machine


def _asked(how: str, reason: str) -> str:
    """Return the audit detail saying how an action was asked for and why ("admin bulk stop:
    maintenance"), either alone, or ""."""
    return f"{how}: {reason}" if how and reason else how or reason


def audit_machine(db: Session, user: User, action: str, machine: Machine,
                  detail: str = "") -> None:
    """Audit ``user``'s ``action`` on ``machine`` in this transaction (flagged as an
    administrator's when the machine is someone else's). Returns None."""
    record(db, action, actor=user.username, target=f"machine {machine.id}",
           detail=f"{machine.name}; {detail}" if detail else machine.name,
           admin=machine.user_id != user.id)
